"""What must not poison or lose a run: bad batches, a second trainer, a mismatched resume, a kill."""
import errno
import json
import math
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import WORDS, write_corpus
from safetensors.torch import load_file

from srcore.checkpoint import load_model, load_resume_state
from srcore.config import TrainConfig, config_to_arguments
from srcore.run import RunFolder, RunInUse
from srcore.train import COSINE_FLOOR, learning_rate, main, train


def tiny(corpus, out, **overrides) -> TrainConfig:
    return replace(TrainConfig(train=str(corpus), valid=str(corpus), model="tiny", epochs=1, batch_size=2,
                               workers=0, threads=1, augment=False, out=str(out)), **overrides)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("guards"), WORDS)


def test_a_non_finite_loss_skips_the_batch_and_weights_stay_finite(corpus, tmp_path, monkeypatch):
    import srcore.train as trainer
    real, calls = trainer.compute_loss, []

    def poisoned(*args, **kwargs):
        loss, log_probs, lengths = real(*args, **kwargs)
        calls.append(1)
        return (loss * math.nan if len(calls) == 1 else loss), log_probs, lengths

    monkeypatch.setattr(trainer, "compute_loss", poisoned)
    run = train(tiny(corpus, tmp_path / "run"))
    row = run.read_metrics("epoch")[-1]
    assert row["nonfinite_steps"] == 1 and math.isfinite(row["valid_loss"])
    for tensor in load_file(str(run.best_dir / "model.safetensors")).values():
        assert torch.isfinite(tensor).all()


def test_a_second_trainer_on_the_same_run_folder_is_refused(tmp_path):
    run = RunFolder(tmp_path / "run")
    held = run.lock()
    try:
        with pytest.raises(RunInUse, match="in use by a trainer"):
            RunFolder(tmp_path / "run").lock()
    finally:
        held.close()
    RunFolder(tmp_path / "run").lock().close()  # free again once the holder is gone


def test_resume_with_another_model_is_refused_before_touching_the_run(corpus, tmp_path):
    out = tmp_path / "run"
    train(tiny(corpus, out))
    before = (out / "config.json").read_text()
    with pytest.raises(ValueError, match="--model default, but this run trains --model tiny"):
        train(tiny(corpus, out, model="default", resume=True))
    assert (out / "config.json").read_text() == before


def test_a_trained_run_folder_is_only_continued_never_trained_over(corpus, tmp_path):
    out = tmp_path / "run"
    train(tiny(corpus, out))
    best = (out / "checkpoints" / "best" / "model.safetensors").read_bytes()
    with pytest.raises(ValueError, match="holds a trained run; --resume continues it"):
        train(tiny(corpus, out))
    assert (out / "checkpoints" / "best" / "model.safetensors").read_bytes() == best
    assert json.loads((out / "config.json").read_text())["out"] == str(out.resolve())  # from anywhere


@pytest.mark.parametrize("flags, says", [
    (["--batch-size", "0"], "batch_size: must be at least 1"),
    (["--device", "gpu"], "device: 'gpu' is not one of"),
    (["--workers", "-1"], "workers: must not be negative")])
def test_config_values_that_cannot_work_are_refused_at_once(flags, says, capsys):
    with pytest.raises(SystemExit):
        main(["--train", "t.jsonl", "--valid", "v.jsonl", *flags])
    assert says in capsys.readouterr().err


def test_a_config_file_that_is_not_json_is_named(tmp_path, capsys):
    bad = tmp_path / "notes.jsonl"
    bad.write_text('{"train": "a"}\n{"valid": "b"}\n')
    with pytest.raises(SystemExit):
        main(["--config", str(bad)])
    assert f"{bad}: not valid JSON" in capsys.readouterr().err


def test_device_cuda_on_a_machine_without_one_is_one_line(corpus, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="torch sees no CUDA GPU"):
        main(["--train", str(corpus), "--valid", str(corpus), "--model", "tiny", "--device", "cuda",
              "--out", str(tmp_path / "run")])


def test_a_fresh_start_forgets_rows_of_an_attempt_that_saved_nothing(corpus, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"type": "step", "step": 5, "loss": 9.0}\n')
    run = train(tiny(corpus, out, resume=True, log_every=1))
    steps = [row["step"] for row in run.read_metrics("step")]
    assert steps == sorted(steps) and 9.0 not in [row["loss"] for row in run.read_metrics("step")]


def test_a_run_that_reached_max_steps_resumes_to_nothing_more(corpus, tmp_path):
    out = tmp_path / "run"
    run = train(tiny(corpus, out, max_steps=2, epochs=5))
    before = run.metrics_path.read_text()
    train(tiny(corpus, out, max_steps=2, epochs=5, resume=True))
    assert run.metrics_path.read_text() == before and run.read_status()["step"] == 2


def test_resume_without_config_takes_the_runs_own(corpus, tmp_path):
    from srcore.train import parse_args
    out = tmp_path / "run"
    train(tiny(corpus, out, lr=0.003))
    cfg = parse_args(["--resume", "--out", str(out)])
    assert cfg.model == "tiny" and cfg.lr == 0.003 and cfg.train == str(Path(corpus).resolve())
    (out / "config.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"config\.json: not valid JSON"):
        RunFolder(out).read_config()


def test_an_epoch_end_the_checkpoint_did_not_see_is_forgotten(tmp_path):
    """A --save-every checkpoint on an epoch's last step, then a kill between that epoch's row and
    its end-of-epoch save: the row has the checkpoint's step, but the resumed run ends that epoch
    again, so the row must go (a stop's partial row of the same epoch stays)."""
    run = RunFolder(tmp_path / "run").create()
    rows = [{"type": "epoch", "epoch": 1, "step": 10}, {"type": "step", "step": 15},
            {"type": "epoch", "epoch": 2, "step": 15, "partial": True},
            {"type": "step", "step": 20}, {"type": "epoch", "epoch": 2, "step": 20}]
    for row in rows:
        run.append_metrics(row)
    assert run.drop_metrics_after(20, epochs=1) == 1  # checkpoint at step 20, 1 epoch completed
    assert run.read_metrics(None) == rows[:-1]
    assert run.drop_metrics_after(20, epochs=2) == 0


def test_a_resumed_run_forgets_metrics_logged_after_its_checkpoint(corpus, tmp_path):
    out = tmp_path / "run"
    run = train(tiny(corpus, out, log_every=1))
    rows = run.read_metrics(None)
    last_step = rows[-1]["step"]
    with open(run.metrics_path, "a") as f:  # what a killed run logged after its last checkpoint
        f.write(json.dumps({"type": "step", "step": last_step + 1, "loss": 1.0}) + "\n")
        f.write('{"type": "ep')  # and a torn line
    train(tiny(corpus, out, log_every=1, epochs=2, resume=True))
    steps = [(r["type"], r["step"]) for r in RunFolder(out).read_metrics(None)]
    assert len(steps) == len(set(steps))  # no row twice
    assert RunFolder(out).read_status()["epoch"] == 2


def test_best_breaks_a_wer_tie_on_validation_loss(corpus, tmp_path):
    run = train(tiny(corpus, tmp_path / "run", epochs=3, lr=1e-4))  # WER stays where it is here
    rows = run.read_metrics("epoch")
    assert len({r["wer"] for r in rows}) == 1 and len({r["valid_loss"] for r in rows}) == 3
    best = json.loads((run.best_dir / "config.json").read_text())["metrics"]
    assert best["valid_loss"] == min(r["valid_loss"] for r in rows)


def test_a_wer_over_one_ranks_as_one_so_early_checkpoints_rank_by_loss():
    from srcore.train import validation_rank
    # seen in a from-scratch run: epoch 2 spelled far better (CER 0.61 against 0.75) at a WER of 1.08
    assert validation_rank(1.079, 2.126) < validation_rank(1.030, 2.405)
    assert validation_rank(0.95, 3.0) < validation_rank(1.0, 1.0)  # a right word beats any loss
    assert validation_rank(0.5, 9.9) < validation_rank(0.6, 0.1)
    assert validation_rank(1.2, 1.0) < validation_rank(float("inf"), float("inf"))  # the first one


def test_a_stop_during_validation_saves_at_once_without_validating_again(corpus, tmp_path, monkeypatch):
    import srcore.train as trainer
    real, calls = trainer.validate, []

    def stop_then_validate(tr, *args):
        calls.append(tr.state.epoch)
        tr.stop_requested = True  # SIGTERM arrives as validation starts
        return real(tr, *args)

    monkeypatch.setattr(trainer, "validate", stop_then_validate)
    run = train(tiny(corpus, tmp_path / "run", epochs=5))
    assert calls == [0]  # one validation, cut short; no second one
    assert run.read_status()["state"] == "stopped" and run.read_metrics("epoch") == []
    assert (run.last_dir / "model.safetensors").is_file()
    assert json.loads((run.last_dir / "config.json").read_text()).get("metrics") is None


def test_a_run_its_time_budget_ends_shows_the_work_done_and_says_so(corpus, tmp_path):
    run = train(tiny(corpus, tmp_path / "run", epochs=3, max_minutes=1e-6))  # over after one step
    status = run.read_status()
    assert status["state"] == "finished" and status["step"] == 1
    assert 0 < status["progress"] < 0.5  # one step of three epochs, not 100 %
    assert status["note"] == (f"stopped on its time budget (--max-minutes 1e-06) at "
                              f"{status['progress']:.0%} of the planned training (step 1)")
    assert status["note"] in run.log_tail(5)


def test_epoch_log_lines_show_the_learning_rate_in_effect_during_warm_up(corpus, tmp_path):
    run = train(tiny(corpus, tmp_path / "run", lr=1e-3, warmup_steps=100, log_every=1))
    in_effect = run.read_metrics("step")[-1]["lr"]  # what the epoch's last step trained with
    assert in_effect < 1e-3
    assert run.read_metrics("epoch")[-1]["lr"] == in_effect
    epoch_line, = [line for line in run.log_tail(50).splitlines() if "epoch 1 step" in line]
    assert f" lr {in_effect:.2e} " in epoch_line


def test_cosine_schedule_warms_up_then_decays_to_its_floor_by_the_planned_end():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, lr_schedule="cosine")
    assert learning_rate(cfg, 0.0, 0, 0.0) == pytest.approx(1e-4)  # first warm-up step
    assert learning_rate(cfg, 0.0, 10, 0.0) == pytest.approx(1e-3)
    assert learning_rate(cfg, 0.0, 10, 0.5) == pytest.approx(1e-3 * (1 + COSINE_FLOOR) / 2)
    assert learning_rate(cfg, 0.0, 10, 1.0) == learning_rate(cfg, 0.0, 10, 2.0) == pytest.approx(1e-3 * COSINE_FLOOR)
    plateau = replace(cfg, lr_schedule="plateau")
    assert learning_rate(plateau, 2.5e-4, 10, 0.9) == 2.5e-4  # the plateau scheduler's rate, as is
    with pytest.raises(ValueError, match="lr_schedule: 'linear' is not one of plateau, cosine"):
        replace(cfg, lr_schedule="linear")


def test_a_cosine_run_decays_its_rate_over_the_planned_steps(corpus, tmp_path):
    run = train(tiny(corpus, tmp_path / "run", lr=1e-3, warmup_steps=0, log_every=1, epochs=4,
                     lr_schedule="cosine"))
    rates = [row["lr"] for row in run.read_metrics("step")]
    assert rates == sorted(rates, reverse=True) and rates[0] == pytest.approx(1e-3)
    assert rates[-1] < 0.2e-3  # near the floor by the last of the planned steps
    assert json.loads((tmp_path / "run" / "config.json").read_text())["lr_schedule"] == "cosine"


def full_disk(obj, f, *args, **kwargs):
    """torch.save (to a path or a file) on a full disk: part of the file written, then the error
    torch raises."""
    if isinstance(f, str | os.PathLike):
        with open(f, "wb") as file:
            file.write(b"PK\x03\x04")
    else:
        f.write(b"PK\x03\x04")
    try:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    except OSError:
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534") from None


def test_a_full_disk_during_a_checkpoint_fails_the_run_in_one_line_keeping_the_last_one(
        corpus, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    run = train(tiny(corpus, out))
    kept = {p.name: p.read_bytes() for p in run.last_dir.iterdir()}
    capsys.readouterr()
    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(SystemExit) as exited:
        main(config_to_arguments(tiny(corpus, out, epochs=2, resume=True)))
    monkeypatch.undo()
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    reported = [line for line in err.splitlines() if "No space left on device" in line]
    assert len(reported) == 1 and f"could not write {run.last_dir}: No space left on device" in reported[0]
    status = run.read_status()
    assert status["state"] == "failed"
    assert f"could not write {run.last_dir}: No space left on device" in status["error"]
    assert {p.name: p.read_bytes() for p in run.last_dir.iterdir()} == kept  # the epoch-1 checkpoint
    load_model(run.last_dir)  # complete: it loads, and resumes from the end of epoch 1
    assert load_resume_state(run.last_dir)["state"]["epoch"] == 1
    assert not [p for p in run.path.rglob("*") if p.name.endswith((".new", ".old", ".tmp"))]


def test_a_status_that_cannot_be_written_leaves_the_old_one_and_no_temp_file(tmp_path, monkeypatch):
    run = RunFolder(tmp_path / "run").create()
    run.write_status("running", step=1)

    def full_disk_text(path, text, *args, **kwargs):
        path.touch()  # created, nothing written
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(Path, "write_text", full_disk_text)
    with pytest.raises(OSError, match="No space left on device"):
        run.write_status("failed", error="x")
    monkeypatch.undo()
    assert run.read_status()["step"] == 1
    assert sorted(p.name for p in run.path.iterdir()) == ["checkpoints", "status.json"]


def test_device_cuda_without_an_index_means_this_process_gpu(monkeypatch):
    import srcore.train as train_module
    chosen = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", chosen.append)
    monkeypatch.setenv("LOCAL_RANK", "1")
    for arg in ("cuda", "auto"):
        assert train_module.setup_distributed(arg)[2] == torch.device("cuda:1")
    assert chosen == [torch.device("cuda:1")] * 2  # set_device needs the index ("cuda" alone fails)
