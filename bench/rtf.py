"""Inference real-time factor of each model on ONE CPU thread, through srcore.transcribe.Recognizer.

    .venv/bin/python bench/rtf.py [--data ../shared/data/fsdd] [--models seed,default]
                                  [--model-dir seed=RUN/checkpoints/best ...]

RTF = compute seconds / audio seconds of Recognizer.transcribe_wave (log-mel, model, greedy
decoding, or with --lm each model directory's own decoding; the file read is outside it), with
torch.set_num_threads(1). Weights are random (seeded) unless --model-dir names a trained model
directory for that model: the compute is the same either way. Two workloads: the FSDD clips of the
held-out speaker one by one (short clips, about 0.4 s, where per-call overhead shows), and one long
recording made by joining those clips (--long-s seconds; the Recognizer cuts it into chunks of at
most 20 s). The last line is one JSON object.
"""
import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import DEFAULT_DATA, emit, load, machine


def recognizer_for(name: str, model_dir: str | None, lm: bool):
    from srcore.model import build_model, preset
    from srcore.transcribe import Recognizer
    if model_dir:
        return Recognizer.load(model_dir, greedy=not lm), f"trained ({model_dir})"
    torch.manual_seed(0)
    config = preset(name)
    return Recognizer(build_model(config), config, Path(f"random-init:{name}")), "random init (seed 0)"


def timed(recognizer, waves) -> tuple[float, float]:
    compute = audio = 0.0
    for wave in waves:
        started = time.perf_counter()
        recognizer.transcribe_wave(wave)
        compute += time.perf_counter() - started
        audio += wave.numel() / recognizer.sample_rate
    return compute, audio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with all.jsonl (FSDD)")
    p.add_argument("--speaker", default="theo", help="whose clips to transcribe")
    p.add_argument("--models", default="seed,default")
    p.add_argument("--model-dir", action="append", default=[], metavar="NAME=DIR",
                   help="trained weights for a model (default: random init)")
    p.add_argument("--clips", type=int, default=200, help="short clips to transcribe")
    p.add_argument("--long-s", type=float, default=60.0, help="length of the joined recording")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--lm", action="store_true",
                   help="decode as the model directory says (its word LM) rather than greedy")
    args = p.parse_args()
    torch.set_num_threads(1)
    from srcore.audio import read_audio
    from srcore.manifest import read_manifest
    manifest = args.data / "all.jsonl"
    if not manifest.is_file():
        sys.exit(f"{manifest}: not found (pass --data DIR holding all.jsonl)")
    clips = [u for u in read_manifest(manifest) if not args.speaker or u.speaker == args.speaker]
    clips = clips[:: max(1, len(clips) // args.clips)][: args.clips]
    dirs = dict(item.split("=", 1) for item in args.model_dir)
    info = machine()
    print(f"machine: {info}", flush=True)
    results = {}
    for name in [m for m in args.models.split(",") if m]:
        recognizer, weights = recognizer_for(name, dirs.get(name), args.lm)
        rate = recognizer.sample_rate
        short = [read_audio(u.path, rate) for u in clips]
        joined = torch.cat(short)
        reps = int(args.long_s * rate / joined.numel()) + 1
        long = [torch.cat([joined] * reps)[: int(args.long_s * rate)]]
        timed(recognizer, short[:5] + [long[0][: 10 * rate]])  # warm-up
        figures = {"short": [], "long": []}
        for _ in range(args.repeats):
            for key, waves in (("short", short), ("long", long)):
                compute, audio = timed(recognizer, waves)
                figures[key].append(compute / audio)
        results[name] = {"weights": weights, "sample_rate": rate,
                         "rtf_short_clips": round(statistics.median(figures["short"]), 4),
                         "rtf_long": round(statistics.median(figures["long"]), 4),
                         "short_clips": len(short),
                         "short_audio_s": round(sum(w.numel() for w in short) / rate, 1),
                         "long_audio_s": round(long[0].numel() / rate, 1)}
        print(f"{name}: {results[name]}", flush=True)
    decoder = "each model directory's" if args.lm else "greedy"
    emit({"benchmark": "rtf", "threads": torch.get_num_threads(), "decoder": decoder,
          "cpus": info["cpus"], "load_before": info["load"], "load_after": load(), "results": results})


if __name__ == "__main__":
    main()
