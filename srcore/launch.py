"""Start, stop and resume training runs as detached processes (the dashboard's process control).

    launch = start_training(runs_root, "my-run", {"train": T, "valid": V, "model": "tiny"})
    stop_run(RunFolder(...))    SIGTERM to the trainer: it saves a checkpoint and ends "stopped"
    resume_run(RunFolder(...))  python -m srcore.train --config RUN/config.json --resume --out RUN

Every process is started from an argument list (never a shell string) in a new session, so it
outlives the dashboard that started it. Its stdout/stderr go to RUN/console.log (tracebacks of a
trainer that died before its own log was set up end up there). Before the trainer writes anything
itself, the launcher writes RUN/config.json and a "running" RUN/status.json naming the new process,
so a run that dies early still shows up, as "stale".

A synthetic corpus (`python -m srcore.data synth`) is started the same way: see start_synth.
"""
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .config import HUB_TOKEN_ENV, TRAIN_MODULE, TrainConfig, config_from_dict, config_to_arguments, resume_mismatch
from .manifest import SYNTH_SUMMARY_FILE as SUMMARY_FILE
from .run import FINISHED, RUNNING, STALE, STOPPED, RunFolder, pid_alive, tail

RUNS_ENV, DEFAULT_RUNS = "SRCORE_RUNS", "runs"
DATA_ENV, DEFAULT_DATA = "SRCORE_DATA", "corpus"
CONSOLE_LOG = "console.log"
SYNTH_LOG, SYNTH_JOB = "synth.log", "synth_job.json"
RUN_NAME_MAX = 64
STOP_WAIT_S = 10.0
POLL_S = 0.1
PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the folder that holds srcore/


class LaunchError(Exception):
    """A run cannot be started, stopped or resumed (the message says why)."""


@dataclass
class Launch:
    run: RunFolder
    process: subprocess.Popen
    command: list[str]

    @property
    def pid(self) -> int:
        return self.process.pid


# ---------------------------------------------------------------- folders and names

def runs_root() -> Path:
    """The runs folder: $SRCORE_RUNS, else runs/."""
    return Path(os.environ.get(RUNS_ENV) or DEFAULT_RUNS)


def data_root() -> Path:
    """Where corpora live: $SRCORE_DATA, else corpus/."""
    return Path(os.environ.get(DATA_ENV) or DEFAULT_DATA)


def sanitize_run_name(name: str) -> str:
    """A safe folder name: letters, digits, '.', '_' and '-' only, never '..' or a path;
    an empty name becomes run-YYYYmmdd-HHMMSS."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip(".-_")[:RUN_NAME_MAX].strip(".-_")
    return cleaned or time.strftime("run-%Y%m%d-%H%M%S")


def find_manifests(root, max_depth: int = 3) -> list[Path]:
    """*.jsonl files under root (a few levels deep), sorted."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for depth in range(1, max_depth + 1):
        found.extend(p for p in root.glob("/".join(["*"] * depth)) if p.suffix == ".jsonl" and p.is_file())
    return sorted(found)


# ---------------------------------------------------------------- commands

def train_arguments(config: dict) -> list[str]:
    """`python -m srcore.train` flags for the fields of `config` that differ from TrainConfig's
    defaults (booleans as --flag/--no-flag); unknown fields are an error."""
    try:
        return config_to_arguments(config)
    except ValueError as exc:
        raise LaunchError(f"unknown training options: {exc}") from None


def child_environment() -> dict:
    """The environment of a started process: srcore importable, output unbuffered, no Hub token."""
    env = {k: v for k, v in os.environ.items() if k not in HUB_TOKEN_ENV}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PACKAGE_ROOT), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(command: list[str], log_path: Path) -> subprocess.Popen:
    """Start `command` detached (own session), stdout and stderr appended to log_path."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True,
                                   env=child_environment(), close_fds=True)
    reap_when_done(process)
    return process


def reap_when_done(process: subprocess.Popen) -> None:
    """Collect the process's exit status as soon as it ends, so that it does not stay behind as a
    zombie for as long as the (long-lived) dashboard that started it runs."""
    threading.Thread(target=process.wait, name=f"reap {process.pid}", daemon=True).start()


# ---------------------------------------------------------------- training runs

def is_running(run: RunFolder) -> bool:
    return run.read_status().get("state") == RUNNING


def start_training(root, name: str, options: dict, resume: bool = False) -> Launch:
    """Start `python -m srcore.train` for `options` (TrainConfig fields) in root/<sanitised name>.

    An existing run is only continued with resume=True; a running one is never started twice."""
    run = RunFolder(Path(root).resolve() / sanitize_run_name(name))
    options = {k: v for k, v in options.items() if v is not None}
    if is_running(run):
        raise LaunchError(f"{run.name} is already running (pid {run.read_status().get('pid')})")
    if run.config_path.is_file() and not resume:
        raise LaunchError(f"{run.path} already exists: tick resume or choose another name")
    config = {**options, "out": str(run.path), "resume": resume}
    for role in ("train", "valid"):
        config[role] = check_manifest(config.get(role), role)
    try:
        train_config = config_from_dict(TrainConfig, config, "options")
        problem = resume and run.config_path.is_file() and resume_mismatch(run.read_config(), train_config)
    except (TypeError, ValueError) as exc:  # unknown fields, values out of range, a broken config.json
        raise LaunchError(f"bad training options: {exc}") from None
    if problem:  # before launch() rewrites config.json: the run's own architecture is kept
        raise LaunchError(f"{run.name}: {problem}")
    return launch(run, train_arguments(config), asdict(train_config))


def check_manifest(path, role: str) -> str:
    if not path:
        raise LaunchError(f"choose a {role} manifest")
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise LaunchError(f"{role} manifest {path} not found")
    return str(path)


def resume_run(run: RunFolder) -> Launch:
    """Continue a stopped, failed or stale run with its own config from checkpoints/last."""
    if is_running(run):
        raise LaunchError(f"{run.name} is running")
    if not run.config_path.is_file():
        raise LaunchError(f"{run.path}: no config.json to resume from")
    try:
        config = run.read_config()
    except ValueError as exc:
        raise LaunchError(str(exc)) from None
    arguments = ["--config", str(run.config_path), "--resume", "--out", str(run.path)]
    return launch(run, arguments, {**config, "resume": True, "out": str(run.path)})


def launch(run: RunFolder, arguments: list[str], config: dict) -> Launch:
    """Start the trainer for `run` and record it (config.json, a "running" status.json)."""
    run.create()
    previous = run.read_status()
    run.write_config(config)
    command = [sys.executable, "-m", TRAIN_MODULE, *arguments]
    launched = time.time()
    position = {"step": previous.get("step", 0), "epoch": previous.get("epoch", 0),
                "progress": previous.get("progress", 0.0)}
    run.write_status(RUNNING, pid=None, launched=launched, **position)  # before the trainer can write
    process = spawn(command, run.path / CONSOLE_LOG)
    if run.read_status().get("launched") == launched:  # a trainer that failed at once has said so
        run.write_status(RUNNING, pid=process.pid, launched=launched, **position)
    return Launch(run, process, command)


def console_tail(run: RunFolder, lines: int = 40) -> str:
    """The last lines of RUN/console.log (the trainer's stdout and stderr)."""
    return tail(run.path / CONSOLE_LOG, lines)


def process_arguments(pid) -> list[str] | None:
    """The command line of a live process; None where it is gone (or a zombie), [] without /proc."""
    if not pid_alive(pid):
        return None
    try:
        raw = Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except FileNotFoundError:
        return [] if not Path("/proc").is_dir() else None
    except OSError:
        return None
    return raw.decode(errors="replace").split("\0")


def is_trainer_process(pid) -> bool:
    """Whether pid is alive and runs srcore.train (guards against a reused pid; without /proc,
    not Linux, a live pid is trusted)."""
    arguments = process_arguments(pid)
    return arguments is not None and (arguments == [] or TRAIN_MODULE in arguments)


def wait_for_exit(pid, timeout_s: float) -> bool:
    """Whether pid is gone within timeout_s."""
    deadline = time.monotonic() + timeout_s
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            return False
        time.sleep(POLL_S)
    return True


def stop_run(run: RunFolder, wait_s: float = STOP_WAIT_S) -> dict:
    """Ask a running trainer to stop: SIGTERM to its main process, which finishes the step, saves
    checkpoints/last and exits "stopped" (its data-loader workers end with it; a SIGTERM to the
    whole process group would kill them first and fail the run). Waits up to wait_s; returns the
    status then ("running" while it is still saving: call again, or kill_run)."""
    pid = running_trainer_pid(run)
    os.kill(pid, signal.SIGTERM)
    if wait_for_exit(pid, wait_s):
        mark_stopped_if_gone(run, "terminated before the trainer could save")
    return run.read_status()


def kill_run(run: RunFolder, wait_s: float = STOP_WAIT_S) -> dict:
    """Kill a trainer that does not stop: SIGKILL to its process group (its own when the launcher
    started it), else to the process alone. Nothing is saved beyond the last checkpoint."""
    pid = running_trainer_pid(run)
    if os.getpgid(pid) == pid:
        os.killpg(pid, signal.SIGKILL)
    else:
        os.kill(pid, signal.SIGKILL)
    if wait_for_exit(pid, wait_s):
        mark_stopped_if_gone(run, "killed")
    return run.read_status()


def running_trainer_pid(run: RunFolder) -> int:
    status = run.read_status()
    if status.get("state") != RUNNING:
        raise LaunchError(f"{run.name} is not running ({status.get('state')})")
    pid = int(status["pid"])
    if not is_trainer_process(pid):
        arguments = process_arguments(pid)
        what = "has exited" if arguments is None else f"runs {' '.join(arguments[:3])!r}"
        raise LaunchError(f"{run.name}: process {pid} is not a srcore.train process ({what}); "
                          "not signalled")
    return pid


def mark_stopped_if_gone(run: RunFolder, reason: str) -> None:
    """A trainer that died without writing its final status is recorded as stopped (under its own
    pid, not the caller's)."""
    status = run.read_status()
    if status.get("state") in (RUNNING, STALE):
        fields_kept = {k: v for k, v in status.items() if k not in ("state", "updated", "note")}
        run.write_status(STOPPED, **fields_kept, note=reason)


# ---------------------------------------------------------------- synthetic corpora

def start_synth(out_dir, hours: float, seed: int = 0) -> subprocess.Popen:
    """Start `python -m srcore.data synth --out DIR --hours H` detached; log in DIR/synth.log."""
    out_dir = Path(out_dir).resolve()
    if synth_state(out_dir) == RUNNING:
        raise LaunchError(f"{out_dir}: a corpus is being generated there already")
    if hours <= 0:
        raise LaunchError("hours must be positive")
    out_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "srcore.data", "synth", "--out", str(out_dir),
               "--hours", str(hours), "--seed", str(seed), "--no-progress"]
    process = spawn(command, out_dir / SYNTH_LOG)
    (out_dir / SYNTH_JOB).write_text(json.dumps({"pid": process.pid, "command": command,
                                                 "started": time.time()}))
    return process


def synth_state(out_dir) -> str:
    """"running" (its job's process is alive, whatever an earlier job left), "finished"
    (manifests written), "failed" (process gone, no manifests) or ""."""
    out_dir = Path(out_dir)
    try:
        job = json.loads((out_dir / SYNTH_JOB).read_text())
    except (OSError, json.JSONDecodeError):
        job = {}
    if pid_alive(job.get("pid")):
        return RUNNING
    if (out_dir / SUMMARY_FILE).is_file():
        return FINISHED
    return "failed" if job else ""
