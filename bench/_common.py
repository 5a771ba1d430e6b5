"""Helpers shared by the benchmark scripts (not a test module; the test suite never runs these)."""
import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

DEFAULT_DATA = REPO.parent / "shared" / "data" / "fsdd"
DEFAULT_BASELINE = REPO.parent / "shared" / "bench" / "seed_baseline.py"


def named(text: str) -> tuple[str, str]:
    """A NAME=PATH command-line value as (name, path)."""
    import argparse
    name, _, path = text.partition("=")
    if not path:
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=PATH")
    return name, path


def load() -> list[float]:
    """1, 5 and 15 minute load averages: the machine may be shared, so every figure notes them."""
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    import torch

    from srcore.train import cpu_has_fast_bf16
    return {"cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "cpu_fast_bf16": cpu_has_fast_bf16(), "cuda": torch.cuda.is_available(), "load": load()}


def split(data_dir: Path, out_dir: Path, valid_speakers=("theo",)) -> tuple[Path, Path]:
    """train.jsonl / valid.jsonl from data_dir/all.jsonl, the named speakers held out."""
    from srcore.data import split_manifest
    manifest = Path(data_dir) / "all.jsonl"
    if not manifest.is_file():
        sys.exit(f"{manifest}: not found (pass --data DIR holding all.jsonl)")
    split_manifest(manifest, out_dir, valid_speakers=list(valid_speakers))
    return Path(out_dir) / "train.jsonl", Path(out_dir) / "valid.jsonl"


@contextmanager
def workspace(args):
    """(out folder, train manifest, valid manifest, machine info): `args.out` or a temporary
    folder, with the data split by speaker in it."""
    with tempfile.TemporaryDirectory(prefix="srcore-bench-") as tmp:
        out = args.out or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        train, valid = split(args.data, out / "split", args.valid_speakers)
        info = machine()
        print(f"machine: {info}", flush=True)
        yield out, train, valid, info


def run(command: list[str], log_path: Path, env: dict | None = None) -> tuple[str, float]:
    """Run a command from the repository root, output to log_path; (stdout+stderr, wall seconds)."""
    started = time.perf_counter()
    result = subprocess.run(command, check=False, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    Path(log_path).write_text(result.stdout)
    if result.returncode:
        sys.exit(f"failed ({result.returncode}): {' '.join(map(str, command))}\n"
                 f"{result.stdout[-3000:]}")
    return result.stdout, wall


def last_json(text: str) -> dict:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError("no JSON line in the output")


def emit(result: dict) -> None:
    """The figures as the last line: one JSON object."""
    print(json.dumps(result), flush=True)
