"""Native manifests: JSON lines {"key": audio path, "text": transcript, "duration"?, "speaker"?}.

A relative key is relative to the manifest's folder. Reading validates rows and skips the bad ones
with a warning naming each, so a few broken clips never stop a run.
"""
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import soundfile as sf

from .text import normalize_text

log = logging.getLogger(__name__)

MAX_DURATION_S = 30.0
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
        if len(self.examples) < 20:
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


def _check_row(row: dict, root: Path, max_duration: float) -> Utterance:
    """Validate one manifest row; raise ValueError with the reason if it can't be used."""
    if not isinstance(row, dict) or "key" not in row or "text" not in row:
        raise ValueError("row lacks 'key' or 'text'")
    path = Path(row["key"])
    path = path if path.is_absolute() else root / path
    if not normalize_text(row["text"]):
        raise ValueError("empty transcript")
    if not path.is_file():
        raise ValueError("missing audio file")
    try:
        info = sf.info(str(path))
    except Exception:
        raise ValueError("unreadable audio file") from None
    duration = info.frames / info.samplerate if info.samplerate else 0.0
    if duration <= 0:
        raise ValueError("empty audio file")
    if duration > max_duration:
        raise ValueError(f"longer than {max_duration:g} s")
    return Utterance(str(path), str(row["text"]), round(duration, 3), str(row.get("speaker", "")))


def read_manifest(manifest, max_duration: float = MAX_DURATION_S,
                  report: SkipReport | None = None) -> list[Utterance]:
    """All usable utterances of a manifest; bad rows are skipped and counted in `report`."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest}: manifest not found")
    report = report if report is not None else SkipReport()
    root = manifest.resolve().parent
    utterances = []
    with open(manifest, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{manifest}:{line_no}"
            try:
                row = json.loads(line)
                utterances.append(_check_row(row, root, max_duration))
                continue
            except json.JSONDecodeError:
                reason = "not valid JSON"
            except ValueError as exc:
                reason = str(exc)
            report.add(f"{where} ({row.get('key', '?') if isinstance(row, dict) else '?'})"
                       if reason != "not valid JSON" else where, reason)
    if report.total:
        log.warning("%s: %s", manifest, report.summary())
    return utterances


def write_manifest(rows, manifest) -> Path:
    """Write rows (dicts or Utterances) as JSON lines; paths under the manifest's folder become
    relative so the corpus folder can be moved."""
    manifest = Path(manifest)
    manifest.parent.mkdir(parents=True, exist_ok=True)
    root = manifest.resolve().parent
    with open(manifest, "w", encoding="utf-8") as f:
        for row in rows:
            row = dict(row.__dict__) if isinstance(row, Utterance) else dict(row)
            if "path" in row and "key" not in row:
                row["key"] = row.pop("path")
            key = Path(row["key"])
            if key.is_absolute() and key.resolve().is_relative_to(root):
                row["key"] = str(key.resolve().relative_to(root))
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return manifest
