"""Manifest reading: every malformed row is skipped with a reason, every unreadable file is one
clear error; NeMo rows and byte-order marks are read."""
import json

import numpy as np
import pytest
import soundfile as sf

from srcore.manifest import OUTSIDE_ALLOWED, SkipReport, read_manifest


@pytest.fixture
def clip(tmp_path):
    sf.write(tmp_path / "a.wav", np.full(8000, 0.1, np.float32), 16000)
    return tmp_path / "a.wav"


def write_rows(path, rows, prefix=""):
    path.write_text(prefix + "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("row, reason", [
    ({"key": None, "text": "x"}, "lacks 'key'"),
    ({"key": 5, "text": "x"}, "'key' must be a file path"),
    ({"key": "a.wav", "text": None}, "'text' must be a string"),
    ({"key": "a.wav", "text": 123}, "'text' must be a string"),
    ({"key": "a.wav", "text": ["zero"]}, "'text' must be a string"),
    ({"key": "a.wav", "text": "?!"}, "empty transcript"),
    ({"key": "x" * 5000 + ".wav", "text": "x"}, "unusable audio path"),  # a name too long
    (["a.wav", "x"], "not a JSON object"),
])
def test_malformed_rows_are_skipped_with_their_reason(tmp_path, clip, row, reason):
    manifest = write_rows(tmp_path / "m.jsonl", [{"key": "a.wav", "text": "fine"}, row])
    report = SkipReport()
    assert [u.text for u in read_manifest(manifest, report=report)] == ["fine"]
    assert report.total == 1 and reason in report.examples[0] and "m.jsonl:2" in report.examples[0]


def test_a_flood_of_bad_rows_logs_a_few_and_counts_the_rest(tmp_path, caplog):
    (tmp_path / "flood.jsonl").write_text("x\n" * 500)
    report = SkipReport()
    with caplog.at_level("WARNING"):
        assert read_manifest(tmp_path / "flood.jsonl", report=report) == []
    assert report.total == 500 and len(report.examples) == 20
    assert sum("skipping" in r.message for r in caplog.records) == 20
    assert "skipped 500 clips" in caplog.records[-1].getMessage()


def test_a_byte_order_mark_does_not_lose_the_first_row(tmp_path, clip):
    manifest = write_rows(tmp_path / "m.jsonl", [{"key": "a.wav", "text": "one"}, {"key": "a.wav", "text": "two"}],
                          prefix="\ufeff")
    assert [u.text for u in read_manifest(manifest)] == ["one", "two"]


def test_nemo_rows_and_stored_durations(tmp_path, clip):
    manifest = write_rows(tmp_path / "m.jsonl", [{"audio_filepath": "a.wav", "text": "nemo", "duration": 7.0}])
    assert read_manifest(manifest)[0].duration == 7.0  # trusted: the audio is not opened
    assert read_manifest(manifest, check_audio=True)[0].duration == 0.5  # --check-audio looks


def test_unreadable_manifests_are_one_error_naming_the_file(tmp_path, clip):
    (tmp_path / "latin1.jsonl").write_bytes(b'{"key": "a.wav", "text": "caf\xe9"}\n')
    with pytest.raises(ValueError, match="latin1.jsonl: not UTF-8"):
        read_manifest(tmp_path / "latin1.jsonl")
    with pytest.raises(FileNotFoundError, match="a folder, not a manifest"):
        read_manifest(tmp_path)
    (tmp_path / "array.json").write_text(json.dumps([{"key": "a.wav", "text": "hi"}] * 3, indent=1))
    with pytest.raises(ValueError, match="array.json: one JSON array; a manifest is JSON lines"):
        read_manifest(tmp_path / "array.json")


def test_paths_allow_refuses_are_skipped_alike_existing_or_not(tmp_path, clip):
    """What `allow` refuses is skipped with one reason whether or not it exists (a reader
    that may only open some folders must not tell which files exist elsewhere)."""
    opened = []

    def allow(path):
        opened.append(path.name)
        return path.name == "a.wav"

    sf.write(tmp_path / "b.wav", np.full(8000, 0.1, np.float32), 16000)
    manifest = write_rows(tmp_path / "m.jsonl", [{"key": "a.wav", "text": "fine"},
                                                 {"key": "b.wav", "text": "exists"},
                                                 {"key": "c.wav", "text": "does not"}])
    report = SkipReport()
    assert [u.text for u in read_manifest(manifest, report=report, allow=allow)] == ["fine"]
    assert report.reasons == {OUTSIDE_ALLOWED: 2} and opened == ["a.wav", "b.wav", "c.wav"]


def test_a_symlink_loop_is_one_skipped_row(tmp_path, clip):
    (tmp_path / "loop.wav").symlink_to(tmp_path / "loop.wav")
    manifest = write_rows(tmp_path / "m.jsonl", [{"key": "a.wav", "text": "fine"},
                                                 {"key": "loop.wav", "text": "round"}])
    for allow in (None, lambda path: path.resolve().is_relative_to(tmp_path)):  # as the app's
        report = SkipReport()
        assert [u.text for u in read_manifest(manifest, report=report, allow=allow)] == ["fine"]
        assert report.total == 1 and "loop.wav" in report.examples[0]  # skipped, not a crash
