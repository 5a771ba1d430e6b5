"""The training config and the one mapping between config dataclasses and command lines.

A run's config.json, `--config FILE`, the CLI flags, the dashboard's launcher and the model card's
"command that reproduces this model" all go through `add_config_arguments`, `config_from_args`
and `config_to_arguments`: a field added to a dataclass is a flag everywhere, with its help text.
A field that changes what older runs meant names its value from before (`option(..., before=)`),
so that a stored config.json still reproduces its run (`as_stored_then`).
"""
from __future__ import annotations

import argparse
import re
from dataclasses import MISSING, asdict, dataclass, field, fields, is_dataclass

from .atomic import read_json_object

TRAIN_MODULE = "srcore.train"  # `python -m TRAIN_MODULE` runs TrainConfig
LR_SCHEDULES = ("plateau", "cosine")  # TrainConfig.lr_schedule
HUB_TOKEN_ENV = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")  # Hub credentials: a trainer never needs them
DEVICE = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")  # TrainConfig.device
AT_LEAST_ONE = ("epochs", "batch_size")  # TrainConfig fields that count something
NOT_NEGATIVE = ("hidden_size", "num_layers", "conv_channels", "warmup_steps", "max_steps", "max_minutes",
                "workers", "threads", "cache_mb", "save_every", "log_every", "max_batch_seconds", "samples",
                "grad_clip", "weight_decay", "lr_patience")


def option(default, help: str, before=None):
    """A dataclass field with the help text its command-line flag shows. `before`: for a field added
    after runs were stored, the value those runs had (its effect did not exist yet)."""
    return field(default=default, metadata={"help": help, "before": before})


@dataclass
class WaveAugmentConfig:
    """On-the-fly augmentation of training clips (srcore/augment.py); never of validation."""
    enabled: bool = option(True, "waveform augmentation on (the --augment switch wins)")
    margin_prob: float = option(0.3, "share of clips given silence before and after the speech (the room, "
                                     "noise and codec steps then fill it as they fill the speech)", before=0.0)
    margin_s: tuple = option((0.1, 1.5), "range of each added margin, seconds (drawn for each side)")
    speed_prob: float = option(0.6, "share of clips played 0.9x or 1.1x as fast")
    reverb_prob: float = option(0.3, "share of clips played in a simulated room (reverberation)", before=0.0)
    rt60: tuple = option((0.15, 0.8), "reverberation time range of the rooms, seconds")
    device_prob: float = option(0.3, "share of clips through a simulated microphone's frequency response",
                                before=0.0)
    noise_prob: float = option(0.5, "share of clips with white, pink or brown noise added")
    snr_db: tuple = option((8.0, 40.0), "noise level range, dB below the speech")
    gain_db: tuple = option((-12.0, 6.0), "level change range, dB")
    codec_prob: float = option(0.25, "share of clips through a lossy codec (MP3, Opus, GSM telephone)")
    clip_prob: float = option(0.05, "share of clips clipped like an over-driven input")
    clip_level: tuple = option((0.2, 0.6), "where the clipping saturates, as a fraction of the peak")
    warp_prob: float = option(0.6, "share of clips with a vocal tract length warp of their features")
    warp_range: tuple = option((0.88, 1.12), "frequency warp range")

    def __post_init__(self):
        for name, value in asdict(self).items():
            if name.endswith("_prob") and not 0 <= value <= 1:
                raise ValueError(f"{name}: a share of clips is between 0 and 1, not {value}")


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
    lr_schedule: str = option("plateau", "after the warm-up: plateau (drop by --lr-factor when validation "
                              "loss stalls) or cosine (decay to a twentieth over the planned epochs, steps or "
                              "minutes, whichever ends the run first)")
    lr_patience: int = option(2, "epochs without a better validation loss before the lr drops (plateau)")
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
    trim_silence: bool = option(True, "cut every clip to its speech as the recognizer reads it "
                                      "(srcore.vad: MARGIN_S of context each side)", before=False)
    check_audio: bool = option(False, "open every clip's header when reading manifests, even where "
                                      "the row stores its duration")
    max_batch_seconds: float = option(0.0, "cap on the audio in one batch (0: batches capped by count)")
    init_from: str = option("", "start from the weights of this model directory (fine-tuning; a "
                                "larger --hidden-size widens it first)")
    save_every: int = option(0, "also checkpoint every N steps (0: at epoch ends only)")
    log_every: int = option(25, "a 'step' metrics line every N steps (0: none)")
    samples: int = option(3, "sample predictions logged per validation")
    augmentation: WaveAugmentConfig = field(default_factory=WaveAugmentConfig,
                                            metadata={"help": "waveform augmentation"})

    def __post_init__(self):
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule: {self.lr_schedule!r} is not one of {', '.join(LR_SCHEDULES)}")
        if not DEVICE.match(str(self.device)):
            raise ValueError(f"device: {self.device!r} is not one of auto, cpu, cuda, cuda:N")
        for name in AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: must be at least 1, not {getattr(self, name)}")
        for name in NOT_NEGATIVE:
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: must not be negative, not {getattr(self, name)}")
        if not self.lr > 0 or not 0 < self.lr_factor < 1:
            raise ValueError(f"lr {self.lr} must be above 0 and lr_factor {self.lr_factor} between 0 and 1")


def takes_augmentation() -> WaveAugmentConfig:
    """Augmentation of a speaker's own takes: as training's, without simulated rooms and
    microphones (the takes already carry the speaker's; measured: with them, cathy's gain from 20
    takes fell from 4.2 to 1.7 WER points) and without added margins (the few steps go to the
    speaker's words)."""
    return WaveAugmentConfig(reverb_prob=0.0, device_prob=0.0, margin_prob=0.0)


@dataclass
class AdaptConfig:
    """Adapting a model to one speaker (srcore/adapt.py): short, gentle, and anchored."""
    minutes: float = option(2.0, "wall-clock cap on the fine-tuning")
    max_steps: int = option(150, "optimiser steps at most")
    lr: float = option(3e-4, "peak learning rate (AdamW; under a third of training's default)")
    warmup_steps: int = option(10, "linear learning-rate warm-up, in steps")
    batch_size: int = option(8, "the speaker's clips per step")
    anchor: float = option(0.0, "L2-SP: pull of the starting weights (0: off)")
    layers: str = option("all", "what learns: all, or a comma list of parts (frontend, norm, rnn, head)")
    replay: str = option("", "manifest of general speech mixed into every step (against forgetting)")
    replay_batch: int = option(4, "replay clips per step (with --replay)")
    held_out: int = option(0, "clips kept out of the fine-tuning to measure before and after")
    keep: float = option(0.5, "how much of the fine-tuning the weights keep: 1 all of it, 0.5 halfway "
                              "back to the starting weights (WiSE-FT; measured: better on the speaker "
                              "and less forgetting)")
    vtln: bool = option(False, "first choose the speaker's vocal tract warp: the frequency warp under "
                               "which the model hears the takes best (the adapted model keeps it; "
                               "measured no help so far)")
    augment: bool = option(True, "waveform augmentation of the takes (speed, noise, codecs, warp)")
    specaugment: bool = option(True, "SpecAugment on the takes")
    threads: int = option(0, "torch threads (0: torch's default)")
    seed: int = option(0, "seed of batches and augmentation")
    augmentation: WaveAugmentConfig = field(default_factory=takes_augmentation,
                                            metadata={"help": "waveform augmentation"})

    def __post_init__(self):
        if not 0 <= self.keep <= 1:
            raise ValueError(f"keep must be between 0 and 1, not {self.keep}")


def flag_name(name: str) -> str:
    """The command-line flag of a config field: lr_schedule -> --lr-schedule."""
    return "--" + name.replace("_", "-")


def _default(f):
    return f.default if f.default is not MISSING else f.default_factory()


def _defaults(cls_or_default) -> dict:
    """Field name -> default: a dataclass's own defaults, or the values of a nested default (the
    parent's choice wins: AdaptConfig's augmentation is not WaveAugmentConfig's class defaults)."""
    if isinstance(cls_or_default, type):
        return {f.name: _default(f) for f in fields(cls_or_default)}
    return {f.name: getattr(cls_or_default, f.name) for f in fields(cls_or_default)}


def add_config_arguments(parser: argparse.ArgumentParser, cls, choices: dict | None = None,
                         prefix: str = "") -> None:
    """One flag per field of dataclass `cls` (booleans as --x/--no-x, pairs as two numbers,
    nested dataclasses as --name.field); unset flags stay None so a --config file's values stay."""
    defaults = _defaults(cls)
    for f in fields(cls):
        default = defaults[f.name]
        if is_dataclass(default):
            add_config_arguments(parser, default, choices, prefix=f"{prefix}{f.name}.")
            continue
        flag, dest = flag_name(prefix + f.name), prefix + f.name
        help_text = f"{f.metadata.get('help', '')} (default: {default!r})"
        if isinstance(default, bool):
            parser.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        elif isinstance(default, tuple):
            parser.add_argument(flag, dest=dest, type=type(default[0]), nargs=len(default), default=None,
                                metavar=("LOW", "HIGH") if len(default) == 2 else None, help=help_text)
        else:
            parser.add_argument(flag, dest=dest, type=type(default), default=None, help=help_text,
                                choices=(choices or {}).get(f.name))


def as_stored_then(cls, stored: dict) -> dict:
    """A config that a run stored in full (its config.json), with the fields added since it was
    written set to what they were before they existed, so that it means what it meant then."""
    filled = dict(stored)
    defaults = _defaults(cls)
    for f in fields(cls):
        if is_dataclass(defaults[f.name]) and isinstance(filled.get(f.name, {}), dict):
            filled[f.name] = as_stored_then(type(defaults[f.name]), filled.get(f.name, {}))
        elif f.name not in filled and f.metadata.get("before") is not None:
            filled[f.name] = f.metadata["before"]
    return filled


ARCHITECTURE_FIELDS = ("model", "hidden_size", "num_layers", "conv_channels")  # fixed by a run's start


def resume_mismatch(saved: dict, cfg: TrainConfig) -> str | None:
    """Why `cfg` cannot resume the run whose config.json holds `saved` (it names another
    architecture), or None when it can."""
    for name in ARCHITECTURE_FIELDS:
        if saved.get(name, getattr(cfg, name)) != getattr(cfg, name):
            flag = flag_name(name)
            return (f"--resume with {flag} {getattr(cfg, name)}, but this run trains {flag} "
                    f"{saved[name]} (leave {flag} out, or start a new run)")
    return None


def config_from_dict(cls, values: dict, source: str = "config", base=None):
    """A config dataclass from a dict (as json.loads of config.json gives it): nested dicts become
    nested dataclasses, lists pairs; unknown fields are an error. Fields the dict leaves out take
    their defaults (`base`'s values for a nested config)."""
    defaults = _defaults(cls if base is None else base)
    unknown = set(values) - set(defaults)
    if unknown:
        raise ValueError(f"{source}: unknown fields {sorted(unknown)}")
    built = {}
    for name, value in values.items():
        default = defaults[name]
        if is_dataclass(default) and isinstance(value, dict):
            value = config_from_dict(type(default), value, f"{source}: {name}", base=default)
        elif isinstance(default, tuple) and isinstance(value, list):
            value = tuple(value)
        built[name] = checked(value, default, f"{source}: {name}")
    try:
        return cls(**{**defaults, **built})
    except ValueError as exc:  # a value out of its range
        raise ValueError(f"{source}: {exc}") from None


def checked(value, default, where: str):
    """`value` as a field of `default`'s kind (a whole float as an int); ValueError naming the
    field when it is not one: a JSON "false" or 0 for a switch, text for a number, a list of
    another length for a pair."""
    def kind(x):
        if isinstance(x, bool):
            return "switch (true or false)"
        if isinstance(x, int):
            return "whole number"
        return "number" if isinstance(x, float) else "text" if isinstance(x, str) else type(x).__name__
    if isinstance(default, tuple):
        if isinstance(value, tuple) and len(value) == len(default) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
            return value
        raise ValueError(f"{where}: {value!r} is not a pair of numbers like {list(default)}")
    if kind(default) == "whole number" and kind(value) == "number" and float(value).is_integer():
        return int(value)
    if kind(default) == "number" and kind(value) == "whole number":
        return float(value)
    if kind(value) == kind(default) or is_dataclass(default) and type(value) is type(default):
        return value
    raise ValueError(f"{where}: {value!r} is not a {kind(default)}")


def _nested_updates(cls, args: argparse.Namespace, prefix: str = "") -> dict:
    updates = {}
    for f in fields(cls):
        default = _default(f)
        if is_dataclass(default):
            inner = _nested_updates(type(default), args, f"{prefix}{f.name}.")
            if inner:
                updates[f.name] = inner
        else:
            value = getattr(args, prefix + f.name, None)
            if value is not None:
                updates[f.name] = tuple(value) if isinstance(value, list) else value
    return updates


def _merge(base: dict, updates: dict) -> dict:
    merged = dict(base)
    for key, value in updates.items():
        merged[key] = _merge(merged.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


def config_from_args(cls, args: argparse.Namespace, config_file: str | None = None, stored: bool = False):
    """The config of --config FILE (if any) overridden by the flags that were given; `stored`: the
    file is a run's own config.json, whose missing fields mean what they meant then (as_stored_then)."""
    try:
        values = read_json_object(config_file, f"{cls.__name__} fields") if config_file else {}
    except OSError as exc:
        raise ValueError(f"{config_file}: {exc.strerror or exc}") from None
    if stored and config_file:
        values = as_stored_then(cls, values)
    return config_from_dict(cls, _merge(values, _nested_updates(cls, args)), config_file or "config")


def config_to_arguments(config, skip=(), cls=None, prefix: str = "", defaults: dict | None = None) -> list[str]:
    """Flags that rebuild `config` (a dataclass or a dict of its fields) from the defaults."""
    if not isinstance(config, dict):
        cls, config = type(config), asdict(config)
    cls = cls or TrainConfig
    if not prefix:
        config_from_dict(cls, {k: v for k, v in config.items() if k not in skip}, "options")
    defaults = asdict(cls()) if defaults is None else defaults
    arguments = []
    for f in fields(cls):
        name, default = f.name, defaults[f.name]
        value = config.get(name, default)
        if name in skip or value is None:
            continue
        if isinstance(default, dict):  # a nested config: its own flags, --name.field
            arguments += config_to_arguments(value, cls=type(_default(f)), prefix=f"{prefix}{name}.",
                                             defaults=default)
            continue
        if isinstance(default, tuple):
            value = tuple(value)
        if value == default:
            continue
        flag = flag_name(prefix + name)
        if isinstance(default, bool):
            arguments.append(flag if value else "--no-" + flag[2:])
        elif isinstance(default, tuple):
            arguments += [flag, *map(str, value)]
        else:
            arguments.extend([flag, str(value)])
    return arguments
