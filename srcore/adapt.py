"""Teach a model one voice: a couple of minutes of fine-tuning on a few dozen of its clips.

    python -m srcore.adapt --model checkpoints/default --manifest my-voice.jsonl --out my-model \\
        [--minutes 2] [--held-out 4] [--replay general.jsonl]

The result is an ordinary model directory: the weights, a config.json that says what it was adapted
from and on how much audio, the base model's word LM and decoding settings, and a card.

With --vtln the speaker's vocal tract warp is chosen first: the frequency warp of the features
(0.84-1.16) under which the model's CTC loss on the takes is lowest. It costs a few forward passes,
and the adapted model applies it to every input (features.speaker_warp). Off by default: on a real
speaker it made the held-out WER worse, alone and before the fine-tuning (docs/experiments.md).

What keeps a few minutes on twenty clips from undoing the model (see AdaptConfig; measured in
docs/experiments.md):
- a learning rate of 3e-4 (under a third of training's default), a cosine decay over few steps,
  and a time cap;
- the takes cut to their speech (srcore.vad: a microphone take's silence before and after the
  words is left out, as the recognizer leaves it out) and augmented as training clips are
  (speed, level, noise, codecs, vocal tract warp, SpecAugment; not simulated rooms and
  microphones: the takes carry the speaker's own), so the model learns the voice rather than
  the recordings;
- afterwards the weights moved halfway back to the starting ones (--keep 0.5; weight-space
  ensembling, WiSE-FT): on a real speaker both her held-out WER and the others' improved;
- optionally general speech replayed in every step (--replay), a pull back towards the starting
  weights (--anchor, L2-SP) or only some layers learning (--layers).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from .checkpoint import (
    CheckpointWriteError,
    check_replaceable,
    load_model,
    read_config,
    resolve_model_dir,
    write_model_dir,
)
from .config import AdaptConfig, add_config_arguments, config_from_args
from .dataset import Batch, SpeechDataset, collate
from .decoding import DECODING_FILE, LM_DIR
from .evaluate import score_utterances
from .features import SpecAugment
from .manifest import SkipReport, Utterance, manifest_label, read_manifest
from .text import BLANK
from .train import compute_loss, cosine_factor, cpu_has_fast_bf16, warmup_factor
from .transcribe import Recognizer

# What a visitor reads aloud in the app: every letter of the alphabet, the vowels in many
# contexts, digits and short commands. Our own sentences: none is from a published prompt list.
PROMPTS = (
    "The quick brown fox jumps over the lazy dog.",
    "My sister keeps seven yellow jackets in her wardrobe.",
    "Please call the office before nine on Thursday morning.",
    "A cheerful zebra walked through the quiet village square.",
    "We bought fresh bread, cheese and grapes at the market.",
    "The judge asked everyone to wait outside the room.",
    "Heavy rain flooded the highway near the old bridge.",
    "Could you switch off the lights in the kitchen?",
    "Four five six seven eight nine",
    "Three oh one two",
    "Set a timer for twenty minutes.",
    "Open the window and let the cool breeze in.",
    "How much does a ticket to the museum cost?",
    "The children played football until the sun went down.",
    "Turn the volume up.",
    "Stop the music.",
    "Our neighbour fixed the broken fence with a hammer and nails.",
    "She always drinks a cup of warm tea after lunch.",
    "Zero two nine eight",
    "Thank you very much for your help yesterday.",
)
CACHE_MB = 512.0        # decoded takes kept in memory
VTLN_WARPS = tuple(round(0.84 + 0.02 * i, 2) for i in range(17))  # 0.84 ... 1.16, 1.0 among them
GRAD_CLIP = 5.0


@dataclass
class AdaptResult:
    model_dir: Path
    clips: int                # clips learned from
    audio_s: float
    steps: int
    seconds: float            # fine-tuning wall time
    losses: list = field(default_factory=list)
    held_out: list = field(default_factory=list)   # {"ref", "before", "after"} per held-out clip
    before: dict | None = None                     # {"wer", "cer", "n"} on the held-out clips
    after: dict | None = None
    speaker_warp: float = 1.0                      # the vocal tract warp chosen (1: none)

    def summary(self) -> dict:
        return {"model_dir": str(self.model_dir), "clips": self.clips,
                "audio_s": round(self.audio_s, 1), "steps": self.steps,
                "seconds": round(self.seconds, 1), "final_loss": round(self.losses[-1], 4)
                if self.losses else None, "speaker_warp": self.speaker_warp,
                "before": self.before, "after": self.after}


# ---------------------------------------------------------------- pieces

def learning_rate(step: int, cfg: AdaptConfig) -> float:
    """Linear warm-up, then a cosine decay to a tenth of the peak at max_steps."""
    return cfg.lr * warmup_factor(step, cfg.warmup_steps) * cosine_factor(step / max(1, cfg.max_steps), 0.1)


def split_held_out(utterances: list, n: int, seed: int) -> tuple[list, list]:
    """(clips to learn from, `n` clips kept out to measure), drawn by seed."""
    if n <= 0:
        return list(utterances), []
    if n >= len(utterances):
        raise ValueError(f"--held-out {n} leaves nothing to learn from ({len(utterances)} clips)")
    order = np.random.default_rng(seed).permutation(len(utterances))
    held = set(order[:n].tolist())
    return ([u for i, u in enumerate(utterances) if i not in held],
            [u for i, u in enumerate(utterances) if i in held])


def learning_parameters(model: nn.Module, layers: str) -> list[nn.Parameter]:
    """The parameters that learn (`layers`: "all" or a comma list of top-level parts); the
    others are frozen."""
    parts = [p.strip() for p in layers.split(",") if p.strip()]
    if parts == ["all"]:
        return [p for p in model.parameters()]
    names = {name for name, _ in model.named_children()}
    unknown = set(parts) - names
    if unknown or not parts:
        raise ValueError(f"--layers {layers!r}: choose all or parts of {sorted(names)}")
    learning = []
    for name, child in model.named_children():
        for p in child.parameters():
            p.requires_grad_(name in parts)
            if name in parts:
                learning.append(p)
    return learning


def draw_batch(rng: np.random.Generator, takes: SpeechDataset, n: int, step: int,
               general: SpeechDataset | None = None, n_general: int = 0):
    """`n` takes (and `n_general` replay clips) drawn at random; `step` seeds their augmentation."""
    items = [(int(i), step) for i in rng.integers(len(takes), size=n)]
    batch = [takes[item] for item in items]
    if general is not None and n_general:
        batch += [general[(int(i), step)] for i in rng.integers(len(general), size=n_general)]
    return collate(batch)


@torch.no_grad()
def warp_losses(model: nn.Module, config, takes: list, warps=VTLN_WARPS) -> dict[float, float]:
    """The model's mean CTC loss on the takes (unaugmented) under each frequency warp, on top of
    the warp its features already have."""
    model.eval()
    criterion = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    losses = {}
    for warp in warps:
        clips = SpeechDataset(takes, warped(config, warp).features, None, trim_silence=True)
        batch = collate([clips[(i, 0)] for i in range(len(clips))])
        if not isinstance(batch, Batch):
            raise ValueError("none of the takes could be read")
        losses[warp] = float(compute_loss(model, batch, criterion)[0])
    return losses


def warped(config, warp: float):
    """The model config with its features' speaker warp multiplied by `warp`."""
    speaker_warp = round(config.features.speaker_warp * warp, 4)
    return replace(config, features=replace(config.features, speaker_warp=speaker_warp))


def measure(recognizer: Recognizer, utterances: list) -> tuple[dict, list[str]]:
    """WER/CER of `recognizer` on utterances, and its transcript of each (in order)."""
    rows, counts = score_utterances(recognizer, utterances, SkipReport())
    by_key = {row["key"]: row["hyp"] for row in rows}
    return ({"wer": round(counts.wer, 4), "cer": round(counts.cer, 4), "n": len(rows)},
            [by_key.get(u.path, "") for u in utterances])


# ---------------------------------------------------------------- the loop

def fine_tune(model: nn.Module, config, takes: list, cfg: AdaptConfig, replay: list = (),
              on_step=None) -> tuple[list[float], float]:
    """Fine-tune `model` in place on `takes`; returns the losses and the wall time.
    `on_step(step, max_steps, loss, elapsed_s, budget_s)` is called after every step."""
    augment = replace(cfg.augmentation, enabled=cfg.augment and cfg.augmentation.enabled)
    take_set = SpeechDataset(takes, config.features, augment, seed=cfg.seed, trim_silence=True)
    take_set.cache(CACHE_MB)
    general = (SpeechDataset(list(replay), config.features, augment, seed=cfg.seed + 1, trim_silence=True)
               if replay else None)  # cut to their speech, as the takes and training's clips are
    if general is not None:
        general.cache(CACHE_MB)
    params = learning_parameters(model, cfg.layers)
    anchor = [p.detach().clone() for p in params] if cfg.anchor else None
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)  # decay would pull to 0
    criterion = nn.CTCLoss(blank=BLANK, zero_infinity=True)
    specaugment = SpecAugment(config.specaugment) if cfg.specaugment else None
    amp_dtype = torch.bfloat16 if cpu_has_fast_bf16() else None
    rng = np.random.default_rng(cfg.seed)
    budget_s, losses = cfg.minutes * 60, []
    started = time.perf_counter()
    model.train()
    for step in range(cfg.max_steps):
        elapsed = time.perf_counter() - started
        if elapsed >= budget_s:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, cfg)
        batch = draw_batch(rng, take_set, cfg.batch_size, step, general, cfg.replay_batch)
        if not isinstance(batch, Batch):  # none of the drawn clips could be read
            continue
        loss, _, _ = compute_loss(model, batch, criterion, specaugment, amp_dtype)
        if anchor is not None:
            loss = loss + cfg.anchor * sum(((p - a) ** 2).sum() for p, a in zip(params, anchor))
        if not torch.isfinite(loss):
            continue
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        optimizer.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, cfg.max_steps, losses[-1], time.perf_counter() - started, budget_s)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(True)
    return losses, time.perf_counter() - started


@torch.no_grad()
def keep_share(model: nn.Module, start: dict, keep: float) -> None:
    """Move the fine-tuned weights back towards `start` so that `keep` of the change stays
    (weight-space ensembling, WiSE-FT: 1 keeps the fine-tuned model, 0 the starting one)."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            tensor.copy_(start[name] + keep * (tensor - start[name]))


def adapt(model_dir, utterances: list[Utterance], out, cfg: AdaptConfig | None = None,
          replay: list[Utterance] = (), on_step=None) -> AdaptResult:
    """Adapt the model in `model_dir` to the speaker of `utterances`; write the result to `out`."""
    cfg = cfg or AdaptConfig()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    base = resolve_model_dir(model_dir)
    check_replaceable(Path(out))  # before minutes of fine-tuning, not after
    learn, held = split_held_out(list(utterances), cfg.held_out, cfg.seed)
    if not learn:
        raise ValueError("no clips to learn from")
    model, config = load_model(base)
    before, before_text = measure(Recognizer(model, config, base), held) if held else (None, [])
    if cfg.vtln:
        by_warp = warp_losses(model, config, learn)
        config = warped(config, min(by_warp, key=by_warp.get))
    start = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    losses, seconds = fine_tune(model, config, learn, cfg, replay, on_step)
    keep_share(model, start, cfg.keep)
    result = AdaptResult(Path(out), len(learn), sum(u.duration for u in learn), len(losses), seconds,
                         losses, speaker_warp=config.features.speaker_warp)
    write_adapted(base, model, config, result, cfg, len(replay))
    if held:
        result.before = before
        result.after, after_text = measure(Recognizer(model, config, Path(out)), held)
        result.held_out = [{"ref": u.text, "before": b, "after": a}
                           for u, b, a in zip(held, before_text, after_text)]
    write_card(base, result)
    return result


def write_adapted(base: Path, model: nn.Module, config, result: AdaptResult, cfg: AdaptConfig,
                  replay_clips: int) -> None:
    """The adapted model directory: weights and config (with an "adapted" record), and the base's
    LM and decoding settings, its token prior included (the base's, from the base's domain;
    `python -m srcore.lm tune --prior-from` re-estimates it) (write_card adds the card)."""
    meta = read_config(base)
    adapted = {"from": manifest_label(base), "clips": result.clips,
               "audio_s": round(result.audio_s, 1), "steps": result.steps,
               "seconds": round(result.seconds, 1), "replay_clips": replay_clips,
               "config": asdict(cfg), "earlier": meta.get("adapted")}
    extra = {k: v for k, v in meta.items() if k not in ("srcore_version", "model", "alphabet")}
    write_model_dir(result.model_dir, model, config, {**extra, "adapted": adapted},
                    companions=[base / LM_DIR, base / DECODING_FILE])


def write_card(base: Path, result: AdaptResult) -> None:
    lines = [f"# {result.model_dir.name}", "",
             f"`{manifest_label(base)}` adapted to one speaker with `python -m srcore.adapt`: "
             f"{result.steps} steps in {result.seconds:.0f} s on {result.clips} clips "
             f"({result.audio_s / 60:.1f} min of audio), vocal tract warp {result.speaker_warp:g} "
             f"(features.speaker_warp in config.json; 1 is none).", ""]
    if result.before and result.after:
        lines += ["| held-out clips of the speaker | clips | WER | CER |", "|---|---|---|---|",
                  f"| before | {result.before['n']} | {100 * result.before['wer']:.1f} % | "
                  f"{100 * result.before['cer']:.1f} % |",
                  f"| after | {result.after['n']} | {100 * result.after['wer']:.1f} % | "
                  f"{100 * result.after['cer']:.1f} % |", ""]
    lines += ["The base model's own card describes its training data and limits; this model knows "
              "the speaker's voice better and other voices no better.", ""]
    (result.model_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")


# ---------------------------------------------------------------- command line

def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m srcore.adapt", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="checkpoints/default", help="model directory to adapt")
    parser.add_argument("--manifest", required=True, help="the speaker's clips (JSON lines)")
    parser.add_argument("--out", required=True, help="model directory to write")
    parser.add_argument("--config", help="JSON file of AdaptConfig fields (flags override it)")
    add_config_arguments(parser, AdaptConfig)
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    try:
        cfg = config_from_args(AdaptConfig, args, args.config)
        if Path(args.out).resolve() == resolve_model_dir(args.model).resolve():
            raise ValueError(f"--out {args.out} is the model being adapted; write the adapted "
                             "model to another folder")
        report = SkipReport()
        utterances = read_manifest(args.manifest, report=report)
        if not utterances:
            raise ValueError(f"{args.manifest}: no usable clips ({report.summary()})")
        replay = read_manifest(cfg.replay, report=SkipReport()) if cfg.replay else []

        def show(step, steps, loss, elapsed, budget):
            if step % 10 == 0 or step == steps:
                print(f"step {step}/{steps} loss {loss:.3f} ({elapsed:.0f}/{budget:.0f} s)",
                      file=sys.stderr, flush=True)

        result = adapt(args.model, utterances, args.out, cfg, replay, show)
    except (FileNotFoundError, ValueError, CheckpointWriteError) as exc:
        sys.exit(f"error: {exc}")
    print(json.dumps({**result.summary(), "skipped": report.total}, indent=2))


if __name__ == "__main__":
    main()
