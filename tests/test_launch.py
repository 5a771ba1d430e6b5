"""srcore.launch: detached training processes, started, stopped (SIGTERM: checkpoint saved) and
resumed for real on the tiny model."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import WAIT_S, wait_until

from srcore import launch
from srcore.run import RUNNING, STOPPED, RunFolder, pid_alive

pytestmark = pytest.mark.slow
REAP_WAIT_S = 10



def endless_options(manifest: Path, **overrides) -> dict:
    """A tiny-model run that only ends when stopped; a step row every step."""
    return {"train": str(manifest), "valid": str(manifest), "model": "tiny", "epochs": 10_000,
            "batch_size": 2, "threads": 1, "workers": 0, "log_every": 1, "augment": False,
            **overrides}


def has_trained(run: RunFolder, after_step: int = 0) -> bool:
    """A step row past after_step is logged: the trainer's SIGTERM handler is installed."""
    return any(row["step"] > after_step for row in run.read_metrics("step"))


def stop_and_reap(started: launch.Launch) -> dict:
    status = launch.stop_run(started.run, wait_s=WAIT_S)
    started.process.wait(timeout=WAIT_S)
    return status


def test_run_names_are_sanitised():
    assert launch.sanitize_run_name("my run #1") == "my-run-1"
    assert launch.sanitize_run_name("../../etc/passwd") == "etc-passwd"
    assert launch.sanitize_run_name("/abs/path") == "abs-path"
    assert launch.sanitize_run_name("..").startswith("run-")
    assert launch.sanitize_run_name("").startswith("run-")
    assert len(launch.sanitize_run_name("x" * 500)) == launch.RUN_NAME_MAX


def test_train_arguments_are_an_argument_list_of_non_defaults():
    arguments = launch.train_arguments({"train": "a b.jsonl", "model": "tiny", "epochs": 30,
                                        "lr": 0.01, "augment": False, "amp": True})
    assert arguments == ["--train", "a b.jsonl", "--model", "tiny", "--lr", "0.01", "--no-augment"]
    with pytest.raises(launch.LaunchError, match="unknown"):
        launch.train_arguments({"epochz": 3})


def test_start_refuses_missing_manifests_and_existing_runs(tmp_path, word_corpus):
    with pytest.raises(launch.LaunchError, match="not found"):
        launch.start_training(tmp_path, "x", {"train": str(tmp_path / "none.jsonl"),
                                              "valid": str(word_corpus)})
    RunFolder(tmp_path / "taken").create().write_config({"model": "tiny"})
    with pytest.raises(launch.LaunchError, match="already exists"):
        launch.start_training(tmp_path, "taken", endless_options(word_corpus))
    assert not (tmp_path / "x").exists()


def test_options_out_of_range_are_a_launch_error(tmp_path, word_corpus):
    with pytest.raises(launch.LaunchError, match="bad training options: .*batch_size"):
        launch.start_training(tmp_path, "x", {**endless_options(word_corpus), "batch_size": 0})
    with pytest.raises(launch.LaunchError, match="bad training options: .*augment: 'false'"):
        launch.start_training(tmp_path, "y", {**endless_options(word_corpus), "augment": "false"})


def test_a_corpus_job_still_running_is_running_whatever_an_earlier_one_left(tmp_path):
    (tmp_path / launch.SUMMARY_FILE).write_text("{}")
    assert launch.synth_state(tmp_path) == launch.FINISHED
    (tmp_path / launch.SYNTH_JOB).write_text(json.dumps({"pid": os.getpid()}))
    assert launch.synth_state(tmp_path) == RUNNING
    with pytest.raises(launch.LaunchError, match="being generated there already"):
        launch.start_synth(tmp_path, 0.01)


def test_resume_with_another_architecture_is_refused_before_the_config_changes(tmp_path, word_corpus):
    """The dashboard's resume tick with the form set to another model: refused, and the run's
    config.json (what every later resume reads) still names its own architecture."""
    run = RunFolder(tmp_path / "taken").create()
    run.write_config({"model": "default", "hidden_size": 256})
    with pytest.raises(launch.LaunchError, match="this run trains --model default"):
        launch.start_training(tmp_path, "taken", endless_options(word_corpus), resume=True)
    assert run.read_config() == {"model": "default", "hidden_size": 256}
    assert not (run.path / launch.CONSOLE_LOG).exists()  # nothing started


def test_stop_saves_a_checkpoint_and_resume_continues(tmp_path, word_corpus):
    # workers=1: the data-loader worker must not turn the stop into a failure
    started = launch.start_training(tmp_path / "runs", "stop me", endless_options(word_corpus, workers=1))
    run = started.run
    assert run.path == (tmp_path / "runs" / "stop-me").resolve()
    assert started.command[1:3] == ["-m", "srcore.train"]
    assert run.read_status()["state"] == RUNNING and run.read_status()["pid"] == started.pid
    wait_until(lambda: has_trained(run), what="the first training steps")

    status = stop_and_reap(started)
    assert status["state"] == STOPPED
    assert not pid_alive(started.pid)
    assert (run.last_dir / "resume.pt").is_file()
    stopped_at = status["step"]

    resumed = launch.resume_run(run)
    assert resumed.command[3:] == ["--config", str(run.config_path), "--resume", "--out", str(run.path)]
    wait_until(lambda: has_trained(run, after_step=stopped_at), what="steps after resuming")
    assert "resumed from" in run.log_tail(200)
    assert stop_and_reap(resumed)["state"] == STOPPED
    with pytest.raises(launch.LaunchError, match="not running"):
        launch.stop_run(run)


def test_kill_records_the_trainers_pid_and_leaves_no_zombie(tmp_path, word_corpus):
    started = launch.start_training(tmp_path, "kill me", endless_options(word_corpus))
    wait_until(lambda: has_trained(started.run), what="the first training steps")
    status = launch.kill_run(started.run, wait_s=WAIT_S)
    assert (status["state"], status["note"]) == (STOPPED, "killed")
    assert status["pid"] == started.pid  # the trainer's, not this (the dashboard's) process
    proc_entry = Path(f"/proc/{started.pid}")  # a zombie keeps it until reaped
    wait_until(lambda: not proc_entry.exists(), timeout_s=REAP_WAIT_S, what="the killed trainer to be reaped")


def test_a_trainer_stopped_before_it_can_save_is_recorded_as_stopped(tmp_path, word_corpus):
    started = launch.start_training(tmp_path, "early", endless_options(word_corpus))
    status = stop_and_reap(started)  # right away: still importing torch
    assert status["state"] == STOPPED
    assert not pid_alive(started.pid)


def test_stop_never_signals_a_process_that_is_not_a_trainer(tmp_path):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = RunFolder(tmp_path / "reused").create()
        run.write_config({})
        run.write_status(RUNNING, pid=bystander.pid)  # a stale status whose pid was reused
        with pytest.raises(launch.LaunchError, match="not a srcore.train process"):
            launch.stop_run(run)
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_a_run_that_dies_early_is_listed_with_its_console_output(tmp_path, word_corpus):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"key": "missing.wav", "text": "x", "duration": 1.0}) + "\n")
    started = launch.start_training(tmp_path, "bad", {"train": str(bad), "valid": str(word_corpus),
                                                      "model": "tiny", "threads": 1, "workers": 0})
    assert started.process.wait(timeout=WAIT_S) != 0
    assert started.run.read_status()["state"] in ("stale", "failed")
    assert "no usable utterances" in launch.console_tail(started.run)
    assert started.run.read_config()["train"] == str(bad)
