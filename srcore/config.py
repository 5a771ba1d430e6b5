"""The training config and the one mapping between config dataclasses and command lines.

A run's config.json, `--config FILE`, the CLI flags, the dashboard's launcher and the model card's
"command that reproduces this model" all go through `add_config_arguments`, `config_from_args`
and `config_to_arguments`: a field added to a dataclass is a flag everywhere, with its help text.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path

TRAIN_MODULE = "srcore.train"  # `python -m TRAIN_MODULE` runs TrainConfig
HUB_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # Hub credentials: a trainer never needs them


def option(default, help: str):
    """A dataclass field with the help text its command-line flag shows."""
    return field(default=default, metadata={"help": help})


@dataclass
class TrainConfig:
    train: str = option("", "training manifest (JSON lines: key, text[, duration, speaker])")
    valid: str = option("", "validation manifest (best checkpoint by its WER)")
    model: str = option("default", "architecture preset")
    hidden_size: int = option(0, "recurrent layer width (0: the preset's)")
    num_layers: int = option(0, "recurrent layers (0: the preset's)")
    conv_channels: int = option(0, "convolution front-end channels (0: the preset's)")
    epochs: int = option(30, "passes over the training manifest")
    batch_size: int = option(32, "clips per batch")
    lr: float = option(1e-3, "peak learning rate (AdamW)")
    weight_decay: float = option(1e-2, "AdamW weight decay (weights only: not biases or norms)")
    warmup_steps: int = option(200, "linear learning-rate warm-up, in steps")
    grad_clip: float = option(5.0, "gradient norm clip")
    lr_patience: int = option(2, "epochs without a better validation loss before the lr drops")
    lr_factor: float = option(0.5, "factor of each learning-rate drop")
    out: str = option("runs/run", "run folder (config, metrics, log, checkpoints)")
    resume: bool = option(False, "continue the run in --out from its last checkpoint")
    max_steps: int = option(0, "stop after this many optimiser steps (0: no limit)")
    max_minutes: float = option(0.0, "stop after this much training wall time (0: no limit)")
    seed: int = option(0, "seed of shuffling, augmentation and initialisation")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    workers: int = option(1, "data-loader processes (0: load in the training process)")
    threads: int = option(0, "torch intra-op threads (0: torch's default)")
    cache_mb: float = option(1024.0, "memory for decoded audio kept between epochs, per process (0: none)")
    augment: bool = option(True, "waveform augmentation (speed, gain, noise, codecs, clipping)")
    specaugment: bool = option(True, "SpecAugment (the model's policy) on training batches")
    amp: bool = option(True, "mixed precision on CUDA")
    cpu_amp: bool = option(False, "bfloat16 autocast on CPU (fast where it has AMX or AVX512-BF16)")
    max_duration: float = option(30.0, "longer clips are skipped (seconds)")
    check_audio: bool = option(False, "open every clip's header when reading manifests, even where "
                                      "the row stores its duration")
    max_batch_seconds: float = option(0.0, "cap on the audio in one batch (0: batches capped by count)")
    init_from: str = option("", "start from the weights of this model directory (fine-tuning)")
    save_every: int = option(0, "also checkpoint every N steps (0: at epoch ends only)")
    log_every: int = option(25, "a 'step' metrics line every N steps")
    samples: int = option(3, "sample predictions logged per validation")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(parser: argparse.ArgumentParser, cls, choices: dict | None = None) -> None:
    """One flag per field of dataclass `cls` (booleans as --x/--no-x); unset flags stay None so
    that a --config file's values are kept."""
    for f in fields(cls):
        default = f.default if f.default is not MISSING else f.default_factory()
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(_flag(f.name), type=type(default), default=None, help=help_text,
                                choices=(choices or {}).get(f.name))


def config_from_dict(cls, values: dict, source: str = "config"):
    unknown = set(values) - {f.name for f in fields(cls)}
    if unknown:
        raise ValueError(f"{source}: unknown fields {sorted(unknown)}")
    return cls(**values)


def config_from_args(cls, args: argparse.Namespace, config_file: str | None = None):
    """The config of --config FILE (if any) overridden by the flags that were given."""
    values = json.loads(Path(config_file).read_text(encoding="utf-8")) if config_file else {}
    names = {f.name for f in fields(cls)}
    values.update({k: v for k, v in vars(args).items() if k in names and v is not None})
    return config_from_dict(cls, values, config_file or "config")


def config_to_arguments(config, skip=()) -> list[str]:
    """Flags that rebuild `config` (a dataclass or a dict of its fields) from the defaults."""
    cls = type(config) if not isinstance(config, dict) else None
    values = asdict(config) if cls else config
    cls = cls or TrainConfig
    defaults = asdict(cls())
    config_from_dict(cls, {k: v for k, v in values.items() if k in defaults or k not in skip}, "options")
    arguments = []
    for name in (f.name for f in fields(cls)):
        value = values.get(name, defaults[name])
        if name in skip or value is None or value == defaults[name]:
            continue
        if isinstance(defaults[name], bool):
            arguments.append(_flag(name) if value else "--no-" + _flag(name)[2:])
        else:
            arguments.extend([_flag(name), str(value)])
    return arguments
