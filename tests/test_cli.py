import subprocess
import sys

from srcore.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in COMMANDS)


def test_unknown_subcommand_is_an_error_naming_it():
    result = subprocess.run([sys.executable, "-m", "srcore", "trian"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown command 'trian'" in result.stderr


def test_subcommand_runs_the_modules_main():
    result = subprocess.run([sys.executable, "-m", "srcore", "train", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "--max-minutes" in result.stdout


def test_dashboard_options_go_to_streamlit_before_the_script():
    from srcore.serve import SCRIPTS, command_line
    command = command_line("dashboard", ["--help"])
    assert command[1:4] == ["-m", "streamlit", "run"] and command[-2:] == ["--help", str(SCRIPTS["dashboard"])]
    assert command_line("app", ["--port", "7861"])[-3:] == [str(SCRIPTS["app"]), "--port", "7861"]


def test_voices_status_lists_every_engine(capsys):
    from srcore import synth, voices
    assert voices.main(["status"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(synth.ENGINE_CLASSES)
    assert voices.main(["--help"]) == 0


def test_leaf_modules_import_nothing_above_them():
    """hub and modelcard must not pull in the trainer, the launcher or the synthesizer, and the
    leaf modules nothing of the pipeline above them."""
    code = ("import sys, srcore.hub, srcore.modelcard, srcore.checkpoint, srcore.manifest, srcore.text, "
            "srcore.audio, srcore.features, srcore.model\n"
            "print(sorted(m for m in sys.modules if m in ('srcore.train', 'srcore.synth', 'srcore.launch', "
            "'srcore.dataset', 'srcore.lm', 'gradio', 'streamlit')))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_a_runs_config_json_reproduces_its_config_exactly(tmp_path):
    import json
    from dataclasses import asdict

    from srcore.config import TrainConfig, config_to_arguments
    from srcore.train import parse_args
    cfg = parse_args(["--train", "t.jsonl", "--valid", "v.jsonl", "--hidden-size", "320",
                      "--augmentation.codec-prob", "0.4", "--augmentation.snr-db", "5", "30", "--cpu-amp"])
    assert cfg.augmentation.snr_db == (5.0, 30.0) and cfg.augmentation.codec_prob == 0.4
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps(asdict(cfg)))  # as the trainer writes it
    assert parse_args(["--config", str(config_file)]) == cfg
    assert parse_args(config_to_arguments(cfg)) == cfg  # the model card's command
    overridden = parse_args(["--config", str(config_file), "--augmentation.warp-prob", "0"])
    assert overridden.augmentation.warp_prob == 0 and overridden.augmentation.codec_prob == 0.4
    assert TrainConfig().augmentation.enabled


def test_a_nested_config_keeps_its_parents_defaults():
    """Adapting leaves simulated rooms and microphones out of the takes' augmentation: the flags,
    a --config file naming only some augmentation fields and the reproducing command all keep that."""
    import argparse

    from srcore.config import (
        AdaptConfig,
        TrainConfig,
        add_config_arguments,
        config_from_args,
        config_from_dict,
        config_to_arguments,
    )
    assert TrainConfig().augmentation.reverb_prob > 0 and AdaptConfig().augmentation.reverb_prob == 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_config_arguments(parser, AdaptConfig)
    cfg = config_from_args(AdaptConfig, parser.parse_args(["--augmentation.noise-prob", "0.1"]))
    assert cfg.augmentation.noise_prob == 0.1
    assert cfg.augmentation.reverb_prob == 0 and cfg.augmentation.device_prob == 0
    assert config_to_arguments(cfg) == ["--augmentation.noise-prob", "0.1"]
    partial = config_from_dict(AdaptConfig, {"augmentation": {"noise_prob": 0.2}})
    assert partial.augmentation.reverb_prob == 0 and partial.augmentation.noise_prob == 0.2
    assert config_from_dict(TrainConfig, {"augmentation": {"noise_prob": 0.2}}).augmentation.reverb_prob > 0
    with_rooms = parser.parse_args(["--augmentation.reverb-prob", "0.3"])
    assert config_from_args(AdaptConfig, with_rooms).augmentation.reverb_prob == 0.3


def test_a_model_card_command_means_what_the_stored_config_meant():
    """A run stored before rooms and microphones existed trained without them: its model card's
    command says so, while a run stored since keeps its own values."""
    from dataclasses import asdict

    from srcore.config import TrainConfig, as_stored_then
    from srcore.modelcard import training_command
    stored = asdict(TrainConfig(train="t.jsonl", valid="v.jsonl"))
    older = {**stored, "augmentation": {k: v for k, v in stored["augmentation"].items()
                                        if k not in ("reverb_prob", "device_prob")}}
    assert "--augmentation.reverb-prob 0.0 --augmentation.device-prob 0.0" in training_command(older)
    assert "reverb" not in training_command(stored)
    assert as_stored_then(TrainConfig, {"train": "t.jsonl"})["augmentation"] == {
        "margin_prob": 0.0, "reverb_prob": 0.0, "device_prob": 0.0}
