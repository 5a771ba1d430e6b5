"""Padding and training speed of the training batches, bucketed by two different lengths.

    .venv/bin/python bench/batch_padding.py [--train MANIFEST] [--batches 40] [--steps 15] [--repeats 2]

`manifest`: batches bucketed by the manifest durations (what the sampler did before the length
plan); `planned`: by the lengths that epoch's margins and speed give each clip (srcore.train's
sampler). Both read the same clips through the same augmentation (the training defaults, with
trimming), so only which clips share a batch differs. For each it prints the padded share of the
frames the model computes and the frames per audio second, then times training steps of the
default model (bf16 autocast where the CPU has it, the trainer's loss and optimizer, loading
included) in alternating order, and reports audio seconds per second. The last line is one JSON
object.
"""
import argparse
import statistics
import time
from pathlib import Path

from _common import DEFAULT_DATA, emit, machine


def loaders(args):
    """The trainer's own train loader, and one over the same dataset bucketed by manifest durations."""
    import torch
    from torch.utils.data import DataLoader

    from srcore.config import TrainConfig
    from srcore.dataset import BucketBatchSampler, collate
    from srcore.train import make_loaders, sized_preset
    cfg = TrainConfig(train=str(args.train), valid=str(args.train), workers=0, cache_mb=0, seed=args.seed)
    model_config = sized_preset(cfg)
    sampler, planned, _, _ = make_loaders(cfg, model_config, 0, 1, torch.device("cpu"))
    dataset = planned.dataset
    by_manifest = BucketBatchSampler([u.duration for u in dataset.utterances], cfg.batch_size, cfg.seed)
    manifest = DataLoader(dataset, batch_sampler=by_manifest, collate_fn=collate)
    for s in (sampler, by_manifest):
        s.set_epoch(1)
    return cfg, model_config, {"manifest": manifest, "planned": planned}


def padding(loader, batches: int) -> dict:
    frames = speech = audio = 0.0
    for i, batch in enumerate(loader):
        if i == batches:
            break
        frames += batch.feats.shape[0] * batch.feats.shape[-1]
        speech += float(batch.feat_lengths.sum())
        audio += batch.audio_seconds
    return {"padded_share": round(1 - speech / frames, 3), "frames_per_audio_s": round(frames / audio, 1)}


def train_speed(cfg, model_config, loader, steps: int) -> float:
    """Audio seconds per second over `steps` training steps (after one untimed step)."""
    import torch

    from srcore.model import build_model
    from srcore.text import BLANK
    from srcore.train import compute_loss, cpu_has_fast_bf16, parameter_groups, training_specaugment
    torch.manual_seed(0)
    model = build_model(model_config).train()
    optimizer = torch.optim.AdamW(parameter_groups(model, cfg.weight_decay), lr=1e-4)
    criterion = torch.nn.CTCLoss(blank=BLANK, zero_infinity=True)
    amp_dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    specaugment = training_specaugment(model_config, cfg)
    audio, started = 0.0, None
    for i, batch in enumerate(loader):
        if i == steps + 1:
            break
        loss, _, _ = compute_loss(model, batch, criterion, specaugment, amp_dtype)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if started is None:
            started = time.perf_counter()
        else:
            audio += batch.audio_seconds
    return audio / (time.perf_counter() - started)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", type=Path, default=DEFAULT_DATA / "all.jsonl", help="training manifest")
    p.add_argument("--batches", type=int, default=40, help="batches counted for the padding figures")
    p.add_argument("--steps", type=int, default=15, help="timed training steps per run")
    p.add_argument("--repeats", type=int, default=2, help="runs of each variant (alternating order)")
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()
    info = machine()
    print(f"machine: {info}", flush=True)
    cfg, model_config, variants = loaders(args)
    result = {"train": str(args.train), "machine": info}
    for name, loader in variants.items():
        result[name] = padding(loader, args.batches)
        print(f"{name}: {result[name]}", flush=True)
    speeds = {name: [] for name in variants}
    for repeat in range(args.repeats):
        for name in (list(variants) if repeat % 2 == 0 else list(variants)[::-1]):
            speeds[name].append(train_speed(cfg, model_config, variants[name], args.steps))
            print(f"{name} run {repeat + 1}: {speeds[name][-1]:.1f} audio-s/s", flush=True)
    for name, runs in speeds.items():
        result[name]["audio_s_per_s"] = round(statistics.median(runs), 1)
        result[name]["runs"] = [round(x, 1) for x in runs]
    result["speedup"] = round(result["planned"]["audio_s_per_s"] / result["manifest"]["audio_s_per_s"], 2)
    emit(result)


if __name__ == "__main__":
    main()
