"""Validation WER of the `seed` and `default` models after the same training wall time.

    .venv/bin/python bench/seed_vs_default.py [--data ../shared/data/fsdd] [--minutes 2]

Trains each model with `python -m srcore.train --max-minutes M` on FSDD spoken digits with speaker
theo held out (an unseen voice), one after the other on this machine, with srcore.train's defaults
otherwise (batch 32, AdamW 1e-3, waveform augmentation and each model's SpecAugment). Precision: each
model trains the faster way on this CPU. With AMX/AVX512-BF16, `seed` uses --cpu-amp (bfloat16: its
oneDNN LSTM runs about twice as fast); `default` stays float32 (its packed GRU runs PyTorch's own
per-step loop, which bfloat16 does not speed up). --cpu-amp-models changes that. The budget counts
training-loop wall time, data loading included; validation after each epoch and at the end is
outside it. Reported per model: greedy WER
and CER on the held-out speaker at the end of the budget (`wer`) and the best epoch's (`best_wer`),
epochs, steps, audio seconds trained and throughput. The last line is one JSON object.
"""
import argparse
import json
import sys
from pathlib import Path

from _common import DEFAULT_DATA, emit, load, run, workspace

from srcore.run import RunFolder


def train(args, model: str, train_m, valid_m, out_dir: Path, bf16: bool) -> dict:
    before = load()
    _, wall = run([sys.executable, "-m", "srcore.train", "--train", str(train_m), "--valid", str(valid_m),
                   "--model", model, "--epochs", "100000", "--max-minutes", str(args.minutes),
                   "--batch-size", str(args.batch_size), "--workers", str(args.workers),
                   "--device", "cpu", "--seed", str(args.seed), "--cpu-amp" if bf16 else "--no-cpu-amp",
                   "--out", str(out_dir)] + (["--threads", str(args.threads)] if args.threads else []),
                  out_dir.with_suffix(".log"))
    run_folder = RunFolder(out_dir)
    epochs = run_folder.read_metrics("epoch")
    last = epochs[-1]
    status = run_folder.read_status()
    return {"bf16": bf16, "wer": last["wer"], "cer": last["cer"],
            "best_wer": round(min(r["wer"] for r in epochs), 4),
            "valid_loss": last["valid_loss"], "epochs_completed": sum(not r["partial"] for r in epochs),
            "steps": last["step"], "train_wall_s": last["elapsed_s"], "process_wall_s": round(wall, 1),
            "audio_s_per_s": status.get("audio_s_per_s"), "load_before": before, "load_after": load()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder with all.jsonl (FSDD)")
    p.add_argument("--valid-speakers", nargs="+", default=["theo"])
    p.add_argument("--minutes", type=float, default=2.0, help="training wall time per model")
    p.add_argument("--models", default="seed,default")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--workers", type=int, default=0, help="srcore.train --workers")
    p.add_argument("--threads", type=int, default=0, help="srcore.train --threads (0: torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cpu-amp-models", default="seed",
                   help="models trained with --cpu-amp where the CPU has fast bfloat16 ('' for none)")
    p.add_argument("--out", type=Path, default=None, help="keep runs here (default: a temp folder)")
    args = p.parse_args()
    from srcore.train import cpu_has_fast_bf16
    bf16_models = {m for m in args.cpu_amp_models.split(",") if m} if cpu_has_fast_bf16() else set()
    with workspace(args) as (out, train_m, valid_m, info):
        results = {}
        for model in [m for m in args.models.split(",") if m]:
            results[model] = train(args, model, train_m, valid_m, out / model, model in bf16_models)
            if args.out:
                results[model]["model_dir"] = str(out / model / "checkpoints" / "last")
            print(f"{model}: {json.dumps(results[model])}", flush=True)
    emit({"benchmark": "seed_vs_default", "minutes": args.minutes, "valid_speakers": args.valid_speakers,
          "batch_size": args.batch_size, "cpus": info["cpus"], "results": results})


if __name__ == "__main__":
    main()
