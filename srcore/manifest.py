"""Native manifests: JSON lines {"key": audio path, "text": transcript, "duration"?, "speaker"?}.

A relative key is relative to the manifest's folder. Reading validates rows and skips the bad ones
with a warning naming each, so a few broken clips never stop a run.
"""
import json
import logging
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from .atomic import output_file, write_text_atomic
from .text import normalize_text

log = logging.getLogger(__name__)

MAX_DURATION_S = 30.0
SHOWN_SKIPS = 20  # skipped rows a report logs and keeps one by one (the rest only counted)
SYNTH_SUMMARY_FILE = "synth_summary.json"  # what `srcore data synth` made, beside its manifests


@dataclass(frozen=True)
class Utterance:
    path: str
    text: str
    duration: float
    speaker: str = ""


@dataclass
class SkipReport:
    """Why rows were skipped: a Counter of reasons and the first few offenders."""
    reasons: Counter = field(default_factory=Counter)
    examples: list = field(default_factory=list)

    def add(self, where: str, reason: str) -> None:
        self.reasons[reason] += 1
        if len(self.examples) < SHOWN_SKIPS:  # the rest are counted, in the summary
            self.examples.append(f"{where}: {reason}")
            log.warning("skipping %s: %s", where, reason)

    @property
    def total(self) -> int:
        return sum(self.reasons.values())

    def summary(self) -> str:
        if not self.total:
            return "no clips skipped"
        parts = ", ".join(f"{n} {reason}" for reason, n in self.reasons.most_common())
        return f"skipped {self.total} clips ({parts})"


AUDIO_KEYS = ("key", "audio_filepath")  # native, NeMo
OUTSIDE_ALLOWED = "outside the folders it may read"  # the skip reason of a path `allow` refuses


def _audio_key(row: dict) -> str:
    key = next((row[k] for k in AUDIO_KEYS if k in row), None)
    if key is None or "text" not in row:
        raise ValueError("row lacks 'key' (or 'audio_filepath') or 'text'")
    if not isinstance(key, str) or not key.strip():
        raise ValueError("'key' must be a file path")
    if not isinstance(row["text"], str):
        raise ValueError("'text' must be a string")
    return key


def _stored_duration(row: dict) -> float | None:
    value = row.get("duration")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < float("inf"):
        return float(value)
    return None


def _usable_path(path: Path, allow) -> None:
    """Raise ValueError unless `path` is a file the reader may open. `allow` is checked first,
    so a path it refuses is never looked at (its existence or size is not revealed)."""
    try:
        if allow is not None and not allow(path):
            raise ValueError(OUTSIDE_ALLOWED)
        if not path.is_file():
            raise ValueError("missing audio file")
    except OSError as exc:  # a name too long, a folder it may not read, a symlink loop
        raise ValueError(f"unusable audio path ({exc.strerror or type(exc).__name__})") from None
    except RuntimeError:  # Path.resolve (in an `allow`) on a symlink loop
        raise ValueError("unusable audio path (a symlink loop)") from None


def _check_row(row: dict, root: Path, max_duration: float, check_audio: bool, allow=None) -> Utterance:
    """Validate one manifest row; raise ValueError with the reason if it can't be used. A stored
    duration is trusted (the audio is opened at load time) unless `check_audio`."""
    if not isinstance(row, dict):
        raise ValueError("row is not a JSON object")
    path = Path(_audio_key(row))
    path = path if path.is_absolute() else root / path
    if not normalize_text(row["text"]):
        raise ValueError("empty transcript")
    _usable_path(path, allow)
    duration = _stored_duration(row)
    if duration is None or check_audio:
        try:
            info = sf.info(str(path))
        except Exception:
            raise ValueError("unreadable audio file") from None
        duration = info.frames / info.samplerate if info.samplerate else 0.0
    if duration <= 0:
        raise ValueError("empty audio file")
    if duration > max_duration:
        raise ValueError(f"longer than {max_duration:g} s")
    return Utterance(str(path), row["text"], round(duration, 3), str(row.get("speaker", "")))


def read_manifest(manifest, max_duration: float = MAX_DURATION_S, report: SkipReport | None = None,
                  check_audio: bool = False, allow=None) -> list[Utterance]:
    """All usable utterances of a manifest; bad rows are skipped and counted in `report`.
    `check_audio` opens every clip's header even where the row stores its duration. `allow`
    (path -> bool), if given, decides which audio paths may be opened at all: the others are
    skipped as OUTSIDE_ALLOWED before anything looks at them."""
    manifest = Path(manifest)
    if manifest.is_dir():
        raise FileNotFoundError(f"{manifest}: a folder, not a manifest (a .jsonl file)")
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    report = report if report is not None else SkipReport()
    skipped_before = report.total
    root = manifest.resolve().parent
    utterances = []
    with open(manifest, encoding="utf-8-sig") as f:  # -sig: a byte-order mark is not a row
        try:
            lines = list(f)
        except UnicodeDecodeError as exc:
            raise ValueError(f"{manifest}: not UTF-8 text (byte {exc.start}); manifests are "
                             "JSON lines in UTF-8") from None
    if _is_json_array(lines):
        raise ValueError(f"{manifest}: one JSON array; a manifest is JSON lines (one object a line)")
    for line_no, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{manifest}:{line_no}"
        try:
            row = json.loads(line)
            utterances.append(_check_row(row, root, max_duration, check_audio, allow))
            continue
        except json.JSONDecodeError:
            report.add(where, "not valid JSON")
        except ValueError as exc:
            key = next((row[k] for k in AUDIO_KEYS if k in row), "?") if isinstance(row, dict) else "?"
            report.add(f"{where} ({key})", str(exc))
    if report.total > skipped_before:
        log.warning("%s: %s", manifest, report.summary())
    return utterances


def _is_json_array(lines: list[str]) -> bool:
    if not (lines and lines[0].lstrip().startswith("[")):
        return False
    try:
        return isinstance(json.loads("".join(lines)), list)
    except json.JSONDecodeError:
        return False


# ---------------------------------------------------------------- splitting

def _valid_count(total: int, valid_fraction: float) -> int:
    """About valid_fraction of `total`, at least one when asked for any, leaving one for train."""
    if valid_fraction <= 0 or total < 2:
        return 0
    return min(max(1, round(total * valid_fraction)), total - 1)


def _speaker_split(rows: list[dict], valid_fraction: float, seed: int) -> set[int]:
    """Indices of valid rows: whole speakers in seeded order, each taken when it brings the valid
    size closer to the target (else the smallest speaker); at least one speaker stays in train."""
    counts = Counter(row["speaker"] for row in rows)
    speakers = sorted(counts)
    random.Random(seed).shuffle(speakers)
    target = _valid_count(len(rows), valid_fraction)
    chosen, size = set(), 0
    for speaker in speakers:
        if size >= target or len(chosen) == len(speakers) - 1:
            break
        if abs(size + counts[speaker] - target) < abs(size - target):
            chosen.add(speaker)
            size += counts[speaker]
    if target and not chosen:  # every speaker is far larger than the target
        chosen.add(min(speakers, key=counts.get))
    return {i for i, row in enumerate(rows) if row["speaker"] in chosen}


def _random_split(rows: list[dict], valid_fraction: float, seed: int) -> set[int]:
    """Indices of valid rows: a seeded random sample of about valid_fraction of the utterances."""
    indices = list(range(len(rows)))
    random.Random(seed).shuffle(indices)
    return set(indices[:_valid_count(len(rows), valid_fraction)])


def split_rows(rows: list[dict], valid_fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, valid): speaker-disjoint when every row names a speaker and there are several,
    else a random utterance split. Deterministic for a given seed; rows keep their order. The one
    split of the project: importers and `srcore data split` both use it."""
    speakers = {row.get("speaker", "") for row in rows}
    if len(speakers) > 1 and "" not in speakers:
        valid = _speaker_split(rows, valid_fraction, seed)
    else:
        valid = _random_split(rows, valid_fraction, seed)
    return ([row for i, row in enumerate(rows) if i not in valid],
            [row for i, row in enumerate(rows) if i in valid])


def write_manifest(rows, manifest) -> Path:
    """Write rows (dicts or Utterances) as JSON lines, whole or not at all; paths under the
    manifest's folder become relative so the corpus folder can be moved."""
    manifest = output_file(manifest)
    root = manifest.resolve().parent
    lines = []
    for row in rows:
        row = dict(row.__dict__) if isinstance(row, Utterance) else dict(row)
        if "path" in row and "key" not in row:
            row["key"] = row.pop("path")
        key = Path(row["key"])
        if key.is_absolute() and key.resolve().is_relative_to(root):
            row["key"] = str(key.resolve().relative_to(root))
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return write_text_atomic(manifest, "".join(lines))


def manifest_label(path) -> str:
    """A short, machine-independent name for a manifest: its folder and file name."""
    path = Path(path)
    return "/".join(path.parts[-2:]) if len(path.parts) > 1 else path.name
