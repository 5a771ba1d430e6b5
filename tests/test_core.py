"""srcore core: text, features, models, training (overfit, bad rows, resume, torchrun), shipped model."""
import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE, WORDS, free_port, speak, write_corpus
from safetensors.torch import load_file

from srcore.checkpoint import load_model
from srcore.features import SEED_FEATURES, FeatureConfig, LogMel, SpecAugment, SpecAugmentConfig
from srcore.model import build_model, count_parameters, preset
from srcore.run import RunFolder
from srcore.text import BLANK, CHARS, NUM_CLASSES, decode_ids, encode, normalize_text, number_to_words
from srcore.train import TrainConfig, train
from srcore.transcribe import DEFAULT_MODEL_DIR

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------------- text

@pytest.mark.parametrize("raw, expected", [
    ("Hello, World!", "hello world"),
    ("It's 42 degrees.", "it's forty two degrees"),
    ("Call 007 at 1,250 or 3rd", "call zero zero seven at one thousand two hundred fifty or third"),
    ("$5, $1.01 and $2.50", "five dollars one dollar and one cent and two dollars and fifty cents"),
    ("$2 million, \u00a33", "two million dollars three pounds"),
    ("1.5 kg", "one point five kg"),
    ("the 1990s and the 80s", "the nineteen nineties and the eighties"),
    ("in 1905, 1990, 2000, 2008 and 2024", "in nineteen oh five nineteen ninety two thousand two thousand eight "
     "and twenty twenty four"),
    ("21st, 12th and 100th", "twenty first twelfth and one hundredth"),
    ("at 9:05 or 10:00", "at nine oh five or ten o'clock"),
    ("Café déjà-vu", "cafe deja vu"),
    ("Straße, Ærø, Łódź and Œdipus", "strasse aero lodz and oedipus"),
    ("\u201cQuoted\u201d \u2019tis rock\u2019n\u2019roll", "quoted tis rock'n'roll"),
    ("50% & more", "fifty percent and more"),
    ("", ""),
    ("你好 © \t\n", ""),
    ("Model™", "modeltm"),
])
def test_normalize_text(raw, expected):
    assert normalize_text(raw) == expected


@pytest.mark.parametrize("n, words", [
    (0, "zero"), (13, "thirteen"), (40, "forty"), (42, "forty two"), (100, "one hundred"),
    (105, "one hundred five"), (1_000_001, "one million one"), (2_000_000_000, "two billion"),
])
def test_number_to_words(n, words):
    assert number_to_words(n) == words


def test_character_map_is_the_notebooks():
    assert NUM_CLASSES == 29 and BLANK == 28 and len(CHARS) == 28
    assert CHARS[0] == "'" and CHARS[1] == " " and CHARS[2] == "a" and CHARS[27] == "z"
    ids = encode("Go 2 it's")
    assert decode_ids(ids) == "go two it's" and BLANK not in ids and max(ids) < BLANK


# ------------------------------------------------------------------------------------- features

def test_logmel_shape_rate_and_normalisation():
    features = FeatureConfig()
    feats = LogMel(features)(torch.randn(SAMPLE_RATE))  # one second at 16 kHz
    assert feats.shape == (80, SAMPLE_RATE // features.hop_length + 1)
    assert feats.mean(dim=-1).abs().max() < 1e-4  # per-utterance, per-bin normalisation
    seed = LogMel(SEED_FEATURES)(torch.randn(8000))  # the notebook: 81 mels at 8 kHz, 10 ms hop
    assert seed.shape == (81, 101)


def test_specaugment_masks_training_batches_only_when_enabled():
    feats = torch.randn(4, 80, 300)
    torch.manual_seed(0)
    masked = SpecAugment(SpecAugmentConfig(rate=1.0))(feats.clone())
    assert not torch.equal(masked, feats)
    assert torch.equal(SpecAugment(SpecAugmentConfig(enabled=False))(feats.clone()), feats)


# ------------------------------------------------------------------------------------- models

def test_seed_model_is_the_notebooks_architecture():
    model = build_model(preset("seed"))
    assert count_parameters(model) == 4_851_930  # about 4.85 M, as the notebook's SpeechRecognition
    conv = model.cnn[0]
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (81, 81, (10,), (2,))
    assert [m.out_features for m in model.dense if isinstance(m, torch.nn.Linear)] == [128, 128]
    assert (model.lstm.hidden_size, model.lstm.num_layers, model.lstm.bidirectional) == (1024, 1, False)
    assert model.final_fc.out_features == 29
    h0, c0 = model._init_hidden(3)
    assert h0.shape == c0.shape == (1, 3, 1024)
    log_probs, lengths = model(torch.randn(2, 81, 200), torch.tensor([200, 120]))
    assert log_probs.shape == (2, 101, 29) and lengths.tolist() == [101, 61]


def test_default_model_is_small_and_subsamples_by_three():
    model = build_model(preset("default"))
    assert 2e6 < count_parameters(model) < 6e6
    log_probs, lengths = model(torch.randn(2, 80, 300), torch.tensor([300, 150]))
    assert log_probs.shape == (2, 100, 29) and lengths.tolist() == [100, 50]
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(2, 100), atol=1e-4)


def test_widening_a_model_keeps_what_it_computes_and_adds_units():
    from srcore.model import ModelConfig, widen_recurrent
    torch.manual_seed(0)
    config = ModelConfig(hidden_size=16, num_layers=3, conv_channels=24)
    model = build_model(config).eval()
    wide, wide_config = widen_recurrent(model, config, 28)
    feats, lengths = torch.randn(3, 80, 90), torch.tensor([90, 60, 31])
    (before, out_lengths), (after, _) = model(feats, lengths), wide.eval()(feats, lengths)
    for row, length in enumerate(out_lengths.tolist()):
        assert torch.allclose(before[row, :length], after[row, :length], atol=1e-6)
    assert wide_config.hidden_size == 28 and wide.rnn.hidden_size == 28
    assert count_parameters(wide) > 2 * count_parameters(model)
    with pytest.raises(ValueError, match="can only widen"):
        widen_recurrent(model, config, 8)


# ------------------------------------------------------------------------------------- training

def epoch_rows(run_dir) -> list[dict]:
    return RunFolder(run_dir).read_metrics("epoch")


def test_tiny_model_overfits_four_words_and_writes_the_run_folder(trained_run):
    rows = epoch_rows(trained_run)
    assert rows[-1]["wer"] == 0.0 and rows[-1]["cer"] == 0.0
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] / 5
    for key in ("epoch", "step", "train_loss", "valid_loss", "wer", "cer", "lr", "elapsed_s",
                "audio_s_per_s"):
        assert key in rows[-1]
    run = RunFolder(trained_run)
    assert run.read_status()["state"] == "finished"
    assert run.read_config()["model"] == "tiny"
    assert run.log_path.read_text().count("WER") >= len(rows)
    assert run.curve_path.is_file()
    for name in ("best", "last"):
        assert {"config.json", "model.safetensors"} <= {p.name for p in (run.path / "checkpoints" / name).iterdir()}
    assert (run.last_dir / "resume.pt").is_file() and not (run.best_dir / "resume.pt").exists()
    meta = json.loads((run.best_dir / "config.json").read_text())
    assert meta["model"]["architecture"] == "default" and meta["alphabet"]["blank"] == 28
    assert meta["metrics"]["wer"] == 0.0


def test_init_from_with_a_larger_hidden_size_trains_the_widened_model(trained_model, word_corpus,
                                                                      tmp_path):
    config = TrainConfig(train=str(word_corpus), valid=str(word_corpus), model="tiny", epochs=1,
                         batch_size=4, lr=1e-7, warmup_steps=0, augment=False, specaugment=False,
                         workers=0, threads=1, init_from=str(trained_model), hidden_size=96,
                         out=str(tmp_path / "wide"))
    run = train(config)
    assert epoch_rows(run.path)[-1]["wer"] == 0.0  # it still knows the four words
    assert load_model(run.best_dir)[1].hidden_size == 96
    with pytest.raises(ValueError, match="--num-layers 2: --init-from .* has 1"):
        train(replace(config, num_layers=2, out=str(tmp_path / "deeper")))


def test_bad_rows_are_skipped_counted_and_named(word_corpus, tmp_path):
    folder = word_corpus.parent
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not really audio")
    rows = [json.loads(line) for line in word_corpus.read_text().splitlines()]
    rows = [{**r, "key": str(folder / r["key"])} for r in rows]
    rows += [{"key": str(tmp_path / "missing.wav"), "text": "yes"},
             {"key": str(corrupt), "text": "no"},
             {"key": rows[0]["key"], "text": " ?! "}]
    manifest = tmp_path / "bad.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows) + "{not json\n")
    out = tmp_path / "run"
    train(TrainConfig(train=str(manifest), valid=str(manifest), model="tiny", epochs=1, batch_size=4,
                      workers=0, threads=1, out=str(out)))
    row = epoch_rows(out)[-1]
    assert row["skipped"] == {"train": 4, "valid": 4}
    log = (out / "train.log").read_text()
    assert "skipped 4 clips" in log
    for reason in ("missing audio file", "unreadable audio file", "empty transcript", "not valid JSON"):
        assert f"1 {reason}" in log
    assert "missing.wav): missing audio file" in log and "corrupt.wav): unreadable audio file" in log


def test_a_run_without_usable_clips_fails_and_says_why(tmp_path):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text(json.dumps({"key": "gone.wav", "text": "hello"}) + "\n")
    with pytest.raises(ValueError, match="no usable utterances"):
        train(TrainConfig(train=str(manifest), valid=str(manifest), model="tiny", out=str(tmp_path / "run")))
    status = RunFolder(tmp_path / "run").read_status()
    assert status["state"] == "failed" and "no usable utterances" in status["error"]


def resume_config(corpus, out, max_steps) -> TrainConfig:
    return TrainConfig(train=str(corpus), valid=str(corpus), model="tiny", epochs=3, batch_size=2,
                       lr=3e-3, warmup_steps=4, augment=True, workers=0, threads=1, seed=3,
                       max_steps=max_steps, out=str(out))


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path_factory):
    corpus = write_corpus(tmp_path_factory.mktemp("resume"), WORDS + ["yes no", "stop go"])
    whole, split = tmp_path_factory.mktemp("whole"), tmp_path_factory.mktemp("split")
    train(resume_config(corpus, whole, max_steps=5))  # 3 batches an epoch: crosses an epoch
    train(resume_config(corpus, split, max_steps=2))  # "killed" mid-epoch...
    assert RunFolder(split).read_status()["step"] == 2
    train(replace(resume_config(corpus, split, max_steps=5), resume=True))  # ...and resumed
    a = load_file(str(whole / "checkpoints" / "last" / "model.safetensors"))
    b = load_file(str(split / "checkpoints" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def test_kill_mid_write_leaves_a_loadable_checkpoint(trained_run, tmp_path):
    import shutil
    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    last = run / "checkpoints" / "last"
    last.rename(last.with_name("last.old"))  # a kill between the two renames of a swap
    (last.with_name("last.new")).mkdir()  # and a half-written staging folder
    model, config = load_model(last)
    assert config.hidden_size == 64


def test_resume_continues_from_a_complete_checkpoint_a_kill_left_before_its_swap(trained_run, word_corpus, tmp_path):
    import shutil
    run = RunFolder(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    steps = epoch_rows(run.path)[-1]["step"]
    run.last_dir.rename(run.last_dir.with_name("last.new"))  # staged whole, killed before the rename
    train(TrainConfig(train=str(word_corpus), valid=str(word_corpus), model="tiny", epochs=201,
                      batch_size=4, lr=1e-2, warmup_steps=0, augment=False, specaugment=False, workers=0,
                      out=str(run.path), seed=0, log_every=10, threads=1, lr_patience=100, resume=True))
    assert epoch_rows(run.path)[-1]["step"] == steps + 1
    assert f"at epoch 201, step {steps}" in run.log_path.read_text()  # resumed: not a fresh start


def test_a_checkpoint_left_beside_its_folder_by_a_kill_still_counts_as_a_trained_run(trained_run, tmp_path):
    import shutil
    run = RunFolder(tmp_path / "run")
    shutil.copytree(trained_run, run.path)
    shutil.rmtree(run.best_dir)
    run.last_dir.rename(run.last_dir.with_name("last.old"))  # a kill mid-swap: only the old copy is whole
    assert run.has_checkpoints()  # a fresh start would replace it, so it is refused
    shutil.rmtree(run.last_dir.with_name("last.old"))
    assert not run.has_checkpoints()


def train_on_two_processes(manifest, out, epochs: int, timeout_s: float) -> None:
    """`srcore.train` of the tiny model under torchrun, two CPU processes, batch 1; past
    `timeout_s` (a hang) all its processes are stopped and the test fails."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_port", str(free_port()), "-m", "srcore.train",
           "--train", str(manifest), "--valid", str(manifest), "--model", "tiny",
           "--epochs", str(epochs), "--batch-size", "1", "--workers", "0", "--threads", "1",
           "--device", "cpu", "--out", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            start_new_session=True)
    try:
        _, stderr = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.terminate()  # torchrun stops its workers (they are not in its process group)
        try:
            _, stderr = proc.communicate(timeout=60)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail(f"still running after {timeout_s} s (a hang): {stderr[-2000:]}")
    assert proc.returncode == 0, stderr[-3000:]


def test_two_process_torchrun_on_cpu(word_corpus, tmp_path):
    out = tmp_path / "ddp"
    train_on_two_processes(word_corpus, out, epochs=2, timeout_s=300)
    rows = epoch_rows(out)
    assert [r["epoch"] for r in rows] == [1, 2]  # only rank 0 writes
    assert rows[-1]["step"] == 4  # 4 clips, 2 ranks, batch 1: 2 steps an epoch
    assert "x2" in (out / "train.log").read_text()
    load_model(out / "checkpoints" / "last")


def test_two_process_torchrun_skips_a_batch_one_rank_cannot_read_on_every_rank(tmp_path):
    # one clip is damaged: the rank that draws it skips its batch, and the other must skip its
    # own at the same step, or their gradient all-reduces pair up wrongly and the run hangs
    manifest = write_corpus(tmp_path / "words", WORDS)
    first = json.loads(manifest.read_text().splitlines()[0])
    (manifest.parent / first["key"]).write_bytes(b"RIFF this is not audio")
    out = tmp_path / "ddp"
    train_on_two_processes(manifest, out, epochs=1, timeout_s=120)
    rows = epoch_rows(out)
    assert rows[-1]["step"] == 1  # 4 clips, 2 ranks, batch 1: 2 steps, the damaged clip's skipped on both
    assert rows[-1]["skipped"]["train"] == 1
    load_model(out / "checkpoints" / "last")


# ------------------------------------------------------------------------------------- shipped model

@pytest.mark.skipif(not (DEFAULT_MODEL_DIR / "model.safetensors").is_file(),
                    reason="checkpoints/default is not in this checkout")
def test_shipped_model_transcribes_without_a_model_flag(tmp_path):
    from srcore.audio import write_audio
    clip = tmp_path / "clip.wav"
    write_audio(clip, np.concatenate([np.zeros(3200, np.float32), speak("seven", "en-us", 150),
                                      np.zeros(3200, np.float32)]), SAMPLE_RATE)
    result = subprocess.run([sys.executable, "-m", "srcore.transcribe", str(clip)],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "seven"
    meta = json.loads((DEFAULT_MODEL_DIR / "config.json").read_text())
    assert meta["model"]["architecture"] == "default"
    assert (DEFAULT_MODEL_DIR / "README.md").is_file()


def test_unpacked_gru_matches_the_packed_one_on_valid_frames():
    from srcore.model import packed_rnn, unpacked_bidirectional_gru
    torch.manual_seed(0)
    rnn = torch.nn.GRU(16, 8, num_layers=3, batch_first=True, bidirectional=True, dropout=0.0)
    x = torch.randn(4, 30, 16, requires_grad=True)
    lengths = torch.tensor([30, 7, 19, 1])
    valid = (torch.arange(30) < lengths[:, None]).unsqueeze(-1).float()
    a = packed_rnn(rnn, x, lengths)
    b = unpacked_bidirectional_gru(rnn, x, lengths)
    assert torch.allclose(a * valid, b * valid, atol=1e-5)
    grads = [torch.autograd.grad((out * valid).sum(), [x, *rnn.parameters()]) for out in (a, b)]
    for ga, gb in zip(*grads):
        assert torch.allclose(ga, gb, atol=1e-5)


def test_tokenizer_round_trips_through_tokens_txt(tmp_path):
    from srcore.checkpoint import load_tokenizer, write_model_dir
    from srcore.model import build_model, preset
    from srcore.text import DEFAULT_TOKENIZER, TOKENS_FILE, Tokenizer
    text = DEFAULT_TOKENIZER.to_text()
    assert text.splitlines()[1] == "<space> 1" and text.splitlines()[-1] == "<blank> 28"
    assert Tokenizer.from_text(text) == DEFAULT_TOKENIZER
    config = preset("tiny")
    model_dir = write_model_dir(tmp_path / "m", build_model(config), config)
    assert (model_dir / TOKENS_FILE).read_text() == text
    (model_dir / TOKENS_FILE).unlink()  # a model saved before tokens.txt: config.json's alphabet
    assert load_tokenizer(model_dir) == DEFAULT_TOKENIZER
    with pytest.raises(ValueError, match="symbol id"):
        Tokenizer.from_text("a 0\nnonsense\n")


def test_weight_decay_spares_biases_and_norms():
    from srcore.train import parameter_groups
    model = build_model(preset("default"))
    decayed, spared = parameter_groups(model, 0.01)
    assert decayed["weight_decay"] == 0.01 and spared["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decayed["params"]) and all(p.dim() == 1 for p in spared["params"])
    assert len(decayed["params"]) + len(spared["params"]) == len(list(model.parameters()))


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "config.json").write_text("{not json"), "config.json: not valid JSON"),
    (lambda d: (d / "config.json").write_text('{"model": {"architecture": "transformer"}}'),
     "unknown architecture 'transformer'"),
    (lambda d: (d / "config.json").write_text('{"model": {"architecture": "default", "hidden_size": 4096}}'),
     "hidden_size = 4096"),
    (lambda d: (d / "model.safetensors").write_bytes((d / "model.safetensors").read_bytes()[:5000]),
     "model.safetensors: weights do not fit"),
])
def test_a_broken_model_directory_is_one_line_naming_the_file(trained_model, tmp_path, damage, message):
    import shutil
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    damage(model_dir)
    with pytest.raises(ValueError, match=message):
        load_model(model_dir)
    result = subprocess.run([sys.executable, "-m", "srcore.transcribe", "--model", str(model_dir), "x.wav"],
                            capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert message.split(":")[0].split("'")[0] in result.stderr
