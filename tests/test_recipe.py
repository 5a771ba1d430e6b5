"""The recipe as code: its stages run srcore commands in order and a finished stage is skipped."""
import json

import pytest

import srcore.recipe
from srcore.recipe import Budget, Recipe


def recipe(tmp_path, **kwargs) -> Recipe:
    budget = Budget(synth_hours=0.01, kokoro_hours=0.01, train_minutes=1, workers=1, batch_size=4)
    return Recipe(out=tmp_path / "out", data=tmp_path / "data", dev=[], budget=budget, **kwargs)


def commands(tmp_path) -> list[str]:
    return [line.split("$ ", 1)[1] for line in (tmp_path / "out" / "recipe.log").read_text().splitlines()
            if "$ " in line]


def test_dry_run_lists_the_stage_commands_in_order(tmp_path):
    recipe(tmp_path, dry_run=True, init_from="checkpoints/default")()
    ran = commands(tmp_path)
    modules = [c.split()[2] for c in ran]
    assert modules[:4] == ["srcore.lm", "srcore.data", "srcore.data", "srcore.data"]  # text, synth,
    assert ran[0].split()[3] == "text"                                               # kokoro, asterisk
    assert "--keep" in ran[0].split()  # a rerun keeps the sentences its clips were planned on
    assert all(f"--sentences {ran[0].split('--out ')[1].split()[0]}" in c for c in ran[1:3])
    lm_build = next(i for i, c in enumerate(ran) if " srcore.lm build " in c)
    assert modules.index("srcore.train") < lm_build < modules.index("srcore.evaluate")
    train = next(c for c in ran if " srcore.train " in c)
    assert "--init-from checkpoints/default" in train and "--cpu-amp" in train and "--resume" in train
    assert "--lr-schedule cosine" in train and "--lr 0.0005 " in train  # FINE_TUNE_LR
    tune = next(c for c in ran if " srcore.lm tune " in c)  # the prior from held-out synthetic clips
    assert tune.split("--prior-from ")[1].split()[0].endswith("corpus/synth/valid.jsonl")
    assert modules[-1] == "srcore.modelcard"


def test_a_finished_stage_is_skipped(tmp_path):
    r = recipe(tmp_path)
    calls = []
    assert r.stage("corpus", lambda: calls.append(1) or {"done": True})["done"]
    assert r.stage("corpus", lambda: calls.append(2) or {"done": False})["done"]  # from its record
    assert calls == [1]
    assert json.loads((tmp_path / "out" / "stages" / "corpus.json").read_text())["done"] is True


def test_from_scratch_training_decays_over_its_budget_and_takes_the_models_size(tmp_path):
    r = recipe(tmp_path, dry_run=True)
    r.budget.hidden_size, r.budget.num_layers, r.budget.lr = 384, 4, 1e-3
    r()
    train = next(c for c in commands(tmp_path) if " srcore.train " in c)
    assert "--lr-schedule cosine" in train and "--init-from" not in train and "--lr 0.001 " in train
    assert "--hidden-size 384 --num-layers 4" in train
    assert "--hidden-size 384 --num-layers 4 --lr 0.001" in r.recipe_section([])


def test_stop_after_corpus_runs_nothing_past_it(tmp_path):
    recipe(tmp_path, dry_run=True, stop_after="corpus")()
    modules = {c.split()[2] for c in commands(tmp_path)}
    assert "srcore.data" in modules and not modules & {"srcore.train", "srcore.evaluate", "srcore.modelcard"}


def test_a_run_trained_elsewhere_stands_in_for_the_train_stage(tmp_path):
    elsewhere = tmp_path / "gpu-run"
    (elsewhere / "checkpoints" / "best").mkdir(parents=True)
    (elsewhere / "checkpoints" / "best" / "model.safetensors").write_bytes(b"weights")
    (elsewhere / "metrics.jsonl").write_text("{}\n")
    r = recipe(tmp_path, use_run=str(elsewhere))
    assert r.stage("train", r.train)["adopted"].endswith("/gpu-run")
    adopted = tmp_path / "out" / "train"
    assert (adopted / "checkpoints" / "best" / "model.safetensors").read_bytes() == b"weights"
    assert (adopted / "metrics.jsonl").is_file()
    assert not [c for c in commands(tmp_path) if " srcore.train " in c]  # nothing trained here
    section = r.recipe_section([])
    assert "--use-run" in section and "another machine" in section
    assert "--train-minutes" not in section  # the adopted run had its own budget


def test_a_run_without_a_best_checkpoint_is_refused(tmp_path):
    (tmp_path / "half-run").mkdir()
    r = recipe(tmp_path, use_run=str(tmp_path / "half-run"))
    with pytest.raises(FileNotFoundError, match="half-run: no checkpoints/best"):
        r.train()


def test_missing_recordings_and_a_missing_init_model_are_named_at_the_start(tmp_path, capsys):
    recipe(tmp_path, dry_run=True, stop_after="corpus")()
    log = (tmp_path / "out" / "recipe.log").read_text()
    assert "fsdd/all.jsonl is missing: the corpus leaves out the real spoken digits" in log
    assert "read-speech/all.jsonl is missing" in log
    with pytest.raises(SystemExit):
        srcore.recipe.main(["default", "--out", str(tmp_path / "o"), "--init-from", str(tmp_path / "nope"),
                            "--dry-run"])
    assert "--init-from" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_missing_system_data_is_named_at_the_start_with_its_install_line(tmp_path, monkeypatch):
    monkeypatch.setattr(srcore.recipe, "SYSTEM_DATA", (
        ((tmp_path / "absent", tmp_path / "also-absent"), "the LM loses a source", "apt-get install it"),
        ((tmp_path / "absent", tmp_path), "nothing, this one is here", "apt-get install other")))
    recipe(tmp_path, dry_run=True, stop_after="corpus")()
    log = (tmp_path / "out" / "recipe.log").read_text().splitlines()
    assert "warning: the LM loses a source (apt-get install it)" in log[1]
    assert not any("other" in line for line in log)
