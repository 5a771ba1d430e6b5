"""srcore.adapt: a model learns a voice it never heard from a few of its clips, and the app's
"Teach it your voice" handlers run end to end (gradio_client)."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE, WORDS, free_port, speak

from srcore import adapt
from srcore.audio import write_audio
from srcore.checkpoint import load_model, read_config
from srcore.config import AdaptConfig
from srcore.evaluate import evaluate
from srcore.manifest import read_manifest
from srcore.transcribe import Recognizer

NEW_VOICE = "en+f4"  # an eSpeak voice the tiny model never heard (it trained on en-us)


def voice_manifest(folder: Path, rates, name: str) -> Path:
    """WORDS read by NEW_VOICE at each rate, as a manifest with absolute keys."""
    (folder / name).mkdir(parents=True, exist_ok=True)
    rows = []
    for rate in rates:
        for word in WORDS:
            wave = np.concatenate([np.zeros(1600, np.float32), speak(word, NEW_VOICE, rate),
                                   np.zeros(1600, np.float32)])
            path = folder / name / f"{word}_{rate}.wav"
            write_audio(path, wave, SAMPLE_RATE)
            rows.append({"key": str(path), "text": word, "duration": round(wave.size / SAMPLE_RATE, 3)})
    manifest = folder / f"{name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture(scope="module")
def new_voice(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("new-voice")
    return (voice_manifest(folder, (125, 150, 160, 185), "learn"),
            voice_manifest(folder, (140, 170), "held-out"))


def test_adapt_command_lowers_the_new_voices_wer(trained_model, new_voice, tmp_path, capsys):
    learn, held_out = new_voice
    before = evaluate(Recognizer.load(trained_model), held_out).counts.wer
    out = tmp_path / "adapted"
    adapt.main(["--model", str(trained_model), "--manifest", str(learn), "--out", str(out),
                "--lr", "0.003", "--max-steps", "60", "--batch-size", "8", "--no-augment",
                "--no-specaugment", "--threads", "1"])
    summary = json.loads(capsys.readouterr().out)
    after = evaluate(Recognizer.load(out), held_out).counts.wer
    assert before >= 0.5 and after <= before / 2, (before, after)
    assert summary["steps"] == 60 and summary["clips"] == 16
    meta = read_config(out)
    assert meta["adapted"]["clips"] == 16 and meta["adapted"]["config"]["lr"] == 0.003
    assert meta["model"]["features"]["speaker_warp"] == 1.0  # no vocal tract warp unless --vtln
    assert "adapted to one speaker" in (out / "README.md").read_text()
    load_model(out)  # an ordinary model directory


def test_adapt_never_writes_over_a_folder_of_other_files_or_its_own_model(trained_model, new_voice, tmp_path):
    learn, _ = new_voice
    mine = tmp_path / "mine"
    (mine / "sub").mkdir(parents=True)
    (mine / "notes.txt").write_text("precious")
    for out, says in ((mine, "holds other files"), (mine / "notes.txt", "is a file"),
                      (trained_model, "is the model being adapted")):
        with pytest.raises(SystemExit, match=says):
            adapt.main(["--model", str(trained_model), "--manifest", str(learn), "--out", str(out),
                        "--max-steps", "1", "--threads", "1"])
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "sub"]
    assert (mine / "notes.txt").read_text() == "precious"


def test_held_out_clips_are_measured_before_and_after(trained_model, new_voice, tmp_path):
    learn, _ = new_voice
    cfg = AdaptConfig(lr=0.003, max_steps=40, held_out=4, augment=False, specaugment=False, threads=1)
    steps = []
    result = adapt.adapt(trained_model, read_manifest(learn), tmp_path / "m", cfg,
                         on_step=lambda *s: steps.append(s))
    assert result.clips == 12 and len(result.held_out) == 4 and result.before["n"] == 4
    assert result.after["wer"] <= result.before["wer"]
    assert [s[0] for s in steps] == list(range(1, 41)) and steps[-1][1] == 40
    assert "| before | 4 |" in (tmp_path / "m" / "README.md").read_text()


def test_time_cap_stops_the_fine_tuning(trained_model, new_voice, tmp_path):
    learn, _ = new_voice
    cfg = AdaptConfig(minutes=0.0, max_steps=1000, threads=1)
    result = adapt.adapt(trained_model, read_manifest(learn), tmp_path / "m", cfg)
    assert result.steps == 0 and (tmp_path / "m" / "model.safetensors").is_file()


def test_frozen_layers_keep_their_weights(trained_model, new_voice, tmp_path):
    learn, _ = new_voice
    cfg = AdaptConfig(lr=0.003, max_steps=5, layers="head", augment=False, threads=1)
    adapt.adapt(trained_model, read_manifest(learn), tmp_path / "m", cfg)
    base, _ = load_model(trained_model)
    adapted, _ = load_model(tmp_path / "m")
    for (name, a), b in zip(base.state_dict().items(), adapted.state_dict().values()):
        assert a.equal(b) != name.startswith("head."), name
    with pytest.raises(ValueError, match="choose all or parts of"):
        adapt.learning_parameters(adapted, "decoder")


def test_adapting_a_model_into_its_own_directory_keeps_its_lm(trained_model, new_voice, tmp_path):
    """A second adaptation in the app reads and writes the visitor's adapted model: its LM and
    decoding settings must survive the directory being replaced."""
    import shutil
    model = tmp_path / "mine"
    shutil.copytree(trained_model, model)
    (model / "lm").mkdir(exist_ok=True)
    (model / "lm" / "lexicon.txt").write_text("yes y e s |\n")
    (model / "decoding.json").write_text('{"decoder": "greedy", "marker": 1}')
    learn, _ = new_voice
    cfg = AdaptConfig(max_steps=2, held_out=0, augment=False, threads=1)
    for _ in range(2):
        adapt.adapt(model, read_manifest(learn), model, cfg)
        assert (model / "lm" / "lexicon.txt").read_text() == "yes y e s |\n"
        assert json.loads((model / "decoding.json").read_text())["marker"] == 1
    assert read_config(model)["adapted"]["earlier"]["steps"] == 2


def test_keep_moves_the_weights_back_towards_the_start():
    model = torch.nn.Linear(3, 2)
    start = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        model.weight.add_(1.0)
    adapt.keep_share(model, start, 0.25)
    assert torch.allclose(model.weight, start["weight"] + 0.25)
    assert model.bias.equal(start["bias"])


def test_keep_zero_leaves_the_starting_weights_and_keep_out_of_range_is_refused(trained_model, new_voice,
                                                                                tmp_path):
    learn, _ = new_voice
    cfg = AdaptConfig(lr=0.003, max_steps=3, keep=0.0, augment=False, threads=1)
    result = adapt.adapt(trained_model, read_manifest(learn), tmp_path / "m", cfg)
    assert result.steps == 3
    base, _ = load_model(trained_model)
    adapted, _ = load_model(tmp_path / "m")
    assert all(a.equal(b) for a, b in zip(base.state_dict().values(), adapted.state_dict().values()))
    with pytest.raises(ValueError, match="keep must be between 0 and 1"):
        adapt.adapt(trained_model, read_manifest(learn), tmp_path / "n", AdaptConfig(keep=1.5))


def test_learning_rate_warms_up_then_decays():
    cfg = AdaptConfig(lr=1e-3, warmup_steps=10, max_steps=100)
    rates = [adapt.learning_rate(s, cfg) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4) and max(rates) == pytest.approx(rates[9])
    assert all(a >= b for a, b in zip(rates[9:], rates[10:]))
    assert adapt.learning_rate(100, cfg) == pytest.approx(1e-4)
    assert not any(math.isnan(r) for r in rates)


def test_held_out_split_is_seeded_and_refuses_leaving_nothing():
    items = list(range(10))
    learn, held = adapt.split_held_out(items, 3, seed=1)
    assert len(held) == 3 and sorted(learn + held) == items
    assert adapt.split_held_out(items, 3, seed=1) == (learn, held)
    with pytest.raises(ValueError, match="leaves nothing"):
        adapt.split_held_out(items, 10, seed=1)


def test_prompts_cover_the_alphabet():
    letters = set("".join(adapt.PROMPTS).lower())
    assert set("abcdefghijklmnopqrstuvwxyz") <= letters and len(adapt.PROMPTS) == 20


# ------------------------------------------------------------------------------ the app tab

@pytest.fixture(scope="module")
def voice_server(trained_model):
    import app
    cfg = AdaptConfig(minutes=0.5, held_out=app.ADAPT_HELD_OUT, lr=0.003, max_steps=40, augment=False,
                      specaugment=False)
    demo = app.build_demo(trained_model, None, allow_adapt=True, adapt_config=cfg)
    _, url, _ = app.launch(demo, free_port(), prevent_thread_lock=True, quiet=True)
    yield app, url
    demo.close()


def test_voice_tab_end_to_end_through_gradio_client(voice_server, new_voice):
    app, url = voice_server
    from gradio_client import Client, handle_file
    learn, _ = new_voice
    clips = [row.path for row in read_manifest(learn)]
    client = Client(url, verbose=False)
    for number, clip in enumerate(clips[: app.MIN_TAKES], start=1):
        table, following, status = client.predict(handle_file(clip), number, api_name="/keep_take")
        assert f"{number} of {len(app.PROMPTS)} recorded" in status
    assert following == app.MIN_TAKES + 1
    status, _, results, archive, using = client.predict(api_name="/adapt_voice")
    assert "Adapted" in status and "held-out prompts" in status, status
    assert len(results["data"]) == app.ADAPT_HELD_OUT and Path(archive).suffix == ".zip"
    assert using["value"] == "adapted"
    assert [value for _, value in using["choices"]] == ["adapted", "original"]  # no server paths
    client.predict("original", api_name="/use_voice_model")
    client.predict("adapted", api_name="/use_voice_model")
    text, _, _ = client.predict(handle_file(clips[0]), "greedy", 16, False, api_name="/transcribe")
    assert text  # the session's model is the adapted one


def test_voice_tab_refuses_too_few_takes_and_bad_audio(tmp_path):
    import app
    status = list(app.adapt_voice({0: np.zeros(16000, np.float32)}, None, None))[-1][0]
    assert status.startswith(app.WARN) and f"at least {app.MIN_TAKES}" in status
    fake = tmp_path / "take.wav"
    fake.write_text("not audio")
    assert "take.wav is not audio" in app.keep_take(str(fake), 1, {})[-1]
    quiet = tmp_path / "quiet.wav"
    write_audio(quiet, np.zeros(16000, np.float32), SAMPLE_RATE)
    assert "silent" in app.keep_take(str(quiet), 1, {})[-1]
    long = tmp_path / "long.wav"
    write_audio(long, np.random.default_rng(0).normal(0, 0.1, 20 * SAMPLE_RATE).astype(np.float32),
                SAMPLE_RATE)
    assert "at most 15 s" in app.keep_take(str(long), 1, {})[-1]


def test_takes_are_kept_as_16_bit_samples_and_written_back_as_heard(tmp_path):
    import app
    wave = np.random.default_rng(1).normal(0, 0.1, 2 * SAMPLE_RATE).astype(np.float32)
    wave[1000], wave[2000] = 1.5, -1.5  # a float WAV can hold these: clipped, never wrapped round
    clip = tmp_path / "take.wav"
    import soundfile
    soundfile.write(clip, wave, SAMPLE_RATE, subtype="FLOAT")
    takes, *_ = app.keep_take(str(clip), 3, {})
    assert list(takes) == [2] and takes[2].dtype == np.int16  # half the memory of float32
    (utterance,) = app.write_takes(takes, tmp_path / "written")
    from srcore.audio import read_audio
    again = read_audio(utterance.path, SAMPLE_RATE).numpy()
    assert utterance.text == app.PROMPTS[2] and np.abs(again - np.clip(wave, -1, 1)).max() < 1e-3


def test_voice_tab_is_off_on_a_space_unless_allowed(monkeypatch):
    import app
    monkeypatch.setenv(app.SPACE_ENV, "someone/space")
    assert not app.adapt_allowed_by_default()
    monkeypatch.delenv(app.SPACE_ENV)
    assert app.adapt_allowed_by_default()


def test_session_folder_is_removed_with_the_session(tmp_path):
    import app
    folder = Path(app.new_session_folder())
    (folder / "adapted-model").mkdir()
    app.remove_session_folder(str(folder))
    assert not folder.exists()
    other = tmp_path / "keep-me"
    other.mkdir()
    app.remove_session_folder(str(other))  # only the app's own session folders
    assert other.exists()


def test_session_folders_past_their_age_go_when_the_next_is_made(monkeypatch):
    """gradio drops the oldest sessions past its capacity without their delete_callback: their
    folders must not stay until the server exits."""
    import app
    folders = app.SessionFolders(max_age_s=3600)
    clock = [1000.0]
    monkeypatch.setattr(app.time, "monotonic", lambda: clock[0])
    old = Path(folders.new())
    clock[0] += 3000
    kept = Path(folders.new())
    clock[0] += 1000  # old is 4000 s old, kept 1000 s
    newest = Path(folders.new())
    assert not old.exists() and kept.is_dir() and newest.is_dir()
    folders.remove_all()
    assert not kept.exists() and not newest.exists() and folders.made == {}


def test_an_adaptation_that_outlives_its_session_leaves_nothing(monkeypatch):
    """A visitor who leaves mid-adaptation: the session's folder is removed, then the running
    fine-tuning writes its model there (making the folder again); it must go when that ends."""
    import app
    folder = Path(app.new_session_folder())

    def adapt_after_the_visitor_left(model_dir, utterances, out, cfg, on_step):
        app.remove_session_folder(str(folder))  # the session's delete_callback
        (out / "model.safetensors").parent.mkdir(parents=True)
        (out / "model.safetensors").write_bytes(b"weights")
        return "result"

    monkeypatch.setattr(app.adaptation, "adapt", adapt_after_the_visitor_left)
    events = list(app.adapt_in_background("model", [], folder / "adapted-model", None))
    assert events == [("done", "result")] and not folder.exists()


def test_session_folders_go_when_the_server_exits():
    """Sessions still open when the server stops are never closed: their folders (a visitor's
    takes and adapted model) must not stay behind in the temporary directory, also when the
    server is stopped with SIGTERM."""
    def leftover(stop: str, exit_code: int) -> Path:
        script = ("import app, os, signal, time; from pathlib import Path; app.exit_on_sigterm(); "
                  "folder = Path(app.new_session_folder()); (folder / 'takes').mkdir(); "
                  f"print(folder, flush=True); {stop}")
        done = subprocess.run([sys.executable, "-c", script], cwd=Path(__file__).resolve().parents[1],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == exit_code, done.stderr
        folder = Path(done.stdout.strip().splitlines()[-1])
        assert folder.name.startswith("srcore-voice-")
        return folder

    assert not leftover("", 0).exists()  # an ordinary exit
    assert not leftover("os.kill(os.getpid(), signal.SIGTERM); time.sleep(60)", 143).exists()


def shifted_voice_manifest(folder: Path, shift: float) -> Path:
    """WORDS in the voice the tiny model learnt, every frequency moved from f to shift * f (and
    played that much faster): a longer or shorter vocal tract than the training voice's."""
    import torch
    import torchaudio.functional as AF
    rows = []
    for word in WORDS:
        wave = torch.from_numpy(speak(word))
        moved = AF.resample(wave, int(round(SAMPLE_RATE * shift)), SAMPLE_RATE).numpy()
        path = folder / f"{word}_{shift}.wav"
        write_audio(path, np.concatenate([np.zeros(1600, np.float32), moved, np.zeros(1600, np.float32)]),
                    SAMPLE_RATE)
        rows.append({"key": str(path), "text": word, "duration": round((moved.size + 3200) / SAMPLE_RATE, 3)})
    manifest = folder / f"shift{shift}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.mark.parametrize("shift", [1.2, 1.1])
def test_vtln_chooses_the_warp_that_undoes_a_vocal_tract_shift(trained_model, tmp_path, shift):
    takes = read_manifest(shifted_voice_manifest(tmp_path, shift))
    model, config = load_model(trained_model)
    losses = adapt.warp_losses(model, config, takes)
    assert sorted(losses) == list(adapt.VTLN_WARPS)
    chosen = min(losses, key=losses.get)
    assert abs(chosen - 1 / shift) < abs(1.0 - 1 / shift), (chosen, losses)  # towards undoing it
    assert losses[chosen] < losses[1.0]


def test_vtln_alone_keeps_the_weights_and_the_adapted_model_applies_its_warp(trained_model, tmp_path,
                                                                          monkeypatch):
    takes = read_manifest(shifted_voice_manifest(tmp_path, 1.15))
    monkeypatch.setattr(adapt, "warp_losses", lambda *a: {0.9: 1.0, 0.92: 0.5, 1.0: 2.0})
    result = adapt.adapt(trained_model, takes, tmp_path / "vtln", AdaptConfig(max_steps=0, threads=1, vtln=True))
    assert result.steps == 0 and result.speaker_warp == 0.92
    model, config = load_model(tmp_path / "vtln")
    base, _ = load_model(trained_model)
    assert config.features.speaker_warp == 0.92
    assert all((a == b).all() for a, b in zip(model.state_dict().values(), base.state_dict().values()))
    assert Recognizer.load(tmp_path / "vtln").logmel.config.speaker_warp == 0.92
    assert "vocal tract warp 0.92" in (tmp_path / "vtln" / "README.md").read_text()


def test_speaker_warp_composes_with_augmentation_warps_and_is_bounded():
    import torch

    from srcore.features import FeatureConfig, LogMel
    wave = torch.from_numpy(speak("stop"))
    assert torch.allclose(LogMel(FeatureConfig(speaker_warp=0.9))(wave, 1.1),
                          LogMel(FeatureConfig())(wave, 0.99), atol=1e-5)
    with pytest.raises(ValueError, match="speaker_warp = 3.0"):
        FeatureConfig(speaker_warp=3.0)
