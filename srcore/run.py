"""The run folder: the one contract between the trainer, the app and the dashboard.

    RUN/config.json         the training config (TrainConfig fields)
    RUN/metrics.jsonl       one JSON object per line: {"type": "epoch", ...} or {"type": "step", ...}
    RUN/status.json         {"state": running|finished|failed|stopped, "pid", "progress", ...}
    RUN/train.log           the log
    RUN/console.log         stdout/stderr of a run started by the dashboard (srcore.launch)
    RUN/loss_curve.html     a self-contained chart (no scripts, no network)
    RUN/checkpoints/last/   model directory + resume.pt
    RUN/checkpoints/best/   model directory with the best validation WER
"""
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

from .atomic import read_json_object, swap_copies, write_text_atomic

RUNNING, FINISHED, FAILED, STOPPED, STALE = "running", "finished", "failed", "stopped", "stale"


TAIL_BYTES_PER_LINE = 200  # how far back from the end tail() reads, per line wanted


def tail(path: Path, lines: int = 40) -> str:
    """The last `lines` lines of a (possibly growing, possibly large) text file; "" if missing."""
    if not path.is_file():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - TAIL_BYTES_PER_LINE * lines))
        return "\n".join(f.read().decode(errors="replace").splitlines()[-lines:])


def pid_alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    try:  # a zombie (finished child not yet reaped) is not alive
        with open(f"/proc/{int(pid)}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


LOCK_FILE = ".lock"


class RunInUse(RuntimeError):
    """Another live process trains in this run folder."""


def _after_checkpoint(line: str, step: int, epochs: int | None) -> bool:
    """Whether a metrics row was logged after a checkpoint at `step` that had completed `epochs`
    epochs: a later step, or the end of an epoch the checkpoint did not see end (logged at the
    same step when a --save-every checkpoint fell on that epoch's last step)."""
    try:
        row = json.loads(line)
        if float(row.get("step", 0)) > step:
            return True
        return (epochs is not None and row.get("type") == "epoch" and not row.get("partial")
                and int(row["epoch"]) > epochs)
    except (json.JSONDecodeError, AttributeError, TypeError, ValueError, KeyError):
        return True  # a torn line: written after the checkpoint, by definition


@dataclass
class RunFolder:
    path: Path

    def __post_init__(self):
        self.path = Path(self.path)

    config_path = property(lambda self: self.path / "config.json")
    metrics_path = property(lambda self: self.path / "metrics.jsonl")
    status_path = property(lambda self: self.path / "status.json")
    log_path = property(lambda self: self.path / "train.log")
    curve_path = property(lambda self: self.path / "loss_curve.html")
    last_dir = property(lambda self: self.path / "checkpoints" / "last")
    best_dir = property(lambda self: self.path / "checkpoints" / "best")

    @property
    def name(self) -> str:
        return self.path.name

    def has_checkpoints(self) -> bool:
        """Whether a training has saved a model here (what a new run would replace)."""
        folders = (self.last_dir, self.best_dir)
        return any(copy.is_dir() for folder in folders for copy in swap_copies(folder))

    def create(self) -> "RunFolder":
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        return self

    def write_config(self, config: dict) -> None:
        write_text_atomic(self.config_path, json.dumps(config, indent=2))

    def read_config(self) -> dict:
        """The run's config.json ({} before there is one); ValueError naming it when it is broken."""
        return read_json_object(self.config_path, "training settings") if self.config_path.is_file() else {}

    def drop_metrics_after(self, step: int, epochs: int | None = None) -> int:
        """Forget metric rows logged after the checkpoint a killed run resumes from (at `step`,
        `epochs` epochs completed); returns how many were dropped."""
        if not self.metrics_path.is_file():
            return 0
        lines = self.metrics_path.read_text().splitlines()
        kept = [line for line in lines if not _after_checkpoint(line, step, epochs)]
        if len(kept) != len(lines):
            write_text_atomic(self.metrics_path, "".join(line + "\n" for line in kept))
        return len(lines) - len(kept)

    def lock(self):
        """Hold the run folder for this process (released when it exits); a second trainer on
        the same folder gets RunInUse naming the holder."""
        import fcntl
        self.create()
        handle = open(self.path / LOCK_FILE, "a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunInUse(f"{self.path}: run folder in use by a trainer (pid {holder})") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        return handle

    def append_metrics(self, row: dict) -> None:
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(row) + "\n")

    def read_metrics(self, kind: str | None = "epoch") -> list[dict]:
        """Metric rows of one type ("epoch", "step"), or all with kind=None; torn lines skipped."""
        if not self.metrics_path.is_file():
            return []
        rows = []
        for line in self.metrics_path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if kind is None or row.get("type", "epoch") == kind:
                rows.append(row)
        return rows

    def write_status(self, state: str, **fields) -> None:
        status = {"state": state, "pid": os.getpid(), "updated": time.time(), **fields}
        write_text_atomic(self.status_path, json.dumps(status))

    def read_status(self) -> dict:
        """The status, with state 'stale' when it claims to run but its process is gone."""
        try:
            status = json.loads(self.status_path.read_text())
        except (OSError, json.JSONDecodeError):
            return {"state": "unknown"}
        if status.get("state") == RUNNING and not pid_alive(status.get("pid")):
            status["state"] = STALE
        return status

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def best_wer(self) -> float | None:
        return best_wer(self.read_metrics("epoch"))


def best_wer(rows: list[dict]) -> float | None:
    """The lowest validation WER of metric rows (epoch rows carry "wer"), None before any."""
    wers = [row["wer"] for row in rows if row.get("wer") is not None]
    return min(wers) if wers else None


def list_runs(root) -> list[RunFolder]:
    """Run folders under `root`, newest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    runs = [RunFolder(p) for p in root.iterdir() if (p / "config.json").is_file()]
    return sorted(runs, key=lambda r: r.config_path.stat().st_mtime, reverse=True)


def write_loss_curve(run: RunFolder) -> None:
    """A dependency-free SVG chart of train/valid loss per complete epoch, wrapped in HTML (a
    stop's partial epoch is left out: its epoch's complete row follows once it is resumed)."""
    rows = [r for r in run.read_metrics() if not r.get("partial")]
    series = {"train loss": [r.get("train_loss") for r in rows],
              "valid loss": [r.get("valid_loss") for r in rows]}
    values = [v for vs in series.values() for v in vs if v is not None]
    if not values:
        return
    width, height, pad = 640, 320, 40
    top, n = max(values) or 1.0, max(len(rows) - 1, 1)
    lines = []
    for (label, vs), colour in zip(series.items(), ("#1f77b4", "#ff7f0e")):
        points = " ".join(f"{pad + i * (width - 2 * pad) / n:.1f},"
                          f"{height - pad - v / top * (height - 2 * pad):.1f}"
                          for i, v in enumerate(vs) if v is not None)
        lines.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>'
                     f'<text x="{width - 150}" y="{20 + 16 * len(lines)}" fill="{colour}">{label}</text>')
    svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">'
           f'<rect width="100%" height="100%" fill="white"/>'
           f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#999"/>'
           f'<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{height - pad}" stroke="#999"/>'
           f'<text x="{pad}" y="{pad - 8}">max {top:.3g}</text>'
           f'<text x="{width / 2 - 20}" y="{height - 10}">epoch 1..{len(rows)}</text>{"".join(lines)}</svg>')
    write_text_atomic(run.curve_path, f"<!doctype html><title>{run.name} loss</title>{svg}")
