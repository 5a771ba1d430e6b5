"""Training throughput of the notebook's `seed` model: srcore.train against seed_baseline.py.

    .venv/bin/python bench/train_throughput.py [--data ../shared/data/fsdd] [--epochs 2] [--repeats 2]

Both train the same model on the same split (FSDD, speaker theo held out) at the same batch size, on
this machine, in alternating order (baseline first in even repeats, srcore first in odd ones) so
that a load change on a shared machine hits both. Throughput is audio seconds trained per second of
training-loop wall time (data loading included, validation excluded), as each script reports it:
seed_baseline.py's `audio_seconds_per_second`, srcore.train's `audio_s_per_s` in status.json.

Variants: `baseline` (the notebook loop), `srcore` (srcore.train as configured here: bfloat16
autocast with --cpu-amp where the CPU has AMX/AVX512-BF16, else float32) and `srcore-fp32`
(srcore.train in float32, to show what the precision contributes). The last line is one JSON object.
"""
import argparse
import json
import statistics
import sys
from pathlib import Path

from _common import DEFAULT_BASELINE, DEFAULT_DATA, emit, last_json, load, run, workspace


def baseline_run(args, train, valid, log_path) -> float:
    out, _ = run([sys.executable, str(args.baseline), "--train", str(train), "--valid", str(valid),
                  "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                  "--workers", str(args.baseline_workers), "--device", "cpu", "--seed", "0"], log_path)
    return float(last_json(out)["audio_seconds_per_second"])


def srcore_run(args, train, valid, out_dir: Path, log_path, bf16: bool) -> float:
    run([sys.executable, "-m", "srcore.train", "--train", str(train), "--valid", str(valid),
         "--model", "seed", "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
         "--workers", str(args.workers), "--device", "cpu", "--seed", "0", "--log-every", "0",
         "--cpu-amp" if bf16 else "--no-cpu-amp", "--out", str(out_dir)], log_path)
    return float(json.loads((out_dir / "status.json").read_text())["audio_s_per_s"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with all.jsonl (FSDD)")
    p.add_argument("--valid-speakers", nargs="+", default=["theo"])
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="seed_baseline.py")
    p.add_argument("--epochs", type=int, default=2, help="epochs per training run")
    p.add_argument("--repeats", type=int, default=2, help="runs of each variant (alternating order)")
    p.add_argument("--batch-size", type=int, default=64, help="both sides (the notebook's is 64)")
    p.add_argument("--baseline-workers", type=int, default=1,
                   help="seed_baseline.py --workers (1 is its fastest on 2 cores; it defaults to 8)")
    p.add_argument("--workers", type=int, default=0, help="srcore.train --workers")
    p.add_argument("--variants", default="baseline,srcore,srcore-fp32")
    p.add_argument("--out", type=Path, default=None, help="keep logs and runs here (default: temp)")
    args = p.parse_args()
    if not args.baseline.is_file():
        sys.exit(f"{args.baseline}: not found (pass --baseline PATH to seed_baseline.py)")
    from srcore.train import cpu_has_fast_bf16
    bf16 = cpu_has_fast_bf16()
    variants = [v for v in args.variants.split(",") if v]
    if not bf16 and "srcore" in variants and "srcore-fp32" in variants:
        variants.remove("srcore-fp32")  # the same thing on this CPU

    with workspace(args) as (out, train, valid, info):
        figures = {v: [] for v in variants}
        for r in range(args.repeats):
            order = variants if r % 2 == 0 else variants[::-1]
            for v in order:
                log_path = out / f"{v}-{r}.log"
                if v == "baseline":
                    value = baseline_run(args, train, valid, log_path)
                else:
                    value = srcore_run(args, train, valid, out / f"{v}-{r}", log_path,
                                       bf16=bf16 and v == "srcore")
                figures[v].append(value)
                print(f"repeat {r + 1} {v}: {value:.1f} audio-s/s (load {load()})", flush=True)

    result = {"benchmark": "train_throughput", "model": "seed", "epochs": args.epochs,
              "batch_size": args.batch_size, "baseline_workers": args.baseline_workers,
              "srcore_workers": args.workers, "srcore_bf16": bf16 and "srcore" in variants,
              "audio_s_per_s": {v: [round(x, 1) for x in xs] for v, xs in figures.items()},
              "median_audio_s_per_s": {v: round(statistics.median(xs), 1) for v, xs in figures.items()}}
    if "baseline" in figures:
        base = statistics.median(figures["baseline"])
        result["speedup_vs_baseline"] = {v: round(statistics.median(xs) / base, 2) for v, xs in figures.items()
                                         if v != "baseline"}
    result["cpus"], result["load_before"], result["load_after"] = info["cpus"], info["load"], load()
    for v, ratio in result.get("speedup_vs_baseline", {}).items():
        print(f"{v}: {ratio:.2f}x the baseline", flush=True)
    emit(result)


if __name__ == "__main__":
    main()
