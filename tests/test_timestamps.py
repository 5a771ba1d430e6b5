"""Word timings from a decoder's token path, subtitles from them, and transcribe's output formats."""
import json
import random
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE_RATE, speak
from test_lm import lm_dir, peaky  # noqa: F401  (lm_dir is a fixture)

from srcore.decoding import BeamDecoder, collapse, decode_with_path, greedy_decode
from srcore.text import BLANK, CHAR_TO_ID
from srcore.timestamps import Segment, Word, clock, segments, to_srt, to_vtt, word_timings
from srcore.transcribe import Recognizer

FRAME_S = 0.03


def ids(text: str) -> list[int]:
    """A path of one frame per character, '_' for blank."""
    return [BLANK if c == "_" else CHAR_TO_ID[c] for c in text]


def test_a_word_runs_from_its_first_characters_frame_to_the_end_of_its_last():
    path = ids("__hh_i__  _yoo_u_") + [BLANK] * 3
    assert word_timings(path, FRAME_S) == [Word("hi", 2 * FRAME_S, 6 * FRAME_S),
                                           Word("you", 11 * FRAME_S, 16 * FRAME_S)]
    assert word_timings(path, FRAME_S, offset_s=10.0)[0].start == pytest.approx(10.06)
    assert word_timings([BLANK] * 5, FRAME_S) == []


def test_the_timed_words_are_the_collapsed_text_of_any_path():
    rng = random.Random(0)
    alphabet = list(range(29)) + [CHAR_TO_ID[" "]] * 6 + [BLANK] * 10
    for _ in range(200):
        path = [rng.choice(alphabet) for _ in range(rng.randint(0, 40))]
        words = word_timings(path, FRAME_S)
        assert " ".join(w.word for w in words) == collapse(path)
        assert all(0 <= w.start < w.end <= len(path) * FRAME_S for w in words)
        assert all(a.end <= b.start for a, b in zip(words, words[1:]))


def test_both_decoders_give_a_path_of_one_token_per_frame(lm_dir):  # noqa: F811
    emissions = peaky("the cat sat on the mat", ambiguous={10: "d"})
    text, path = decode_with_path(greedy_decode, emissions)
    assert text == "the cat sad on the mat" and len(path) == emissions.shape[0]
    decoder = BeamDecoder(beam_size=16, lm=str(lm_dir), lm_weight=1.0)
    text, path = decode_with_path(decoder, emissions)
    assert text == "the cat sat on the mat" and len(path) == emissions.shape[0]
    words = word_timings(path, FRAME_S)
    assert [w.word for w in words] == text.split()
    # peaky() gives each character three frames: "cat" starts at character 4
    assert words[1].start == pytest.approx(4 * 3 * FRAME_S)
    assert decode_with_path(decoder, emissions[:0]) == ("", [])


def test_subtitles_break_at_pauses_and_at_length():
    words = [Word("one", 0.0, 0.4), Word("two", 0.5, 0.9), Word("three", 2.0, 2.5)]
    assert segments(words) == [Segment(0.0, 0.9, "one two"), Segment(2.0, 2.5, "three")]
    many = [Word("word", i * 0.5, i * 0.5 + 0.4) for i in range(40)]
    subtitles = segments(many)
    assert " ".join(s.text for s in subtitles) == " ".join(["word"] * 40)
    assert all(len(s.text) <= 84 and s.end - s.start <= 7.0 for s in subtitles)
    assert len(segments(many, max_chars=20)) == 10
    assert segments([]) == []


def test_srt_and_vtt_are_written_to_their_formats():
    subtitles = [Segment(1.5, 3.25, "hello there"), Segment(3661.0, 3662.0, "later")]
    assert clock(3661.0015) == "01:01:01,002" and clock(-0.1, ".") == "00:00:00.000"
    assert to_srt(subtitles) == ("1\n00:00:01,500 --> 00:00:03,250\nhello there\n\n"
                                 "2\n01:01:01,000 --> 01:01:02,000\nlater\n\n")
    assert to_vtt(subtitles) == ("WEBVTT\n\n00:00:01.500 --> 00:00:03.250\nhello there\n\n"
                                 "01:01:01.000 --> 01:01:02.000\nlater\n\n")


def padded_word(tmp_path, word="stop", name="stop.wav"):
    """One of the tiny model's words with 0.1 s of silence each side (it learned clean clips):
    the clip's path and where the word is, in seconds."""
    pad = np.zeros(SAMPLE_RATE // 10, np.float32)
    spoken = speak(word)
    path = tmp_path / name
    sf.write(path, np.concatenate([pad, spoken, pad]), SAMPLE_RATE)
    return path, (0.1, 0.1 + len(spoken) / SAMPLE_RATE)


def test_a_transcript_says_when_each_word_was_said(trained_model, tmp_path):
    path, (start, end) = padded_word(tmp_path)
    result = Recognizer.load(trained_model, greedy=True).transcribe_file(path)
    assert result.text == "stop" and [w.word for w in result.words] == ["stop"]
    # the output frames tile the audio, so a frame index times frame_s is a time in the clip
    assert result.log_probs.shape[0] * result.frame_s == pytest.approx(result.audio_s, abs=result.frame_s)
    word = result.words[0]
    assert start - 0.1 <= word.start < word.end <= end + 0.1


def run_transcribe(*args):
    return subprocess.run([sys.executable, "-m", "srcore.transcribe", "--threads", "1", *map(str, args)],
                          capture_output=True, text=True, timeout=120)


def test_transcribe_writes_json_and_subtitles(trained_model, tmp_path):
    path, (start, end) = padded_word(tmp_path)
    done = run_transcribe("--model", trained_model, "--greedy", "--format", "json", path)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    assert record["text"] == "stop" and record["file"] == str(path)
    [(word, word_start, word_end)] = record["words"]
    assert word == "stop" and start - 0.1 <= word_start < word_end <= end + 0.1
    assert record["segments"] == [[word_start, word_end, "stop"]]
    out = tmp_path / "subs"
    done = run_transcribe("--model", trained_model, "--greedy", "--format", "srt", "--output-dir", out, path)
    assert done.returncode == 0, done.stderr
    srt = (out / "stop.srt").read_text()
    assert re.fullmatch(r"1\n00:00:00,\d{3} --> 00:00:0\d,\d{3}\nstop\n\n", srt), srt


def test_transcribe_refuses_outputs_that_would_collide(trained_model, tmp_path):
    first, _ = padded_word(tmp_path)
    (tmp_path / "b").mkdir()
    second, _ = padded_word(tmp_path / "b")
    done = run_transcribe("--model", trained_model, "--format", "srt", first, second)
    assert done.returncode == 2 and "needs --output-dir" in done.stderr
    done = run_transcribe("--model", trained_model, "--output-dir", tmp_path / "o", first, second)
    assert done.returncode == 2 and "its own name" in done.stderr


def test_transcribe_never_writes_over_a_file_unasked(trained_model, tmp_path):
    path, _ = padded_word(tmp_path)
    reference = path.with_suffix(".txt")  # a reference transcript beside its clip
    reference.write_text("the reference\n")
    done = run_transcribe("--model", trained_model, "--greedy", "--output-dir", tmp_path, path)
    assert done.returncode == 2 and f"{reference} exists" in done.stderr and "--overwrite" in done.stderr
    assert reference.read_text() == "the reference\n"
    done = run_transcribe("--model", trained_model, "--greedy", "--output-dir", tmp_path, "--overwrite", path)
    assert done.returncode == 0, done.stderr
    assert reference.read_text() == "stop\n" and not list(tmp_path.glob(".*.tmp"))
    done = run_transcribe("--model", trained_model, "--greedy", "--beam", "8", path)
    assert done.returncode == 1 and "--greedy is best-path decoding" in done.stderr
