"""Transcribe and evaluate a trained model directory (library and command line)."""
import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE_RATE, WORDS, speak

from srcore.audio import AudioError
from srcore.transcribe import Recognizer, chunk_bounds


def test_recognizer_hears_each_training_word(trained_model, word_corpus):
    recognizer = Recognizer.load(trained_model)
    for path in sorted((word_corpus.parent / "audio").glob("*.wav")):
        expected = path.stem.split("_", 1)[1]
        assert recognizer.transcribe_file(path).text == expected


def test_any_rate_and_stereo_give_the_same_words(trained_model):
    recognizer = Recognizer.load(trained_model)
    mono = np.concatenate([np.zeros(1600, np.float32), speak("stop"), np.zeros(1600, np.float32)])
    stereo_44k = np.stack([mono, mono], axis=1)
    import torch
    import torchaudio
    stereo_44k = torchaudio.functional.resample(torch.from_numpy(stereo_44k.T.copy()), SAMPLE_RATE,
                                                44100).T.numpy()
    result = recognizer.transcribe(stereo_44k, 44100)
    assert result.text == "stop"
    assert result.audio_s == pytest.approx(len(mono) / SAMPLE_RATE, abs=0.01)
    assert result.log_probs.shape[1] == 29


def test_long_audio_is_chunked_at_quiet_points():
    wave = np.zeros(SAMPLE_RATE * 50, np.float32)
    wave[::7] = 0.5  # loud everywhere...
    wave[SAMPLE_RATE * 18:SAMPLE_RATE * 18 + 320] = 0  # ...but one quiet 20 ms inside the search window
    import torch
    bounds = chunk_bounds(torch.from_numpy(wave), SAMPLE_RATE, chunk_s=20.0)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(wave)
    assert all(b[1] == n[0] for b, n in zip(bounds, bounds[1:]))
    assert all(end - start <= 20 * SAMPLE_RATE for start, end in bounds)
    assert SAMPLE_RATE * 18 <= bounds[0][1] <= SAMPLE_RATE * 18 + 320


def test_no_cut_leaves_a_sliver_too_short_to_read():
    import torch
    wave = torch.full((SAMPLE_RATE * 20 + 1,), 0.5)
    wave[-SAMPLE_RATE // 100:] = 0  # the quietest 10 ms is the very end of the search window
    bounds = chunk_bounds(wave, SAMPLE_RATE, chunk_s=20.0)
    assert bounds[-1][1] == wave.numel() and all(b[1] == n[0] for b, n in zip(bounds, bounds[1:]))
    assert all(end - start >= SAMPLE_RATE for start, end in bounds)
    assert all(end - start <= 20 * SAMPLE_RATE for start, end in bounds)


def test_bad_audio_is_a_clear_error(trained_model, tmp_path):
    recognizer = Recognizer.load(trained_model)
    fake = tmp_path / "notes.wav"
    fake.write_text("this is a text file")
    with pytest.raises(AudioError, match="notes.wav.*unreadable"):
        recognizer.transcribe_file(fake)
    blip = tmp_path / "blip.wav"
    sf.write(blip, np.full(100, 0.3, np.float32), SAMPLE_RATE)
    with pytest.raises(AudioError, match="blip.wav.*too short"):
        recognizer.transcribe_file(blip)


def test_beam_search_agrees_with_greedy_on_clear_words(trained_model, word_corpus):
    greedy, beam = Recognizer.load(trained_model), Recognizer.load(trained_model, beam=8)
    for path in sorted((word_corpus.parent / "audio").glob("*.wav")):
        assert beam.transcribe_file(path).text == greedy.transcribe_file(path).text


def run_module(*args):
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300)


def test_transcribe_cli_prints_one_line_per_file(trained_model, word_corpus):
    files = sorted(str(p) for p in (word_corpus.parent / "audio").glob("*.wav"))
    out = run_module("srcore.transcribe", "--model", str(trained_model), *files)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split("\t")[1] for line in lines] == [f.rsplit("_", 1)[1][:-4] for f in files]


def test_evaluate_cli_reports_per_utterance_and_totals(trained_model, word_corpus, tmp_path):
    report = tmp_path / "report.jsonl"
    out = run_module("srcore.evaluate", "--model", str(trained_model), "--manifest",
                     str(word_corpus), "--out", str(report))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["n"] == len(WORDS) and summary["wer"] == 0.0 and summary["cer"] == 0.0
    assert summary["audio_s"] > 0 and summary["rtf"] > 0  # speed is for bench/, not tests
    assert "speakers" not in summary  # one speaker: nothing to break down
    rows = [json.loads(line) for line in report.read_text().splitlines()]
    assert {r["ref"] for r in rows} == set(WORDS)
    assert all(r["hyp"] == r["ref"] and r["diff"] == r["ref"] for r in rows)


def test_evaluate_breaks_errors_down_by_speaker_and_word(trained_model, word_corpus, tmp_path):
    rows = [json.loads(line) for line in word_corpus.read_text().splitlines()]
    for row in rows:  # yes, no: ann; stop, go: bob, whose "stop" is transcribed as "top"
        row["key"] = str(word_corpus.parent / row["key"])
        row["speaker"] = "ann" if row["text"] in ("yes", "no") else "bob"
        row["text"] = "top" if row["text"] == "stop" else row["text"]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_module("srcore.evaluate", "--model", str(trained_model), "--manifest", str(manifest))
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["speakers"] == {"bob": {"n": 2, "wer": 0.5, "cer": 0.2},
                                   "ann": {"n": 2, "wer": 0.0, "cer": 0.0}}
    assert list(summary["speakers"]) == ["bob", "ann"]  # worst first
    assert "most frequent errors: 1x (top->stop)" in out.stderr


@pytest.mark.parametrize("rows", [[], [{"key": "gone.wav", "text": "hello"}]])
def test_evaluate_over_nothing_fails_and_says_why(trained_model, tmp_path, rows):
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = subprocess.run([sys.executable, "-m", "srcore.evaluate", "--model", str(trained_model),
                             "--manifest", str(manifest)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "no clip could be scored" in result.stderr
    assert '"wer"' not in result.stdout


def test_a_silent_file_is_said_to_be_silent(trained_model, tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    result = subprocess.run([sys.executable, "-m", "srcore.transcribe", "--model", str(trained_model),
                             str(path)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "quiet.wav: the audio is silent" in result.stderr
    assert result.stdout.strip() == ""
