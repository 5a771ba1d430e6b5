"""Train a CTC model: `python -m srcore.train --train T.jsonl --valid V.jsonl --out RUN_DIR`.

Multi-process: `torchrun --nproc_per_node N -m srcore.train ...` (DDP; gloo on CPU, NCCL on GPU).
"""
import argparse
import logging
import math
import os
import random
import signal
import sys
import time
from dataclasses import asdict, astuple, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from .atomic import swap_copies
from .checkpoint import CONFIG_FILE, CheckpointWriteError, load_model, load_resume_state, unwrap, write_model_dir
from .config import LR_SCHEDULES, TrainConfig, add_config_arguments, config_from_args, flag_name, resume_mismatch
from .dataset import Batch, BucketBatchSampler, SpeechDataset, Unreadable, collate, drop_unalignable
from .decoding import greedy_decode
from .features import SpecAugment
from .manifest import SkipReport, read_manifest
from .metrics import ErrorCounts, corpus_counts, format_diff
from .model import PRESETS, ModelConfig, build_model, count_parameters, preset, widen_recurrent
from .run import FAILED, FINISHED, RUNNING, STOPPED, RunFolder, RunInUse, write_loss_curve
from .text import BLANK

log = logging.getLogger("srcore.train")


@dataclass
class TrainState:
    """Everything that resume needs besides the weights (saved as resume.pt)."""
    epoch: int = 0
    batch_in_epoch: int = 0
    step: int = 0
    scheduled_lr: float = 0.0
    best_wer: float = math.inf
    best_loss: float = math.inf  # breaks ties of best_wer (a run whose WER stays 1.0 still improves)
    nonfinite_steps: int = 0  # batches whose loss was NaN or infinite: skipped, not learned from
    elapsed_s: float = 0.0
    audio_s: float = 0.0
    train_s: float = 0.0
    epoch_loss_sum: float = 0.0
    epoch_batches: int = 0
    epoch_audio_s: float = 0.0
    epoch_train_s: float = 0.0
    # clips a loader found unreadable, per role (kept across a resume for the epoch rows' counts)
    unreadable: dict = field(default_factory=lambda: {"train": [], "valid": []})


@dataclass
class Trainer:
    config: TrainConfig
    run: RunFolder
    model: nn.Module
    model_config: object
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau
    scaler: torch.amp.GradScaler
    sampler: BucketBatchSampler
    train_loader: DataLoader
    valid_loader: DataLoader
    specaugment: SpecAugment
    device: torch.device
    rank: int = 0
    world_size: int = 1
    state: TrainState = field(default_factory=TrainState)
    stop_requested: bool = False

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# ---------------------------------------------------------------- learning rate and loss

COSINE_FLOOR = 0.05  # the cosine schedule ends at this fraction of the peak rate


def warmup_factor(step: int, warmup_steps: int) -> float:
    """Linear warm-up from 1/warmup_steps to 1."""
    return min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0


def cosine_factor(done: float, floor: float = COSINE_FLOOR) -> float:
    """Half a cosine from 1 down to `floor` as the planned training goes from 0 to 1 done."""
    done = min(max(done, 0.0), 1.0)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * done))


def learning_rate(cfg: TrainConfig, scheduled_lr: float, step: int, done: float) -> float:
    """The rate of optimiser step `step` with `done` of the planned training behind it: the warm-up
    times either the plateau scheduler's rate (`scheduled_lr`) or the cosine decay of --lr."""
    if cfg.lr_schedule == "cosine":
        return cfg.lr * warmup_factor(step, cfg.warmup_steps) * cosine_factor(done)
    return scheduled_lr * warmup_factor(step, cfg.warmup_steps)


def compute_loss(model, batch, criterion, specaugment=None, amp_dtype=None):
    """CTC loss of one batch (mean over utterances) and the model's log-probabilities."""
    feats = specaugment(batch.feats) if specaugment is not None else batch.feats
    with torch.autocast(feats.device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        log_probs, out_lengths = model(feats, batch.feat_lengths.to(feats.device))
    loss = criterion(log_probs.float().transpose(0, 1), batch.targets, out_lengths.cpu(),
                     batch.target_lengths)
    return loss, log_probs, out_lengths


# ---------------------------------------------------------------- one epoch, validation

def out_of_time(tr: Trainer, running_s: float = 0.0) -> bool:
    """True once --max-minutes of training wall time (data loading included) are spent."""
    budget = tr.config.max_minutes * 60
    return bool(budget) and tr.state.elapsed_s + running_s >= budget


STOP_VOTE_EVERY = 10


def agreed(tr: Trainer, flag: bool) -> bool:
    """`flag` if it is set on any rank: ranks must stop at the same step (or wait on each other)."""
    if tr.world_size == 1:
        return flag
    flags = torch.tensor([float(flag)], device=tr.device)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return bool(flags.item())


def stop_vote(tr: Trainer, wanted: bool) -> bool:
    """Whether to stop after this step: at once in one process; with several, the ranks vote every
    STOP_VOTE_EVERY steps (a vote is a sync, too costly for every step on a GPU)."""
    if tr.world_size > 1 and tr.state.step % STOP_VOTE_EVERY:
        return False
    return agreed(tr, wanted)


def train_one_epoch(tr: Trainer, criterion, amp_dtype) -> bool:
    """Train until the epoch ends (True) or max_steps, max_minutes or a stop cuts it short (False)."""
    cfg, st = tr.config, tr.state
    tr.model.train()
    tr.sampler.set_epoch(st.epoch, skip=st.batch_in_epoch)
    total = len(tr.sampler)
    bar = tqdm(total=total, initial=st.batch_in_epoch, desc=f"epoch {st.epoch + 1}",
               disable=not tr.is_main, mininterval=1 if sys.stderr.isatty() else 30, file=sys.stderr)
    # Losses are summed on the device and read (a sync on CUDA) only when logged or saved.
    pending = torch.zeros((), dtype=torch.float64 if tr.device.type != "mps" else torch.float32,
                          device=tr.device)

    def flush_loss():
        nonlocal pending
        st.epoch_loss_sum += float(pending)
        pending = torch.zeros_like(pending)

    started = last = time.perf_counter()
    for batch in tr.train_loader:
        note_unreadable(st, "train", batch)
        # A batch one rank skips, every rank skips, and they decide it before the forward pass
        # and before the backward, each of which holds collectives under DDP: a rank that went on
        # alone would pair its collectives with another's vote, and the run would hang.
        if agreed(tr, not isinstance(batch, Batch)):
            st.batch_in_epoch += 1
            continue
        batch = batch.to(tr.device)
        done = planned_fraction(tr, st.batch_in_epoch / max(total, 1), time.perf_counter() - started)
        for group in tr.optimizer.param_groups:
            group["lr"] = learning_rate(cfg, st.scheduled_lr, st.step, done)
        loss, _, _ = compute_loss(tr.model, batch, criterion, tr.specaugment, amp_dtype)
        finite = bool(torch.isfinite(loss))
        if not finite:  # one bad batch must not turn every weight into NaN
            st.nonfinite_steps += 1
            log.warning("step %d: non-finite loss, batch skipped (%d so far)", st.step, st.nonfinite_steps)
        if agreed(tr, not finite):
            st.batch_in_epoch += 1
            continue
        tr.optimizer.zero_grad(set_to_none=True)
        tr.scaler.scale(loss).backward()
        tr.scaler.unscale_(tr.optimizer)
        nn.utils.clip_grad_norm_(tr.model.parameters(), cfg.grad_clip)
        tr.scaler.step(tr.optimizer)
        tr.scaler.update()
        st.step += 1
        st.batch_in_epoch += 1
        pending += loss.detach()
        st.epoch_batches += 1
        st.epoch_audio_s += batch.audio_seconds * tr.world_size
        now = time.perf_counter()  # wall time, data loading included
        st.epoch_train_s, last = st.epoch_train_s + now - last, now
        bar.update(1)
        if cfg.log_every and st.step % cfg.log_every == 0:
            value = loss.item()
            bar.set_postfix(loss=f"{value:.3f}", refresh=False)
            if tr.is_main:
                tr.run.append_metrics({"type": "step", "step": st.step, "epoch": st.epoch + 1,
                                       "loss": round(value, 4), "lr": tr.optimizer.param_groups[0]["lr"],
                                       "elapsed_s": round(st.elapsed_s + now - started, 1)})
                tr.run.write_status(RUNNING, epoch=st.epoch + 1, step=st.step,
                                    progress=progress(tr, st.batch_in_epoch / max(total, 1)))
        if cfg.save_every and st.step % cfg.save_every == 0:
            flush_loss()
            st.elapsed_s, started = st.elapsed_s + now - started, now
            save_checkpoint(tr, extra={})
        if ((cfg.max_steps and st.step >= cfg.max_steps)
                or stop_vote(tr, tr.stop_requested or out_of_time(tr, now - started))):
            if out_of_time(tr, now - started) and tr.is_main:
                log.info("time budget of %.1f min reached at step %d: validating and saving",
                         cfg.max_minutes, st.step)
            break
    bar.close()
    flush_loss()
    st.elapsed_s += time.perf_counter() - started
    return st.batch_in_epoch >= total


def skipped_counts(tr: Trainer, manifest_skips: dict) -> dict:
    """Per role: the rows its manifest skipped and the distinct clips found unreadable since, by
    caching, by this process's loading or by a loader process's (every rank's, under DDP)."""
    found = {role: set(tr.state.unreadable.get(role, ())) | loader.dataset.unreadable
             for role, loader in (("train", tr.train_loader), ("valid", tr.valid_loader))}
    if tr.world_size > 1:  # every rank is here, at the end of the same epoch
        gathered = [None] * tr.world_size
        dist.all_gather_object(gathered, found)
        found = {role: set().union(*(rank[role] for rank in gathered)) for role in found}
    return {role: n + len(found[role]) for role, n in manifest_skips.items()}


def note_unreadable(st: TrainState, role: str, batch) -> None:
    """Remember the clips a loader found unreadable (each once), for the epoch rows' counts."""
    paths = batch.paths if isinstance(batch, Unreadable) else batch.unreadable
    known = st.unreadable.setdefault(role, [])
    known += [path for path in dict.fromkeys(paths) if path not in known]


@torch.no_grad()
def validate(tr: Trainer, criterion, amp_dtype) -> dict | None:
    """Validation loss, WER, CER and sample predictions (summed over ranks); None when a stop
    request cut it short (one process: a stop must not wait for a whole validation)."""
    tr.model.eval()
    loss_sum, n, counts, samples = 0.0, 0, ErrorCounts(), []
    for batch in tr.valid_loader:
        if tr.stop_requested and tr.world_size == 1:
            return None
        note_unreadable(tr.state, "valid", batch)
        if not isinstance(batch, Batch):
            continue
        batch = batch.to(tr.device)
        loss, log_probs, out_lengths = compute_loss(tr.model, batch, criterion, None, amp_dtype)
        hyps = [greedy_decode(lp, int(length)) for lp, length in zip(log_probs, out_lengths)]
        counts = counts + corpus_counts(batch.texts, hyps)
        loss_sum += loss.item() * len(hyps)
        n += len(hyps)
        samples.extend({"ref": r, "hyp": h} for r, h in zip(batch.texts, hyps)
                       if len(samples) < tr.config.samples)
    if tr.world_size > 1:
        totals = torch.tensor([loss_sum, n, *astuple(counts)], dtype=torch.float64)
        dist.all_reduce(totals)
        loss_sum, n = float(totals[0]), int(totals[1])
        counts = ErrorCounts(*(int(x) for x in totals[2:]))
    return {"valid_loss": loss_sum / max(n, 1), "wer": counts.wer, "cer": counts.cer,
            "valid_utterances": n, "samples": samples}


def work_done(tr: Trainer, epoch_fraction: float) -> float:
    """The fraction of the planned training (epochs, or max_steps where that ends it first) done."""
    done = (tr.state.epoch + epoch_fraction) / max(tr.config.epochs, 1)
    if tr.config.max_steps:
        done = max(done, tr.state.step / tr.config.max_steps)
    return round(min(done, 1.0), 4)


def planned_fraction(tr: Trainer, epoch_fraction: float, running_s: float = 0.0) -> float:
    """work_done, or the share of --max-minutes spent (`running_s` of it not yet in the state)
    where that is further along: how far the run is towards whichever limit ends it first."""
    done = work_done(tr, epoch_fraction)
    if tr.config.max_minutes:
        done = max(done, (tr.state.elapsed_s + running_s) / (tr.config.max_minutes * 60))
    return min(done, 1.0)


def progress(tr: Trainer, epoch_fraction: float) -> float:
    """planned_fraction; once the time budget has ended the run, the work it did (a run cut short
    by time never reads 100 %)."""
    done = work_done(tr, epoch_fraction) if out_of_time(tr) else planned_fraction(tr, epoch_fraction)
    return round(done, 4)


def epoch_position(tr: Trainer) -> float:
    """How far into the current epoch training is (0 between epochs)."""
    return tr.state.batch_in_epoch / max(len(tr.sampler), 1)


def time_budget_note(tr: Trainer) -> str:
    """What a run that its time budget ended before its planned training says about it; "" else."""
    done = work_done(tr, epoch_position(tr))
    if not out_of_time(tr) or done >= 1:
        return ""
    return (f"stopped on its time budget (--max-minutes {tr.config.max_minutes:g}) at {done:.0%} of "
            f"the planned training (step {tr.state.step})")


# ---------------------------------------------------------------- checkpoints

def rng_states() -> dict:
    states = {"torch": torch.get_rng_state(), "python": list(random.getstate()[1]),
              "python_pos": random.getstate()[2],
              "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
              "numpy_pos": int(np.random.get_state()[2])}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    random.setstate((3, tuple(states["python"]), states["python_pos"]))
    np.random.set_state(("MT19937", states["numpy"].numpy().astype(np.uint32), states["numpy_pos"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def validation_rank(wer: float, loss: float) -> tuple[float, float]:
    """How validations rank for the best checkpoint (lower is better): WER, then loss. A WER over
    1 (more words inserted than said: none right yet) ranks as 1, so early on the loss decides."""
    return min(wer, 1.0), loss


def save_checkpoint(tr: Trainer, extra: dict, best: bool = False) -> None:
    check_finite_weights(tr)  # every rank: a --save-every checkpoint of NaN weights is refused too
    if not tr.is_main:
        return
    resume = {"state": asdict(tr.state), "optimizer": tr.optimizer.state_dict(),
              "scheduler": tr.scheduler.state_dict(), "scaler": tr.scaler.state_dict(),
              "rng": rng_states()}
    info = {"training": asdict(tr.config), **extra}
    if best:  # best before last: a kill in between repeats this epoch, which rewrites best
        write_model_dir(tr.run.best_dir, tr.model, tr.model_config, info)
    write_model_dir(tr.run.last_dir, tr.model, tr.model_config, info, resume)


def check_finite_weights(tr: Trainer) -> None:
    """Refuse to checkpoint weights that went NaN or infinite: the last good checkpoint stays."""
    bad = [name for name, p in unwrap(tr.model).named_parameters() if not torch.isfinite(p).all()]
    if bad:
        raise FloatingPointError(f"weights became non-finite by step {tr.state.step} ({', '.join(bad[:3])}"
                                 f"{', ...' if len(bad) > 3 else ''}); the last good checkpoint is "
                                 f"{tr.run.last_dir}")


def restore(tr: Trainer) -> None:
    """Continue from RUN/checkpoints/last: weights, optimizer, scheduler, position, RNG."""
    model, _ = load_model(tr.run.last_dir)
    unwrap(tr.model).load_state_dict(model.state_dict())
    saved = load_resume_state(tr.run.last_dir)
    tr.state = TrainState(**saved["state"])
    tr.optimizer.load_state_dict(saved["optimizer"])
    tr.scheduler.load_state_dict(saved["scheduler"])
    tr.scaler.load_state_dict(saved["scaler"])
    set_rng_states(saved["rng"])  # rank 0's: the one a checkpoint holds
    if tr.rank:  # the other ranks draw their own dropout and SpecAugment again, not rank 0's
        torch.manual_seed(tr.config.seed + 1000 * tr.rank + tr.state.step)
    log.info("resumed from %s at epoch %d, step %d", tr.run.last_dir, tr.state.epoch + 1, tr.state.step)


# ---------------------------------------------------------------- setup

def process_rank() -> int:
    """This process's rank among torchrun's (0 when it runs alone)."""
    return int(os.environ.get("RANK", 0))


def setup_distributed(device_arg: str) -> tuple[int, int, torch.device]:
    rank, world_size = process_rank(), int(os.environ.get("WORLD_SIZE", 1))
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    if device_arg == "auto":
        device_arg = "cuda" if torch.cuda.is_available() else "cpu"
    if device_arg == "cuda":  # each process its own GPU (torch.cuda.set_device needs an index)
        device_arg = f"cuda:{local_rank}"
    device = torch.device(device_arg)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {device_arg}: torch sees no CUDA GPU on this machine (--device cpu or auto)")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


def setup_logging(run: RunFolder, is_main: bool) -> None:
    handlers = [logging.StreamHandler(sys.stderr)]
    if is_main:
        handlers.append(logging.FileHandler(run.log_path))
    logging.basicConfig(level=logging.INFO if is_main else logging.WARNING, handlers=handlers,
                        format="%(asctime)s %(levelname)s %(message)s", force=True)


def load_utterances(manifest: str, cfg: TrainConfig, frames_per_second: float, role: str):
    report = SkipReport()
    utterances = read_manifest(manifest, cfg.max_duration, report, cfg.check_audio)
    utterances = drop_unalignable(utterances, frames_per_second, report)
    log.info("%s: %d utterances, %.1f min from %s; %s", role, len(utterances),
             sum(u.duration for u in utterances) / 60, manifest, report.summary())
    if not utterances:
        raise ValueError(f"{manifest}: no usable utterances ({report.summary()})")
    return utterances, report


def worker_init(_worker_id: int) -> None:
    """One intra-op thread per loader process: the trainer's own threads need the cores."""
    torch.set_num_threads(1)


def make_loaders(cfg: TrainConfig, model_config, rank: int, world_size: int, device):
    feats = model_config.features
    frames_per_second = feats.sample_rate / feats.hop_length / model_config.stride
    train_utts, train_skips = load_utterances(cfg.train, cfg, frames_per_second, "train")
    valid_utts, valid_skips = load_utterances(cfg.valid, cfg, frames_per_second, "valid")
    augment = replace(cfg.augmentation, enabled=cfg.augment and cfg.augmentation.enabled)
    train_set = SpeechDataset(train_utts, feats, augment, seed=cfg.seed, trim_silence=cfg.trim_silence)
    valid_set = SpeechDataset(valid_utts, feats, None, trim_silence=cfg.trim_silence)
    # validation (features, reused every epoch) has first call on the memory budget
    budget_mb = cfg.cache_mb
    for dataset in (valid_set, train_set):
        if dataset.cache(budget_mb):
            budget_mb -= dataset.cache_bytes() / 2 ** 20
    sampler = BucketBatchSampler(train_set.planned_seconds, cfg.batch_size, cfg.seed,
                                 rank=rank, num_replicas=world_size,
                                 max_batch_seconds=cfg.max_batch_seconds or None)
    valid_sampler = BucketBatchSampler([u.duration for u in valid_utts], cfg.batch_size, shuffle=False,
                                       rank=rank, num_replicas=world_size, even=False)  # every clip

    def loader(dataset, batch_sampler):
        # cached features leave a loader process nothing to do but copy batches
        workers = 0 if dataset.cached == "feats" else cfg.workers
        return DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                          num_workers=workers, pin_memory=device.type == "cuda",
                          generator=torch.Generator(), persistent_workers=workers > 0,
                          worker_init_fn=worker_init if workers > 0 else None)

    return (sampler, loader(train_set, sampler), loader(valid_set, valid_sampler),
            {"train": train_skips.total, "valid": valid_skips.total})  # rows the manifests skipped


def build_trainer(cfg: TrainConfig) -> tuple[Trainer, dict]:
    rank, world_size, device = setup_distributed(cfg.device)
    run = RunFolder(cfg.out)
    if rank == 0:
        run.create()
    if world_size > 1:
        dist.barrier()
    setup_logging(run, rank == 0)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    model, model_config = initial_model(cfg)
    model = model.to(device)
    torch.manual_seed(cfg.seed + rank)  # different dropout per rank, same initial weights
    sampler, train_loader, valid_loader, skipped = make_loaders(cfg, model_config, rank, world_size,
                                                                device)
    # fused: one kernel for the whole update instead of a dozen passes over the parameters
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=cfg.lr,
                                  fused=device.type in ("cpu", "cuda"))
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, factor=cfg.lr_factor,
                                                           patience=cfg.lr_patience)
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    tr = Trainer(cfg, run, model, model_config, optimizer, scheduler,
                 torch.amp.GradScaler(device.type, enabled=cfg.amp and device.type == "cuda"),
                 sampler, train_loader, valid_loader, training_specaugment(model_config, cfg), device,
                 rank, world_size, TrainState(scheduled_lr=cfg.lr))
    log.info("model %s (%s, %d x %d): %.2f M parameters on %s x%d",
             f"from {cfg.init_from}" if cfg.init_from else cfg.model, model_config.architecture,
             model_config.hidden_size, model_config.num_layers, count_parameters(model) / 1e6, device, world_size)
    return tr, skipped


def sized_preset(cfg: TrainConfig) -> ModelConfig:
    """The --model preset with the sizes the config overrides (0 keeps the preset's)."""
    sizes = {k: getattr(cfg, k) for k in ("hidden_size", "num_layers", "conv_channels") if getattr(cfg, k)}
    return replace(preset(cfg.model), **sizes)


def initial_model(cfg: TrainConfig) -> tuple[nn.Module, ModelConfig]:
    """The sized --model preset, or --init-from's model; --hidden-size larger than that model's
    widens it (`widen_recurrent`: the same function, more units to train)."""
    if not cfg.init_from:
        model_config = sized_preset(cfg)
        return build_model(model_config), model_config
    model, model_config = load_model(cfg.init_from)
    log.info("initialised from %s", cfg.init_from)
    shape = lambda c: (c.architecture, c.hidden_size, c.num_layers)
    if cfg.model != TrainConfig().model and shape(preset(cfg.model)) != shape(model_config):
        log.warning("--model %s is not the architecture of --init-from %s (%s, %d x %d): the "
                    "latter is trained", cfg.model, cfg.init_from, model_config.architecture,
                    model_config.hidden_size, model_config.num_layers)
    for name in ("num_layers", "conv_channels"):
        if getattr(cfg, name) and getattr(cfg, name) != getattr(model_config, name):
            raise ValueError(f"{flag_name(name)} {getattr(cfg, name)}: --init-from "
                             f"{cfg.init_from} has {getattr(model_config, name)} (only "
                             f"--hidden-size can grow a model)")
    if cfg.hidden_size and cfg.hidden_size != model_config.hidden_size:
        log.info("widened from %d to %d recurrent units per direction", model_config.hidden_size,
                 cfg.hidden_size)
        return widen_recurrent(model, model_config, cfg.hidden_size)
    return model, model_config


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices and convolution kernels only: biases and norm scales (1-D
    parameters) are left alone, as decaying them only pulls them off their working values."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


def cpu_has_fast_bf16() -> bool:
    """AMX or AVX512-BF16: bfloat16 matrix products faster than float32 ones."""
    try:
        return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    except AttributeError:
        return False


def training_specaugment(model_config, cfg: TrainConfig) -> SpecAugment:
    """The model's SpecAugment policy, off for this run with --no-specaugment; the model's saved
    config keeps its own setting, so a later fine-tune can turn it back on."""
    policy = replace(model_config.specaugment,
                     enabled=model_config.specaugment.enabled and cfg.specaugment)
    return SpecAugment(policy)


def amp_dtype_for(tr: Trainer):
    if tr.device.type == "cpu" and tr.config.cpu_amp:
        if cpu_has_fast_bf16():
            return torch.bfloat16
        log.warning("--cpu-amp: this CPU has no AMX or AVX512-BF16; training in float32")
        return None
    if not (tr.config.amp and tr.device.type == "cuda"):
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


# ---------------------------------------------------------------- the loop

def end_of_epoch(tr: Trainer, criterion, amp_dtype, complete: bool, skipped: dict) -> None:
    """Validate, step the plateau scheduler, log metrics, write checkpoints."""
    st = tr.state
    lr_in_effect = tr.optimizer.param_groups[0]["lr"]  # the epoch's last step's: warm-up included
    result = validate(tr, criterion, amp_dtype)
    if result is None:
        log.warning("stop requested during validation: saving the last checkpoint unvalidated")
        if complete:
            advance_epoch(st)
        save_checkpoint(tr, {})
        return
    if complete and tr.config.lr_schedule == "plateau":
        for group in tr.optimizer.param_groups:  # the plateau scheduler scales the scheduled rate,
            group["lr"] = st.scheduled_lr  # not the warm-up's fraction of it
        tr.scheduler.step(result["valid_loss"])
        st.scheduled_lr = tr.optimizer.param_groups[0]["lr"]
    row = {"type": "epoch", "epoch": st.epoch + 1, "step": st.step,
           "train_loss": round(st.epoch_loss_sum / max(st.epoch_batches, 1), 4),
           "valid_loss": round(result["valid_loss"], 4), "wer": round(result["wer"], 4),
           "cer": round(result["cer"], 4), "lr": lr_in_effect,
           "elapsed_s": round(st.elapsed_s, 1),
           "audio_s_per_s": round(st.epoch_audio_s / max(st.epoch_train_s, 1e-9), 1),
           "partial": not complete, "nonfinite_steps": st.nonfinite_steps,
           "skipped": skipped_counts(tr, skipped),
           "samples": result["samples"]}
    best = validation_rank(result["wer"], result["valid_loss"]) < validation_rank(st.best_wer, st.best_loss)
    if best:
        st.best_wer, st.best_loss = result["wer"], result["valid_loss"]
    check_finite_weights(tr)
    if complete:  # a partial epoch's figures stay in epoch_*: a resumed run adds to them
        advance_epoch(st)
    if tr.is_main:
        log.info("epoch %d step %d: train loss %.4f valid loss %.4f WER %.3f CER %.3f lr %.2e "
                 "(%.0f audio-s/s)", row["epoch"], st.step, row["train_loss"], row["valid_loss"],
                 row["wer"], row["cer"], row["lr"], row["audio_s_per_s"])
        for sample in result["samples"]:
            log.info("  %s", format_diff(sample["ref"], sample["hyp"]))
        tr.run.append_metrics(row)
        write_loss_curve(tr.run)
    metrics = {k: row[k] for k in ("epoch", "step", "wer", "cer", "valid_loss")}
    save_checkpoint(tr, {"metrics": metrics}, best=best)


def advance_epoch(st: TrainState) -> None:
    st.audio_s += st.epoch_audio_s
    st.train_s += st.epoch_train_s
    st.epoch, st.batch_in_epoch = st.epoch + 1, 0
    st.epoch_loss_sum = st.epoch_audio_s = st.epoch_train_s = 0.0
    st.epoch_batches = 0


def overall_throughput(st: TrainState) -> float:
    """Audio seconds trained per second of training wall time, over the whole run."""
    return round((st.audio_s + st.epoch_audio_s) / max(st.train_s + st.epoch_train_s, 1e-9), 1)


def fit(tr: Trainer, skipped: dict) -> str:
    """Train until epochs, max_steps or a stop request; returns the final state."""
    cfg, st = tr.config, tr.state
    criterion = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    amp_dtype = amp_dtype_for(tr)
    if out_of_time(tr):
        log.warning("the --max-minutes budget (%.1f min) is already spent: nothing to train "
                    "(give a larger --max-minutes to go on)", cfg.max_minutes)
    while (st.epoch < cfg.epochs and not (cfg.max_steps and st.step >= cfg.max_steps)
           and not agreed(tr, out_of_time(tr))):
        complete = train_one_epoch(tr, criterion, amp_dtype)
        end_of_epoch(tr, criterion, amp_dtype, complete, skipped)
        if tr.is_main:
            tr.run.write_status(RUNNING, epoch=st.epoch, step=st.step, progress=progress(tr, 0),
                                best_wer=st.best_wer)
        tr.stop_requested = agreed(tr, tr.stop_requested)  # a signal one rank got stops them all
        if not complete or tr.stop_requested or (cfg.max_steps and st.step >= cfg.max_steps):
            break
    return STOPPED if tr.stop_requested else FINISHED


def request_stop(tr: Trainer):
    def handler(signum, frame):
        log.warning("signal %d: stopping after this step and saving a checkpoint", signum)
        tr.stop_requested = True
    return handler


def failure(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def record_failure(run: RunFolder, exc: BaseException, step: int) -> None:
    """A "failed" status.json that says why, and the error in the log: one line for a checkpoint
    that could not be written (its message says it all), else with the traceback."""
    try:
        run.write_status(FAILED, error=failure(exc), step=step)
    except OSError as status_error:  # the full disk that stopped a checkpoint may stop this too
        log.error("could not record the failure in %s: %s", run.status_path, status_error)
    if isinstance(exc, CheckpointWriteError):
        log.error("training failed: %s", exc)
    else:
        log.exception("training failed")


def check_resumable(run: RunFolder, cfg: TrainConfig) -> None:
    """--resume must name the architecture the run was trained with, and a run folder with
    checkpoints is only continued, never trained over; refuse before any write."""
    if not cfg.resume and run.has_checkpoints():
        raise ValueError(f"{run.path}: holds a trained run; --resume continues it, or choose another --out")
    problem = resume_mismatch(run.read_config(), cfg) if cfg.resume else None
    if problem:
        raise ValueError(f"{run.path}: {problem}")


def absolute_paths(cfg: TrainConfig) -> TrainConfig:
    """Manifests, init weights and the run folder as absolute paths: the run's config.json must
    mean the same files whatever folder a later reader (app, dashboard, --resume) starts in."""
    return replace(cfg, **{k: str(Path(getattr(cfg, k)).resolve())
                           for k in ("train", "valid", "init_from", "out") if getattr(cfg, k)})


def train(cfg: TrainConfig) -> RunFolder:
    cfg = absolute_paths(cfg)
    run = RunFolder(cfg.out)
    check_resumable(run, cfg)
    lock = run.lock() if process_rank() == 0 else None
    try:
        return train_locked(cfg)
    finally:
        if lock:
            lock.close()


def has_resume_point(last_dir: Path) -> bool:
    """Whether `--resume` has a checkpoint here: `last`, its `.old` copy, or the `.new` one a kill
    left complete before its swap (config.json is its last file written)."""
    last, old, new = swap_copies(last_dir)
    return last.exists() or old.exists() or (new / CONFIG_FILE).is_file()


def train_locked(cfg: TrainConfig) -> RunFolder:
    try:
        tr, skipped = build_trainer(cfg)
    except BaseException as exc:  # bad manifests, no data: the run folder still says why
        if process_rank() == 0:  # a resumed run keeps its recorded position
            run = RunFolder(cfg.out).create()
            position = {k: v for k, v in run.read_status().items() if k in ("epoch", "step", "progress")}
            run.write_status(FAILED, error=failure(exc), **{"step": 0, **position})
        raise
    if tr.is_main:
        tr.run.write_config(asdict(cfg))
        tr.run.write_status(RUNNING, epoch=0, step=0, progress=0.0)
    try:
        if cfg.resume and has_resume_point(tr.run.last_dir):
            restore(tr)
            if tr.is_main:
                dropped = tr.run.drop_metrics_after(tr.state.step, tr.state.epoch)
                if dropped:
                    log.info("dropped %d metric rows logged after the checkpoint", dropped)
                tr.run.write_status(RUNNING, epoch=tr.state.epoch, step=tr.state.step,
                                    progress=progress(tr, 0), best_wer=tr.state.best_wer)
        else:
            if cfg.resume:
                log.warning("--resume: no checkpoint in %s yet, starting fresh", tr.run.path)
            if tr.is_main:  # rows of an earlier attempt that died before its first checkpoint go
                tr.run.drop_metrics_after(0, 0)
        signal.signal(signal.SIGTERM, request_stop(tr))
        state = fit(tr, skipped)
        if tr.world_size > 1:  # every rank done with its collectives before any group goes away
            dist.barrier()      # (a rank tearing down gloo mid-collective aborted at exit, rarely)
    except BaseException as exc:
        if tr.is_main:
            record_failure(tr.run, exc, tr.state.step)
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    if tr.is_main:
        note = time_budget_note(tr) if state == FINISHED else ""
        tr.run.write_status(state, epoch=tr.state.epoch, step=tr.state.step,
                            progress=progress(tr, epoch_position(tr)), best_wer=tr.state.best_wer,
                            audio_s_per_s=overall_throughput(tr.state), **({"note": note} if note else {}))
        log.info("%s%s: best WER %.3f; model in %s", state, f" ({note})" if note else "",
                 tr.state.best_wer, tr.run.best_dir)
    return tr.run


# ---------------------------------------------------------------- command line

def parse_args(argv=None) -> TrainConfig:
    parser = argparse.ArgumentParser(prog="python -m srcore.train", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file with any of the fields below (a run's config.json; "
                                         "with --resume, --out's own by default)")
    add_config_arguments(parser, TrainConfig, choices={"model": PRESETS, "lr_schedule": LR_SCHEDULES})
    args = parser.parse_args(argv)
    own_config = Path(args.out or TrainConfig().out) / "config.json"
    if args.resume and not args.config and own_config.is_file():  # the run's own settings, not defaults
        args.config = str(own_config)
    try:
        cfg = config_from_args(TrainConfig, args, args.config, stored=bool(args.resume))
    except ValueError as exc:
        parser.error(str(exc))
    if not cfg.train or not cfg.valid:
        parser.error("--train and --valid are required (or set them in --config)")
    return cfg


def main(argv=None) -> None:
    cfg = parse_args(argv)
    try:
        train(cfg)
    except CheckpointWriteError:  # the log has said why, in one line
        sys.exit(1)
    except (ValueError, RunInUse, FloatingPointError, FileNotFoundError) as exc:  # a missing
        sys.exit(f"error: {exc}")  # manifest or --init-from, bad data; the log has the traceback


if __name__ == "__main__":
    main()
