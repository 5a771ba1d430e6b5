"""Importers: turn common speech corpora into native manifests (see `manifest.py`).

Supported sources (`KINDS`):

* ``librispeech``  SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt ("ID TEXT" lines), audio ID.flac
* ``commonvoice``  validated.tsv (or train/dev/test.tsv) with client_id, path, sentence; clips/
* ``ljspeech``     metadata.csv ("ID|raw text|normalized text"), audio wavs/ID.wav
* ``nemo``         JSON-lines manifests with audio_filepath, duration, text (speaker optional)
* ``folder``       audio files (wav/flac/ogg/mp3), each with a same-named .txt transcript
* ``asterisk``     the Asterisk English prompts (one speaker, Allison Smith, CC BY-SA 3.0): the
                   sounds folder of Debian's asterisk-core-sounds-en-wav (NAME.wav, digits/NAME.wav,
                   ...) and core-sounds-en.txt(.gz) ("NAME: transcript" lines) from
                   asterisk-core-sounds-en; transcripts are cleaned to what is actually said

Every importer only *collects* `SourceRow`s; validation, the train/valid split and writing
``OUT/{all,train,valid}.jsonl`` are shared. Audio stays where it is (keys are relative when it
lies under OUT, absolute otherwise) unless libsndfile cannot read it: then it is converted to
FLAC under ``OUT/audio`` with ffmpeg. Bad rows are logged and counted, never fatal; a source
that is not the named format raises `CorpusFormatError`.
"""
import argparse
import csv
import functools
import glob
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from .manifest import SkipReport, split_rows, write_manifest
from .text import normalize_text

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3")
MANIFEST_NAMES = {"all": "all.jsonl", "train": "train.jsonl", "valid": "valid.jsonl"}
CONVERTED_AUDIO_DIR = "audio"

LIBRISPEECH_TRANSCRIPTS = "*.trans.txt"
LIBRISPEECH_AUDIO_SUFFIX = ".flac"
COMMONVOICE_VALIDATED = "validated.tsv"
COMMONVOICE_SPLITS = ("train.tsv", "dev.tsv", "test.tsv")
COMMONVOICE_COLUMNS = ("client_id", "path", "sentence")
COMMONVOICE_CLIPS = "clips"
LJSPEECH_METADATA = "metadata.csv"
LJSPEECH_AUDIO_DIR = "wavs"
LJSPEECH_SPEAKER = "LJ"
NEMO_SUFFIXES = (".json", ".jsonl")

LIBRISPEECH_URL = "https://www.openslr.org/resources/12/{subset}.tar.gz"
LIBRISPEECH_SUBSETS = ("dev-clean", "dev-other", "test-clean", "test-other",
                       "train-clean-100", "train-clean-360", "train-other-500")
LJSPEECH_URL = "https://data.keithito.com/data/speech/LJSpeech-1.1.tar.bz2"

DEFAULT_VALID_FRACTION = 0.1
VALID_FRACTIONS = {"asterisk": 0.05}  # one speaker: a small random share of its prompts

ASTERISK_SOUND_DIRS = (Path("/usr/share/asterisk/sounds/en"),  # Debian's alternatives link
                       Path("/usr/share/asterisk/sounds/en_US_f_Allison"))
ASTERISK_DOC_DIRS = "/usr/share/doc/asterisk-core-sounds-en*"  # where Debian puts the transcripts
ASTERISK_TRANSCRIPTS = ("core-sounds-en.txt", "core-sounds-en.txt.gz")
ASTERISK_SUFFIXES = (".wav", ".flac", ".ogg", ".g722", ".gsm")  # preferred first; the last two
ASTERISK_SPEAKER = "asterisk-allison"                           # need ffmpeg
ASTERISK_LICENSE = "CC BY-SA 3.0"
ASTERISK_INSTALL = "apt-get install asterisk-core-sounds-en-wav asterisk-core-sounds-en"
ASTERISK_NOTE = re.compile(r"\[[^\]]*\]|<[^>]*>|\([^)]*\)")  # [beep], <beep ascending>, (note)
ASTERISK_SAID = [  # written form -> what Allison says (symbols, acronyms, the transcripts' typos)
    (r"\*", " star "), (r"#", " pound "), (r"\bwww\.asterisk\.org\b", "w w w dot asterisk dot org"),
    (r"\bPBX\b", "P B X"), (r"\bIVR\b", "I V R"),
    (r"\bMGCP\b", "M G C P"), (r"\bUSB\b", "U S B"), (r"\bthru\b", "through"),
    (r"\bexclaimation\b", "exclamation"), (r"\brepresenatives\b", "representatives"),
    (r"\bumute\b", "unmute"), (r"\bfourtieth\b", "fortieth"), (r"\bUn-indentified\b", "Unidentified"),
    (r"\bwitheld\b", "withheld"),
]
ASTERISK_AMBIGUOUS_NUMBER = re.compile(r"\d{3,}")  # "dial 1234": digit by digit or not? unknown
ASTERISK_README = """# Asterisk core sounds (English), imported by `python -m srcore.data import asterisk`

Source: {src}
Transcripts: {transcripts}

Prompts of the Asterisk PBX recorded by Allison Smith (http://www.theivrvoice.com), financial
contributions by Digium, Inc. Licence: Creative Commons Attribution-ShareAlike 3.0 (CC BY-SA 3.0,
https://creativecommons.org/licenses/by-sa/3.0/). Models trained on these recordings may be
derivative works: give attribution and share alike.

One speaker ({speaker}); telephone audio (8 kHz wav), resampled when loaded. The
manifests' texts are the transcripts cleaned to what is said: bracketed notes dropped, symbols
and acronyms spelled out; prompts whose transcript is only a note (tones, silence) or that read
numbers ambiguously were skipped. Split by utterance (seeded random).

{counts}
"""


class CorpusFormatError(ValueError):
    """The source does not look like the named corpus format; the message says what was expected."""


@dataclass
class SourceRow:
    """One utterance as a corpus describes it, before any checks."""
    audio: Path
    text: str
    speaker: str = ""
    duration: float | None = None  # from the source, when it gives one
    where: str = ""  # where the row came from (file:line), for warnings
    problem: str = ""  # why the row is unusable, when reading already showed it

    @property
    def label(self) -> str:
        """How warnings name the row: its origin and audio file."""
        if self.where and self.audio.name:
            return f"{self.where} ({self.audio.name})"
        return self.where or str(self.audio)


@dataclass
class ImportReport:
    """What an import wrote: utterance counts, skipped rows with reasons, manifest paths."""
    train: int
    valid: int
    skipped: SkipReport = field(default_factory=SkipReport)
    manifests: dict = field(default_factory=dict)  # "all" / "train" / "valid" -> Path
    minutes: float = 0.0  # total audio imported

    def summary(self) -> str:
        folder = self.manifests["all"].parent if self.manifests else "?"
        return (f"imported {self.train + self.valid} utterances ({self.minutes:.1f} min) into "
                f"{folder}: "
                f"{self.train} train, {self.valid} valid; {self.skipped.summary()}")


# --------------------------------------------------------------------------- shared helpers

def _find_file(src: Path, name: str) -> Path | None:
    """`src` itself when it is `name`, else src/name, else src/*/name (an extracted archive)."""
    if src.is_file():
        return src if src.name == name else None
    for candidate in [src / name, *sorted(src.glob(f"*/{name}"))]:
        if candidate.is_file():
            return candidate
    return None


def _text_of(path: Path) -> str:
    """A transcript file's text; CorpusFormatError naming the file when it is not UTF-8."""
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise CorpusFormatError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at "
                                f"offset {exc.start}); convert it, e.g. iconv -f latin1 -t utf-8") from None


def _require_dir(src: Path, kind: str) -> None:
    if not src.is_dir():
        raise CorpusFormatError(f"{src}: expected a {kind} folder")


@functools.cache
def _soundfile_reads(suffix: str) -> bool:
    """Whether this libsndfile build can read files with `suffix` (mp3 needs libsndfile >= 1.1)."""
    return suffix.lstrip(".").upper() in sf.available_formats()


def _convert_to_flac(audio: Path, dest: Path) -> Path:
    """Decode `audio` with ffmpeg into 16-bit FLAC at `dest`, which an earlier import's copy
    made after the source last changed is (written whole, then renamed into place)."""
    if dest.is_file() and dest.stat().st_mtime >= audio.stat().st_mtime:
        return dest
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ValueError(f"libsndfile cannot read {audio.suffix} and ffmpeg is not installed")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.stem + ".partial.flac")
    result = subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-i", str(audio),
                             "-sample_fmt", "s16", str(partial)], capture_output=True, text=True)
    if result.returncode:
        partial.unlink(missing_ok=True)
        raise ValueError("unreadable audio file")
    return partial.replace(dest)


def _readable_audio(audio: Path, src: Path, out: Path) -> Path:
    """`audio` itself, or a FLAC copy under OUT/audio when libsndfile cannot read its format."""
    if _soundfile_reads(audio.suffix):
        return audio
    root = src if src.is_dir() else src.parent  # Common Voice / NeMo sources may be files
    try:
        relative = audio.resolve().relative_to(root.resolve())
    except ValueError:  # elsewhere: its folder's hash keeps two x.opus of two folders apart
        folder = hashlib.sha1(str(audio.resolve().parent).encode()).hexdigest()[:12]
        relative = Path("elsewhere") / folder / audio.name
    return _convert_to_flac(audio, (out / CONVERTED_AUDIO_DIR / relative).with_suffix(".flac"))


def _measure_duration(audio: Path) -> float:
    try:
        info = sf.info(str(audio))
    except Exception:  # soundfile raises several types for corrupt data
        raise ValueError("unreadable audio file") from None
    return info.frames / info.samplerate if info.samplerate else 0.0


def _checked_row(row: SourceRow, src: Path, out: Path) -> dict:
    """The native manifest row for `row`; ValueError with the reason when it can't be used."""
    if row.problem:
        raise ValueError(row.problem)
    text = " ".join(str(row.text).split())
    if not normalize_text(text):
        raise ValueError("empty transcript")
    if not row.audio.is_file():
        raise ValueError("missing audio file")
    audio = _readable_audio(row.audio, src, out)
    duration = row.duration if row.duration and row.duration > 0 else _measure_duration(audio)
    if duration <= 0:
        raise ValueError("empty audio file")
    native = {"key": str(audio.resolve()), "text": text, "duration": round(float(duration), 3)}
    if row.speaker:
        native["speaker"] = row.speaker
    return native


def _check_rows(rows: list[SourceRow], src: Path, out: Path, report: SkipReport) -> list[dict]:
    """Keep the usable rows (first occurrence of each audio file); report the rest."""
    kept, seen = [], set()
    for row in rows:
        try:
            native = _checked_row(row, src, out)
            if native["key"] in seen:
                raise ValueError("duplicate audio file")
        except ValueError as exc:
            report.add(row.label, str(exc))
            continue
        seen.add(native["key"])
        kept.append(native)
    return kept


# --------------------------------------------------------------------------- one reader per format

def read_librispeech(src: Path) -> list[SourceRow]:
    """Rows of every SPEAKER-CHAPTER.trans.txt under `src` (a subset or the LibriSpeech root)."""
    _require_dir(src, "LibriSpeech")
    transcripts = sorted(src.rglob(LIBRISPEECH_TRANSCRIPTS))
    if not transcripts:
        raise CorpusFormatError(f"{src}: no LibriSpeech transcripts found; expected "
                                f"SPEAKER/CHAPTER/SPEAKER-CHAPTER.trans.txt files")
    rows = []
    for transcript in transcripts:
        for line_no, line in enumerate(_text_of(transcript).splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            rows.append(SourceRow(audio=transcript.parent / (utt_id + LIBRISPEECH_AUDIO_SUFFIX),
                                  text=text, speaker=utt_id.split("-")[0],
                                  where=f"{transcript}:{line_no}"))
    return rows


def _commonvoice_tables(src: Path) -> list[Path]:
    """The tsv file the user named, or validated.tsv, or else the train/dev/test tsv files."""
    if src.is_file():
        return [src]
    _require_dir(src, "Common Voice")
    validated = src / COMMONVOICE_VALIDATED
    tables = [validated] if validated.is_file() else [
        src / name for name in COMMONVOICE_SPLITS if (src / name).is_file()]
    if not tables:
        raise CorpusFormatError(f"{src}: no Common Voice table found; expected "
                                f"{COMMONVOICE_VALIDATED} or {', '.join(COMMONVOICE_SPLITS)}")
    return tables


def read_commonvoice(src: Path) -> list[SourceRow]:
    """Rows of a Common Voice release folder or of one of its tsv files; clips/ lies beside it."""
    rows = []
    for table in _commonvoice_tables(src):
        with open(table, encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            missing = [c for c in COMMONVOICE_COLUMNS if c not in (reader.fieldnames or [])]
            if missing:
                raise CorpusFormatError(f"{table}: not a Common Voice table; expected "
                                        f"tab-separated columns {', '.join(COMMONVOICE_COLUMNS)}, "
                                        f"missing {', '.join(missing)}")
            clips = table.parent / COMMONVOICE_CLIPS
            for line_no, record in enumerate(reader, 2):
                rows.append(SourceRow(audio=clips / (record["path"] or ""),
                                      text=record["sentence"] or "",
                                      speaker=record["client_id"] or "",
                                      where=f"{table}:{line_no}"))
    return rows


def read_ljspeech(src: Path) -> list[SourceRow]:
    """Rows of LJSpeech's metadata.csv (normalized column when present); one speaker."""
    metadata = _find_file(src, LJSPEECH_METADATA)
    if metadata is None:
        raise CorpusFormatError(f"{src}: no LJSpeech {LJSPEECH_METADATA} found; expected 'ID|raw "
                                f"text|normalized text' lines and {LJSPEECH_AUDIO_DIR}/ID.wav")
    rows = []
    for line_no, line in enumerate(_text_of(metadata).splitlines(), 1):
        if not line.strip():
            continue
        utt_id, *texts = line.split("|")
        text = next((t for t in reversed(texts) if t.strip()), "")
        rows.append(SourceRow(audio=metadata.parent / LJSPEECH_AUDIO_DIR / f"{utt_id.strip()}.wav",
                              text=text, speaker=LJSPEECH_SPEAKER, where=f"{metadata}:{line_no}"))
    return rows


def _nemo_row(line: str, folder: Path, where: str) -> SourceRow:
    """One NeMo manifest line; a relative audio_filepath is relative to the manifest's folder."""
    record = json.loads(line)
    if not isinstance(record, dict) or "audio_filepath" not in record:
        raise ValueError("row lacks 'audio_filepath'")
    audio = Path(record["audio_filepath"])
    duration = record.get("duration")
    return SourceRow(audio=audio if audio.is_absolute() else folder / audio,
                     text=str(record.get("text") or ""), speaker=str(record.get("speaker") or ""),
                     duration=float(duration) if isinstance(duration, (int, float)) else None,
                     where=where)


def _nemo_manifests(src: Path) -> list[Path]:
    """`src` when it is a file, else the *.json / *.jsonl files directly in it."""
    if src.is_file():
        return [src]
    return sorted(p for p in src.glob("*") if p.suffix in NEMO_SUFFIXES and p.is_file())


def read_nemo(src: Path) -> list[SourceRow]:
    """Rows of a NeMo manifest, or of every *.json / *.jsonl manifest in a folder."""
    rows = []
    for manifest in _nemo_manifests(src):
        for line_no, line in enumerate(_text_of(manifest).splitlines(), 1):
            if not line.strip():
                continue
            where = f"{manifest}:{line_no}"
            try:
                rows.append(_nemo_row(line, manifest.parent, where))
            except json.JSONDecodeError:
                rows.append(SourceRow(Path(), "", where=where, problem="not valid JSON"))
            except ValueError as exc:
                rows.append(SourceRow(Path(), "", where=where, problem=str(exc)))
    if all(row.problem for row in rows):
        raise CorpusFormatError(f"{src}: no NeMo manifest rows found; expected JSON lines with "
                                f"audio_filepath, duration and text")
    return rows


def read_folder(src: Path) -> list[SourceRow]:
    """Audio files under `src` with same-named .txt transcripts beside them.

    The speaker is the first folder below the deepest folder common to all clips, so
    SRC/alice/*.wav and SRC/bob/day2/*.wav give alice and bob; all clips in one folder give no
    speaker (random split). A .txt without its audio file is reported as missing audio.
    """
    _require_dir(src, "audio")
    audios = sorted(p for p in src.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file())
    if not audios:
        raise CorpusFormatError(f"{src}: no audio files found; expected {'/'.join(AUDIO_SUFFIXES)}"
                                f" files with same-named .txt transcripts")
    common = Path(os.path.commonpath([p.parent for p in audios]))
    rows = []
    for audio in audios:
        transcript = audio.with_suffix(".txt")
        if transcript.is_file():
            try:
                rows.append(SourceRow(audio, _text_of(transcript), speaker=_speaker_of(audio, common)))
            except CorpusFormatError as exc:  # one bad transcript is one skipped row
                rows.append(SourceRow(audio, "", problem=str(exc)))
        else:
            rows.append(SourceRow(audio, "", problem="missing transcript"))
    paired = {p.with_suffix(".txt") for p in audios}
    for transcript in sorted(set(src.rglob("*.txt")) - paired):
        rows.append(SourceRow(Path(), "", where=str(transcript), problem="missing audio file"))
    return rows


def _speaker_of(audio: Path, common: Path) -> str:
    """The first folder below `common` on the way to `audio` ('' when audio lies in `common`)."""
    parts = audio.parent.relative_to(common).parts
    return parts[0] if parts else ""


def asterisk_said(transcript: str) -> tuple[str, str]:
    """(what is said, problem) for one Asterisk transcript: notes in brackets, angle brackets or
    parentheses dropped, symbols and acronyms spelled out, known typos fixed. The problem is set
    (and the text empty) when nothing spoken is left or a number's reading is unknown."""
    text = ASTERISK_NOTE.sub(" ", transcript)
    for pattern, said in ASTERISK_SAID:
        text = re.sub(pattern, said, text)
    text = " ".join(text.split())
    if not normalize_text(text):
        return "", "transcript is only a note (no speech)"
    if ASTERISK_AMBIGUOUS_NUMBER.search(text):
        return "", "ambiguous number reading"
    return text, ""


def _asterisk_transcripts(sounds: Path, transcripts: Path | None) -> Path:
    """The transcript file: the one named, else core-sounds-en.txt(.gz) in the sounds folder or
    its parent (upstream tarballs), else in Debian's /usr/share/doc/asterisk-core-sounds-en*."""
    if transcripts is not None:
        if not transcripts.is_file():
            raise FileNotFoundError(f"{transcripts}: no such transcript file")
        return transcripts
    folders = [sounds, sounds.parent, *sorted(Path(p) for p in glob.glob(ASTERISK_DOC_DIRS))]
    for folder in folders:
        for name in ASTERISK_TRANSCRIPTS:
            if (folder / name).is_file():
                return folder / name
    raise CorpusFormatError(f"{sounds}: no Asterisk transcripts ({' or '.join(ASTERISK_TRANSCRIPTS)})"
                            f" found there, in its parent or in {ASTERISK_DOC_DIRS}; install "
                            f"asterisk-core-sounds-en or pass --transcripts FILE")


def _read_text(path: Path) -> str:
    """A text file's contents, gunzipped when it ends in .gz."""
    if path.suffix == ".gz":
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    return path.read_text(encoding="utf-8", errors="replace")


def _asterisk_audio(sounds: Path) -> dict[str, Path]:
    """Prompt name ("vm-goodbye", "digits/1") -> its audio file, the preferred format first."""
    rank = {suffix: i for i, suffix in enumerate(ASTERISK_SUFFIXES)}
    audio = {}
    for path in sorted(sounds.rglob("*")):
        suffix = path.suffix.lower()
        if suffix not in rank or not path.is_file():
            continue
        if suffix in (".g722", ".gsm") and not _soundfile_reads(suffix) and not shutil.which("ffmpeg"):
            continue
        name = path.relative_to(sounds).with_suffix("").as_posix()
        if name not in audio or rank[suffix] < rank[audio[name].suffix.lower()]:
            audio[name] = path
    return audio


def read_asterisk(src: Path, transcripts: Path | None = None) -> list[SourceRow]:
    """Rows of the Asterisk sounds folder `src` ("NAME: transcript" lines, NAME.wav beside).
    Transcripts without audio are reported as missing audio, audio without a transcript as
    missing transcript; every row is the one speaker."""
    _require_dir(src, "Asterisk sounds")
    transcripts = _asterisk_transcripts(src, transcripts)
    audio = _asterisk_audio(src)
    if not audio:
        raise CorpusFormatError(f"{src}: no audio files found; expected the Asterisk sounds folder "
                                f"(NAME.wav, digits/NAME.wav, ...), e.g. from the Debian package "
                                f"asterisk-core-sounds-en-wav")
    rows, described = [], set()
    for line_no, line in enumerate(_read_text(transcripts).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";"):
            continue
        where = f"{transcripts}:{line_no}"
        name, colon, transcript = line.partition(":")
        name = name.strip()
        if not colon or not name or " " in name:
            rows.append(SourceRow(Path(), "", where=where, problem="not a 'NAME: transcript' line"))
            continue
        described.add(name)
        text, problem = asterisk_said(transcript)
        rows.append(SourceRow(audio.get(name, src / f"{name}.wav"), text, speaker=ASTERISK_SPEAKER,
                              where=where, problem=problem))
    if not described:
        raise CorpusFormatError(f"{transcripts}: no 'NAME: transcript' lines found")
    for name in sorted(set(audio) - described):
        rows.append(SourceRow(audio[name], "", where=str(audio[name]), problem="missing transcript"))
    return rows


# --------------------------------------------------------------------------- downloads

def _progress(name: str):
    """A urlretrieve report hook printing percent done to stderr."""
    def hook(blocks: int, block_size: int, total: int) -> None:
        done = blocks * block_size
        shown = f"{min(done, total) / total:6.1%}" if total > 0 else f"{done / 1e6:8.1f} MB"
        print(f"\rdownloading {name}: {shown}", end="", file=sys.stderr, flush=True)
    return hook


def _download_and_extract(url: str, dest: Path) -> None:
    """Fetch `url` into `dest` (unless already there) and unpack the tar archive there; a failed
    fetch leaves no new folder or partial file behind and is a CorpusFormatError saying why."""
    made = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    archive = dest / url.rsplit("/", 1)[-1]
    if not archive.is_file():
        partial = archive.with_name(archive.name + ".part")
        try:
            urllib.request.urlretrieve(url, partial, _progress(archive.name))
        except (OSError, urllib.error.URLError) as exc:  # no network, refused, HTTP error, full disk
            partial.unlink(missing_ok=True)
            if made:
                shutil.rmtree(dest, ignore_errors=True)
            raise CorpusFormatError(f"could not download {url}: {getattr(exc, 'reason', exc)}") from None
        print(file=sys.stderr)
        partial.rename(archive)
    log.info("extracting %s", archive)
    with tarfile.open(archive) as tar:
        tar.extractall(dest, filter="data")


def download_corpus(kind: str, src: Path) -> None:
    """Download and extract a public corpus into `src`. LibriSpeech takes the subset from the
    folder name (e.g. corpus/dev-clean); LJSpeech is one archive; Common Voice has no public URL."""
    if kind == "librispeech":
        if src.name not in LIBRISPEECH_SUBSETS:
            raise CorpusFormatError(f"{src}: to download LibriSpeech, name the folder after a "
                                    f"subset: {', '.join(LIBRISPEECH_SUBSETS)}")
        _download_and_extract(LIBRISPEECH_URL.format(subset=src.name), src)
    elif kind == "ljspeech":
        _download_and_extract(LJSPEECH_URL, src)
    elif kind == "commonvoice":
        raise CorpusFormatError("Common Voice has no public download URL: accept the terms at "
                                "https://commonvoice.mozilla.org/datasets, download a release and "
                                "point SRC at its extracted folder")
    else:
        raise CorpusFormatError(f"--download is not available for {kind} sources")


def _looks_present(kind: str, src: Path) -> bool:
    """Whether a downloadable corpus already lies in `src` (then --download does nothing)."""
    if kind == "librispeech":
        return src.is_dir() and next(src.rglob(LIBRISPEECH_TRANSCRIPTS), None) is not None
    if kind == "ljspeech":
        return _find_file(src, LJSPEECH_METADATA) is not None
    return src.exists()


# --------------------------------------------------------------------------- import entry points

READERS = {"librispeech": read_librispeech, "commonvoice": read_commonvoice,
           "ljspeech": read_ljspeech, "nemo": read_nemo, "folder": read_folder,
           "asterisk": read_asterisk}
KINDS = tuple(READERS)


def default_source(kind: str) -> Path:
    """Where a corpus lies when SRC is not given: only the Asterisk prompts have a home (the
    Debian package's sounds folder)."""
    if kind == "asterisk":
        for folder in ASTERISK_SOUND_DIRS:
            if folder.is_dir():
                return folder
        raise CorpusFormatError(f"no Asterisk sounds in {' or '.join(map(str, ASTERISK_SOUND_DIRS))}"
                                f": {ASTERISK_INSTALL}, or name SOUNDS_DIR")
    raise CorpusFormatError(f"name the {kind} source (SRC)")


def read_source(kind: str, src: Path, transcripts: Path | None = None) -> list[SourceRow]:
    """The rows of corpus `src` read as format `kind` (one of KINDS); `transcripts` names the
    transcript file of an asterisk source (found automatically when None)."""
    if kind not in READERS:
        raise ValueError(f"unknown corpus kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not src.exists():
        raise FileNotFoundError(f"{src}: no such file or folder")
    if kind == "asterisk":
        return read_asterisk(src, transcripts)
    if transcripts is not None:
        raise ValueError(f"--transcripts is only for asterisk sources, not {kind}")
    return READERS[kind](src)


def _write_notes(kind: str, src: Path, out: Path, transcripts: Path | None,
                 report: ImportReport) -> None:
    """OUT/README.md with the source's licence and attribution (corpora whose licence asks)."""
    if kind != "asterisk":
        return
    used = _asterisk_transcripts(src, transcripts)
    counts = (f"Imported {report.train + report.valid} prompts ({report.minutes:.1f} min): "
              f"{report.train} train, {report.valid} valid; {report.skipped.summary()}.")
    (out / "README.md").write_text(ASTERISK_README.format(
        src=src, transcripts=used, speaker=ASTERISK_SPEAKER, counts=counts), encoding="utf-8")


def import_corpus(kind: str, src=None, out=None, valid_fraction: float | None = None,
                  seed: int = 0, download: bool = False, transcripts=None) -> ImportReport:
    """Import corpus `src` of format `kind` into OUT/all.jsonl, OUT/train.jsonl, OUT/valid.jsonl.
    `src` None: the kind's usual place (see default_source); `valid_fraction` None: the kind's
    default (VALID_FRACTIONS, else DEFAULT_VALID_FRACTION)."""
    if out is None:
        raise ValueError("name the output folder (out)")
    if valid_fraction is None:
        valid_fraction = VALID_FRACTIONS.get(kind, DEFAULT_VALID_FRACTION)
    if not 0 <= valid_fraction < 1:
        raise ValueError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    src = default_source(kind) if src is None else Path(src)
    out = Path(out)
    transcripts = Path(transcripts) if transcripts is not None else None
    if download and not _looks_present(kind, src):
        download_corpus(kind, src)
    report = SkipReport()
    rows = _check_rows(read_source(kind, src, transcripts), src, out, report)
    if not rows:
        raise CorpusFormatError(f"{src}: no usable utterances ({report.summary()})")
    train, valid = split_rows(rows, valid_fraction, seed)
    manifests = {name: write_manifest(subset, out / MANIFEST_NAMES[name])
                 for name, subset in (("all", rows), ("train", train), ("valid", valid))}
    result = ImportReport(train=len(train), valid=len(valid), skipped=report, manifests=manifests,
                          minutes=sum(row["duration"] for row in rows) / 60)
    _write_notes(kind, src, out, transcripts, result)
    return result


def _run_cli(args: argparse.Namespace) -> ImportReport:
    """`import` subcommand handler: run the import and print a one-line summary."""
    try:
        report = import_corpus(args.kind, args.src, args.out, args.valid_fraction, args.seed,
                               args.download, getattr(args, "transcripts", None))
    except (FileNotFoundError, ValueError) as exc:  # CorpusFormatError, a bad --valid-fraction, ...
        raise SystemExit(f"error: {exc}") from None
    print(report.summary())
    return report


def add_cli(subparsers) -> argparse.ArgumentParser:
    """Register the `import` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser(
        "import", help="turn a corpus into native manifests",
        description="Write OUT/train.jsonl, OUT/valid.jsonl and OUT/all.jsonl from a corpus; "
                    "audio stays where it is.")
    parser.add_argument("kind", choices=KINDS, help="corpus format")
    parser.add_argument("src", type=Path, nargs="?", default=None,
                        help="corpus folder (or a Common Voice tsv / NeMo manifest file); for "
                             "asterisk the sounds folder, by default "
                             f"{ASTERISK_SOUND_DIRS[0]} (Debian's asterisk-core-sounds-en-wav)")
    parser.add_argument("--out", type=Path, required=True, help="folder for the manifests")
    parser.add_argument("--valid-fraction", type=float, default=None,
                        help=f"share of utterances for validation (whole speakers when known; "
                             f"default {DEFAULT_VALID_FRACTION}, asterisk {VALID_FRACTIONS['asterisk']})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/valid split")
    parser.add_argument("--download", action="store_true",
                        help="download the corpus into SRC first (librispeech subset, ljspeech)")
    parser.add_argument("--transcripts", type=Path, default=None,
                        help="asterisk: the core-sounds-en.txt(.gz) file (default: found in the "
                             "sounds folder, its parent or /usr/share/doc/asterisk-core-sounds-en)")
    parser.set_defaults(func=_run_cli)
    return parser
