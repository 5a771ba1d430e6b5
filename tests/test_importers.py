"""Importers: tiny corpora in each real layout become native manifests (no network)."""
import argparse
import gzip
import json
import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from srcore import importers
from srcore.importers import CorpusFormatError, add_cli, import_corpus
from srcore.manifest import read_manifest, split_rows

RATE = 16000
CLIP_S = 0.25


def write_clip(path: Path, seconds: float = CLIP_S, seed: int = 0) -> Path:
    """A short quiet noise clip; the format follows the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    noise = np.random.default_rng(seed).uniform(-0.1, 0.1, int(seconds * RATE)).astype(np.float32)
    sf.write(str(path), noise, RATE)
    return path


def read_rows(manifest: Path) -> list[dict]:
    return [json.loads(line) for line in manifest.read_text(encoding="utf-8").splitlines()]


def key_path(manifest: Path, key: str) -> Path:
    path = Path(key)
    return path if path.is_absolute() else manifest.parent / path


def check_outputs(report, out: Path, expected_total: int, speaker_disjoint: bool) -> dict:
    """Shared checks: the three manifests agree, keys resolve, read_manifest accepts every row."""
    rows = {name: read_rows(out / f"{name}.jsonl") for name in ("all", "train", "valid")}
    assert report.manifests == {name: out / f"{name}.jsonl" for name in rows}
    assert len(rows["all"]) == expected_total == report.train + report.valid
    assert (len(rows["train"]), len(rows["valid"])) == (report.train, report.valid)
    assert report.train > 0 and report.valid > 0
    for name, subset in rows.items():
        for row in subset:
            assert set(row) <= {"key", "text", "duration", "speaker"}
            assert key_path(out / f"{name}.jsonl", row["key"]).is_file()
            assert row["text"] and row["duration"] > 0
        assert len(read_manifest(out / f"{name}.jsonl")) == len(subset)
    if speaker_disjoint:
        train_speakers = {row["speaker"] for row in rows["train"]}
        valid_speakers = {row["speaker"] for row in rows["valid"]}
        assert train_speakers and valid_speakers and not train_speakers & valid_speakers
    return rows


# --------------------------------------------------------------------------- fixtures

def make_librispeech(root: Path, speakers=("19", "26", "103", "1034"), per_speaker=3) -> Path:
    """SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt plus ID.flac, as in dev-clean."""
    for s, speaker in enumerate(speakers):
        chapter = root / speaker / "198"
        lines = []
        for i in range(per_speaker):
            utt = f"{speaker}-198-{i:04d}"
            write_clip(chapter / f"{utt}.flac", seed=s * 10 + i)
            lines.append(f"{utt} HELLO WORLD NUMBER {i}")
        (chapter / f"{speaker}-198.trans.txt").write_text("\n".join(lines) + "\n")
    return root


def test_librispeech_speaker_disjoint_with_bad_rows(tmp_path, caplog):
    src = make_librispeech(tmp_path / "LibriSpeech" / "dev-clean")
    trans = src / "19" / "198" / "19-198.trans.txt"
    trans.write_text(trans.read_text() + "19-198-0100 NO SUCH AUDIO\n19-198-0000\n")
    out = tmp_path / "manifests"
    with caplog.at_level(logging.WARNING):
        report = import_corpus("librispeech", src, out, valid_fraction=0.25, seed=1)
    rows = check_outputs(report, out, 12, speaker_disjoint=True)
    assert report.skipped.reasons == {"missing audio file": 1, "empty transcript": 1}
    assert "19-198-0100" in caplog.text and "missing audio file" in caplog.text
    assert report.valid == 3  # one whole speaker of four
    assert all(Path(row["key"]).is_absolute() for row in rows["all"])  # audio lies outside OUT
    assert {row["speaker"] for row in rows["all"]} == {"19", "26", "103", "1034"}
    assert rows["all"][0]["text"].startswith("HELLO WORLD")


def test_librispeech_keys_relative_when_audio_under_out(tmp_path):
    src = make_librispeech(tmp_path / "dev-clean")
    report = import_corpus("librispeech", src, src, valid_fraction=0.25)
    rows = check_outputs(report, src, 12, speaker_disjoint=True)
    assert all(not Path(row["key"]).is_absolute() for row in rows["all"])
    assert rows["all"][0]["key"].endswith(".flac") and rows["all"][0]["key"].count("/") == 2


def test_librispeech_without_transcripts_is_a_clear_error(tmp_path):
    write_clip(tmp_path / "corpus" / "a.flac")
    with pytest.raises(CorpusFormatError, match=r"corpus.*trans\.txt"):
        import_corpus("librispeech", tmp_path / "corpus", tmp_path / "out")


def make_commonvoice(root: Path, tables=("validated.tsv",), speakers=4, per_speaker=2) -> Path:
    """clips/*.mp3 and tab-separated tables with Common Voice's columns (quotes left unescaped)."""
    header = "client_id\tpath\tsentence\tup_votes\tdown_votes\tage\tgender\taccent\n"
    lines = []
    for s in range(speakers):
        for i in range(per_speaker):
            name = f"common_voice_en_{s}{i:03d}.mp3"
            write_clip(root / "clips" / name, seed=s * 10 + i)
            lines.append(f"client{s:02d}abc\t{name}\t\"Quoted\" sentence {s} {i}.\t2\t0\t\t\t\n")
    for table in tables:
        (root / table).write_text(header + "".join(lines), encoding="utf-8")
    return root


def test_commonvoice_folder_uses_validated_tsv(tmp_path):
    src = make_commonvoice(tmp_path / "cv-corpus" / "en")
    with open(src / "validated.tsv", "a", encoding="utf-8") as f:
        f.write("clientXX\tmissing.mp3\tGone clip.\t2\t0\t\t\t\n")
        f.write("client00abc\tcommon_voice_en_0000.mp3\t\t2\t0\t\t\t\n")
    (src / "train.tsv").write_text("not\tused\n")  # validated.tsv wins
    out = tmp_path / "out"
    report = import_corpus("commonvoice", src, out, valid_fraction=0.25)
    rows = check_outputs(report, out, 8, speaker_disjoint=True)
    assert report.skipped.reasons == {"missing audio file": 1, "empty transcript": 1}
    assert all(row["key"].endswith(".mp3") for row in rows["all"])  # mp3 stays mp3
    assert rows["all"][0]["text"] == '"Quoted" sentence 0 0.'
    assert report.valid == 2


def test_commonvoice_split_tables_and_a_named_tsv(tmp_path):
    src = make_commonvoice(tmp_path / "cv", tables=("train.tsv",), speakers=3)
    make_commonvoice(tmp_path / "cv", tables=("dev.tsv",), speakers=5)  # overlaps train.tsv
    report = import_corpus("commonvoice", src, tmp_path / "all", valid_fraction=0.2)
    assert report.train + report.valid == 10
    assert report.skipped.reasons == {"duplicate audio file": 6}
    report = import_corpus("commonvoice", src / "train.tsv", tmp_path / "one", valid_fraction=0.3)
    check_outputs(report, tmp_path / "one", 6, speaker_disjoint=True)


def test_commonvoice_wrong_table_and_download_are_clear_errors(tmp_path):
    (tmp_path / "validated.tsv").write_text("id\tfile\ttext\n")
    with pytest.raises(CorpusFormatError, match="client_id"):
        import_corpus("commonvoice", tmp_path, tmp_path / "out")
    with pytest.raises(CorpusFormatError, match="no public download URL"):
        import_corpus("commonvoice", tmp_path / "absent", tmp_path / "out", download=True)


def test_mp3_converted_to_flac_when_libsndfile_lacks_it(tmp_path, monkeypatch):
    src = make_commonvoice(tmp_path / "cv", speakers=2, per_speaker=1)
    monkeypatch.setattr(importers, "_soundfile_reads", lambda suffix: suffix != ".mp3")

    def fake_ffmpeg(audio, dest):
        write_clip(dest)
        return dest
    monkeypatch.setattr(importers, "_convert_to_flac", fake_ffmpeg)
    out = tmp_path / "out"
    report = import_corpus("commonvoice", src, out, valid_fraction=0.5)
    rows = check_outputs(report, out, 2, speaker_disjoint=True)
    assert all(row["key"].startswith("audio/clips/") and row["key"].endswith(".flac")
               for row in rows["all"])


def make_ljspeech(root: Path, count=8) -> Path:
    """metadata.csv 'ID|raw|normalized' and wavs/ID.wav, as in LJSpeech-1.1."""
    lines = []
    for i in range(count):
        utt = f"LJ001-{i:04d}"
        write_clip(root / "wavs" / f"{utt}.wav", seed=i)
        lines.append(f"{utt}|Raw text no. {i}, \"quoted\"|Normalized text number {i}, \"quoted\"")
    (root / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_ljspeech_random_split_normalized_column(tmp_path):
    src = make_ljspeech(tmp_path / "LJSpeech-1.1")
    with open(src / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("LJ009-0001|Missing clip.|Missing clip.\nLJ001-0000||\n")
    write_clip(src / "wavs" / "LJ002-0001.wav")
    with open(src / "metadata.csv", "a", encoding="utf-8") as f:
        f.write("LJ002-0001|Only the raw column.\n")
    out = tmp_path / "out"
    report = import_corpus("ljspeech", tmp_path, out, valid_fraction=0.25, seed=3)  # parent folder
    rows = check_outputs(report, out, 9, speaker_disjoint=False)
    assert report.skipped.reasons == {"missing audio file": 1, "empty transcript": 1}
    assert report.valid == 2
    texts = {row["text"] for row in rows["all"]}
    assert 'Normalized text number 1, "quoted"' in texts and "Only the raw column." in texts
    again = import_corpus("ljspeech", src, tmp_path / "again", valid_fraction=0.25, seed=3)
    assert read_rows(again.manifests["valid"]) == rows["valid"]  # deterministic by seed


def test_ljspeech_without_metadata_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusFormatError, match="metadata.csv"):
        import_corpus("ljspeech", tmp_path, tmp_path / "out")


def test_nemo_manifest_relative_paths_and_given_durations(tmp_path):
    src = tmp_path / "nemo"
    lines = []
    for i in range(6):
        audio = write_clip(src / "audio" / f"utt{i}.wav", seed=i)
        path = str(audio) if i == 0 else f"audio/utt{i}.wav"
        lines.append(json.dumps({"audio_filepath": path, "duration": 1.5, "text": f"utterance {i}",
                                 "speaker": f"spk{i % 3}"}))
    lines += ["{not json", json.dumps({"audio_filepath": "audio/gone.wav", "text": "gone"}),
              json.dumps({"audio_filepath": "audio/utt1.wav", "duration": 1.5, "text": " "}),
              json.dumps({"text": "no audio field"})]
    manifest = src / "train_manifest.json"
    manifest.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    report = import_corpus("nemo", manifest, out, valid_fraction=0.3)
    rows = check_outputs(report, out, 6, speaker_disjoint=True)
    assert report.skipped.reasons == {"not valid JSON": 1, "missing audio file": 1,
                                      "empty transcript": 1, "row lacks 'audio_filepath'": 1}
    assert {row["duration"] for row in rows["all"]} == {1.5}  # taken from the source
    assert report.valid == 2
    folder_report = import_corpus("nemo", src, tmp_path / "out2")  # a folder of manifests
    assert folder_report.train + folder_report.valid == 6


def test_nemo_without_rows_is_a_clear_error(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"key": "a.wav", "text": "native row"}) + "\n")
    with pytest.raises(CorpusFormatError, match="audio_filepath"):
        import_corpus("nemo", tmp_path / "m.json", tmp_path / "out")


def make_folder(root: Path, layout: dict) -> Path:
    """{relative audio path: transcript or None (no .txt)} as audio files with .txt beside them."""
    for i, (name, text) in enumerate(layout.items()):
        audio = write_clip(root / name, seed=i)
        if text is not None:
            audio.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return root


def test_folder_with_speaker_subfolders(tmp_path):
    layout = {f"{spk}/{sub}clip{i}.{ext}": f"{spk} says {i}"
              for spk, sub in (("alice", ""), ("bob", "day2/"), ("carol", ""))
              for i, ext in enumerate(("wav", "flac", "ogg", "mp3"))}
    layout.update({"alice/untranscribed.wav": None, "bob/silent.wav": ""})
    src = make_folder(tmp_path / "corpus" / "speech", layout)
    (src / "carol" / "orphan.txt").write_text("no audio here")
    out = tmp_path / "out"
    report = import_corpus("folder", tmp_path / "corpus", out, valid_fraction=0.3)
    rows = check_outputs(report, out, 12, speaker_disjoint=True)
    assert {row["speaker"] for row in rows["all"]} == {"alice", "bob", "carol"}
    assert report.skipped.reasons == {"missing transcript": 1, "empty transcript": 1,
                                      "missing audio file": 1}
    assert report.valid == 4


def test_flat_folder_has_no_speakers(tmp_path):
    src = make_folder(tmp_path / "clips", {f"c{i}.wav": f"clip {i}" for i in range(5)})
    report = import_corpus("folder", src, src, valid_fraction=0.2)
    rows = check_outputs(report, src, 5, speaker_disjoint=False)
    assert all("speaker" not in row and row["key"] == Path(row["key"]).name for row in rows["all"])


def test_unreadable_audio_is_skipped(tmp_path):
    src = make_folder(tmp_path / "clips", {f"c{i}.wav": f"clip {i}" for i in range(3)})
    (src / "broken.wav").write_bytes(b"RIFF not really a wave")
    (src / "broken.txt").write_text("broken clip")
    report = import_corpus("folder", src, tmp_path / "out")
    assert report.skipped.reasons == {"unreadable audio file": 1}


def test_a_transcript_that_is_not_utf8_is_one_skipped_row(tmp_path):
    src = make_folder(tmp_path / "clips", {f"c{i}.wav": f"clip {i}" for i in range(3)})
    (src / "c2.txt").write_bytes("caf\u00e9 au lait".encode("latin-1"))
    report = import_corpus("folder", src, tmp_path / "out")
    [(reason, count)] = report.skipped.reasons.items()
    assert count == 1 and "c2.txt: not UTF-8 text" in reason


def test_empty_folder_and_unknown_kind(tmp_path):
    with pytest.raises(CorpusFormatError, match="no audio files"):
        import_corpus("folder", tmp_path, tmp_path / "out")
    with pytest.raises(ValueError, match="unknown corpus kind"):
        import_corpus("timit", tmp_path, tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        import_corpus("folder", tmp_path / "absent", tmp_path / "out")


# --------------------------------------------------------------------------- split

def rows_of(speakers: dict) -> list[dict]:
    return [{"key": f"{spk}-{i}.wav", "text": "x", "duration": 1.0, "speaker": spk}
            for spk, n in speakers.items() for i in range(n)]


def test_speaker_split_is_deterministic_and_keeps_a_train_speaker():
    rows = rows_of({f"s{i}": 5 + i for i in range(10)})
    train, valid = split_rows(rows, 0.2, seed=7)
    assert split_rows(rows, 0.2, seed=7) == (train, valid)
    assert {r["speaker"] for r in train}.isdisjoint(r["speaker"] for r in valid)
    assert abs(len(valid) - 0.2 * len(rows)) <= 5
    train, valid = split_rows(rows_of({"a": 3, "b": 3}), 0.9, seed=0)
    assert len(train) == 3 and len(valid) == 3
    assert split_rows(rows, 0.0, seed=0) == (rows, [])
    rows = rows_of({"big": 50, "big2": 50, "small": 20})
    train, valid = split_rows(rows, 0.05, seed=0)  # no speaker fits: the smallest goes to valid
    assert {r["speaker"] for r in valid} == {"small"}


def test_random_split_when_speakers_unknown():
    rows = [{"key": f"{i}.wav", "text": "x", "duration": 1.0} for i in range(20)]
    train, valid = split_rows(rows, 0.1, seed=0)
    assert len(valid) == 2 and len(train) == 18
    assert split_rows(rows[:1], 0.5, seed=0) == (rows[:1], [])


def test_download_is_skipped_when_present_and_needs_a_subset_name(tmp_path):
    src = make_librispeech(tmp_path / "dev-clean")
    report = import_corpus("librispeech", src, tmp_path / "out", download=True)  # no network used
    assert report.train + report.valid == 12
    with pytest.raises(CorpusFormatError, match="train-clean-100"):
        import_corpus("librispeech", tmp_path / "my-corpus", tmp_path / "out", download=True)


def test_a_download_without_network_is_one_error_and_leaves_no_folder(tmp_path, monkeypatch):
    import urllib.error
    import urllib.request

    def offline(url, filename, hook):
        Path(filename).write_bytes(b"half")
        raise urllib.error.URLError("Temporary failure in name resolution")
    monkeypatch.setattr(urllib.request, "urlretrieve", offline)
    with pytest.raises(CorpusFormatError, match="could not download .*name resolution"):
        import_corpus("ljspeech", tmp_path / "ljspeech", tmp_path / "out", download=True)
    assert not (tmp_path / "ljspeech").exists()


# --------------------------------------------------------------------------- CLI

def test_cli_handler(tmp_path, capsys):
    src = make_librispeech(tmp_path / "dev-clean")
    parser = argparse.ArgumentParser(prog="srcore.data")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import", "librispeech", str(src), "--out", str(tmp_path / "out"),
                              "--valid-fraction", "0.25", "--seed", "2"])
    report = args.func(args)
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 1 and "12 utterances" in printed[0] and "9 train, 3 valid" in printed[0]
    assert report.manifests["train"].is_file()
    bad = parser.parse_args(["import", "ljspeech", str(tmp_path), "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="metadata.csv"):
        bad.func(bad)


# --------------------------------------------------------------------------- asterisk

ASTERISK_LINES = """; Core Asterisk Sounds in English

activated: Activated.
agent-pass: Please enter your password followed by the pound key.
beep: [this is a simple beep tone]
confbridge-join: <beep ascending>
conf-usermenu: Please press 1 to mute or unmute yourself, or 8 to exit.
demo-instruct: If you dial 1234 you can try to ring the console.
demo-moreinfo: Asterisk is a PBX.  For more information, visit www.asterisk.org.
digits/1: one
digits/a-m: A.M.
dictate/both_help: press * to toggle pause, press # to enter a new dictation filename
letters/exclaimation-point: exclaimation-point [!]
pls-try-call-later: Please try your call again later.
silence/1: (1 second of silence)
spy-iax2: IAX (note: does not say "2")
vm-intro: Please leave your message after the tone. (simple tone sound plays)
"""
ASTERISK_SAYS = {
    "activated": "Activated.",
    "agent-pass": "Please enter your password followed by the pound key.",
    "conf-usermenu": "Please press 1 to mute or unmute yourself, or 8 to exit.",
    "demo-moreinfo": "Asterisk is a P B X. For more information, visit w w w dot asterisk dot org.",
    "digits/1": "one",
    "digits/a-m": "A.M.",
    "dictate/both_help": "press star to toggle pause, press pound to enter a new dictation filename",
    "letters/exclaimation-point": "exclamation-point",
    "spy-iax2": "IAX",
    "vm-intro": "Please leave your message after the tone.",
}


def make_asterisk(root: Path, extra_audio=("zz-untranscribed",)) -> Path:
    """The Debian layout: SOUNDS/NAME.wav and SOUNDS/digits/NAME.wav at 8 kHz, and
    doc/asterisk-core-sounds-en/core-sounds-en.txt.gz with 'NAME: transcript' lines."""
    sounds = root / "sounds" / "en_US_f_Allison"
    names = [line.split(":")[0] for line in ASTERISK_LINES.splitlines()
             if line and not line.startswith(";")]
    for i, name in enumerate([n for n in names if n != "pls-try-call-later"] + list(extra_audio)):
        path = sounds / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        noise = np.random.default_rng(i).uniform(-0.1, 0.1, 2000).astype(np.float32)
        sf.write(str(path), noise, 8000, subtype="PCM_16")
    doc = root / "doc" / "asterisk-core-sounds-en"
    doc.mkdir(parents=True)
    with gzip.open(doc / "core-sounds-en.txt.gz", "wt", encoding="utf-8") as f:
        f.write(ASTERISK_LINES)
    return sounds


def test_asterisk_default_folder_found_transcripts_cleaned_text(tmp_path, monkeypatch):
    sounds = make_asterisk(tmp_path)
    monkeypatch.setattr(importers, "ASTERISK_SOUND_DIRS", (tmp_path / "absent", sounds))
    monkeypatch.setattr(importers, "ASTERISK_DOC_DIRS", str(tmp_path / "doc" / "asterisk-core-sounds-en*"))
    out = tmp_path / "corpus" / "asterisk"
    report = import_corpus("asterisk", None, out, valid_fraction=0.2, seed=0)
    rows = check_outputs(report, out, len(ASTERISK_SAYS), speaker_disjoint=False)
    said = {Path(row["key"]).relative_to(sounds.resolve()).with_suffix("").as_posix(): row["text"]
            for row in rows["all"]}
    assert said == ASTERISK_SAYS
    assert {row["speaker"] for row in rows["all"]} == {"asterisk-allison"}
    assert report.valid == 2 and report.train == 8  # by utterance: one speaker
    assert report.skipped.reasons == {"transcript is only a note (no speech)": 3,
                                      "ambiguous number reading": 1, "missing audio file": 1,
                                      "missing transcript": 1}
    assert report.minutes == pytest.approx(len(ASTERISK_SAYS) * 0.25 / 60, abs=1e-3)
    notes = (out / "README.md").read_text()
    assert "CC BY-SA 3.0" in notes and "Allison Smith" in notes and "10 prompts" in notes
    again = import_corpus("asterisk", sounds, tmp_path / "again", valid_fraction=0.2, seed=0)
    assert read_rows(again.manifests["valid"]) == read_rows(report.manifests["valid"])


def test_asterisk_cli_with_named_transcripts_and_default_split(tmp_path, monkeypatch, capsys):
    sounds = make_asterisk(tmp_path, extra_audio=())
    monkeypatch.setattr(importers, "ASTERISK_DOC_DIRS", str(tmp_path / "nowhere*"))
    with pytest.raises(CorpusFormatError, match="--transcripts"):
        import_corpus("asterisk", sounds, tmp_path / "out")
    plain = tmp_path / "core-sounds-en.txt"  # an upstream tarball's uncompressed file
    plain.write_text(ASTERISK_LINES, encoding="utf-8")
    parser = argparse.ArgumentParser(prog="srcore.data")
    add_cli(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["import", "asterisk", str(sounds), "--out", str(tmp_path / "out"),
                              "--transcripts", str(plain)])
    report = args.func(args)
    assert (report.train, report.valid) == (9, 1)  # 5 % of 10, at least one
    assert "10 utterances" in capsys.readouterr().out
    monkeypatch.setattr(importers, "ASTERISK_SOUND_DIRS", (tmp_path / "absent",))
    missing = parser.parse_args(["import", "asterisk", "--out", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="asterisk-core-sounds-en-wav"):
        missing.func(missing)
    wrong = parser.parse_args(["import", "folder", str(sounds), "--out", str(tmp_path / "o"),
                               "--transcripts", str(plain)])
    with pytest.raises(SystemExit, match="only for asterisk"):
        wrong.func(wrong)
