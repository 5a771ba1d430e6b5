"""Model directories and resume state.

A model directory is self-describing: `config.json` (architecture, features, alphabet) and
`model.safetensors` (no pickle). A training checkpoint adds `resume.pt`: optimizer, scheduler, scaler,
epoch/step, sampler position and RNG states. Directories are written beside the target and swapped
in with renames, so a kill at any moment leaves a loadable checkpoint.
"""
import json
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from . import __version__
from .atomic import read_json_object, staging_dir, swap_copies, swap_in
from .errors import exception_chain
from .model import ModelConfig, build_model
from .text import BLANK, CHARS, DEFAULT_TOKENIZER, TOKENS_FILE, Tokenizer

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
RESUME_FILE = "resume.pt"


def model_dir_config(config: ModelConfig, extra: dict | None = None) -> dict:
    return {"srcore_version": __version__, "model": config.to_dict(),
            "alphabet": {"chars": CHARS, "blank": BLANK}, **(extra or {})}


class CheckpointWriteError(OSError):
    """A model directory could not be written (a full disk, ...): nothing of it is left behind,
    and the directory that was there before is intact."""


def write_model_dir(directory, model: torch.nn.Module, config: ModelConfig,
                    extra: dict | None = None, resume_state: dict | None = None,
                    companions=()) -> Path:
    """Atomically (re)write a model directory; `extra` goes into config.json (metrics, training).
    `companions`, files or folders (another model's LM and decoding settings), are copied in under
    their own names before the swap: they may lie in the directory being replaced."""
    directory = Path(directory)
    check_replaceable(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(directory)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        _write_files(staging, model, resume_state)
        _copy_companions(staging, companions)
        # config.json last: a staging folder that has it is complete (resolve_model_dir's test)
        (staging / CONFIG_FILE).write_text(json.dumps(model_dir_config(config, extra), indent=2))
    except Exception as exc:
        shutil.rmtree(staging, ignore_errors=True)  # never a truncated copy beside the good one
        raise CheckpointWriteError(f"could not write {directory}: {write_failure(exc)} (nothing "
                                   "half-written is left; the previous copy, if any, is intact)") from None
    swap_in(staging, directory)
    return directory


def check_replaceable(directory: Path) -> None:
    """CheckpointWriteError unless `directory` is absent, an empty folder or a model directory
    (a folder of other files, or a file, is never swapped away)."""
    if directory.is_file() or directory.is_symlink() and not directory.is_dir():
        raise CheckpointWriteError(f"{directory}: is a file, not a model directory")
    if directory.is_dir() and any(directory.iterdir()) and not (directory / CONFIG_FILE).is_file():
        raise CheckpointWriteError(f"{directory}: holds other files and no model; choose a new or "
                                   "empty folder (a model directory there is replaced)")


def _write_files(staging: Path, model, resume_state) -> None:
    state = {k: v.detach().cpu().contiguous() for k, v in unwrap(model).state_dict().items()}
    save_file(state, str(staging / WEIGHTS_FILE), metadata={"format": "pt"})
    (staging / TOKENS_FILE).write_text(DEFAULT_TOKENIZER.to_text(), encoding="utf-8")
    if resume_state is not None:
        with open(staging / RESUME_FILE, "wb") as f:  # through Python: a failed write is an OSError
            torch.save(resume_state, f)


def _copy_companions(staging: Path, companions) -> None:
    for source in map(Path, companions):
        if source.is_dir():
            shutil.copytree(source, staging / source.name)
        elif source.is_file():
            shutil.copy2(source, staging / source.name)


def write_failure(exc: BaseException) -> str:
    """Why a write failed: the OS's reason ("No space left on device") where an OSError is behind
    it, else the exception itself."""
    reason = next((cause.strerror for cause in exception_chain(exc)
                   if isinstance(cause, OSError) and cause.strerror), None)
    return reason or f"{type(exc).__name__}: {exc}"


def resolve_model_dir(directory) -> Path:
    """The directory itself, or the complete copy a kill mid-swap left beside it."""
    directory = Path(directory)
    for candidate in swap_copies(directory):
        if (candidate / CONFIG_FILE).is_file() and (candidate / WEIGHTS_FILE).is_file():
            return candidate
    raise FileNotFoundError(f"{directory}: not a model directory (needs {CONFIG_FILE} and "
                            f"{WEIGHTS_FILE})")


def read_config(directory) -> dict:
    path = resolve_model_dir(directory) / CONFIG_FILE
    meta = read_json_object(path, "model settings")
    if not isinstance(meta.get("model"), dict):
        raise ValueError(f"{path}: no \"model\" section describing the architecture")
    return meta


def load_model(directory, device="cpu") -> tuple[torch.nn.Module, ModelConfig]:
    """Build the architecture a model directory describes and load its weights strictly."""
    directory = resolve_model_dir(directory)
    meta = read_config(directory)
    if load_tokenizer(directory) != DEFAULT_TOKENIZER:
        raise ValueError(f"{directory}: model uses a different alphabet")
    try:
        config = ModelConfig.from_dict(meta["model"])
    except ValueError as exc:
        raise ValueError(f"{directory / CONFIG_FILE}: {exc}") from None
    model = build_model(config)
    weights = directory / WEIGHTS_FILE
    try:
        model.load_state_dict(load_file(str(weights)), strict=True)
    except Exception as exc:  # truncated file, missing or unexpected tensors, wrong shapes
        first = " ".join(str(exc).split())[:300]
        raise ValueError(f"{weights}: weights do not fit the architecture in {CONFIG_FILE} "
                         f"or the file is damaged ({type(exc).__name__}: {first})") from None
    return model.to(device).eval(), config


def load_tokenizer(directory) -> Tokenizer:
    """tokens.txt, else (models saved before it) config.json's alphabet, else the default."""
    directory = resolve_model_dir(directory)
    tokens = directory / TOKENS_FILE
    if tokens.is_file():
        return Tokenizer.from_text(tokens.read_text(encoding="utf-8"), str(tokens))
    alphabet = read_config(directory).get("alphabet", {})
    return Tokenizer(tuple(alphabet.get("chars", CHARS)), alphabet.get("blank", BLANK))


def load_resume_state(directory) -> dict:
    path = resolve_model_dir(directory) / RESUME_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no resume state (was this checkpoint written by training?)")
    return torch.load(path, map_location="cpu", weights_only=True)


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare model inside a DistributedDataParallel wrapper."""
    return getattr(model, "module", model)
