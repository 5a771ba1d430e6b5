"""Measure speaker adaptation: adapt on N clips of one speaker, score the rest of that speaker and
other speakers before and after (forgetting).

    python bench/adapt_speaker.py --model checkpoints/default \\
        --speaker ../shared/data/dev-real/cathy/all.jsonl --adapt-clips 20 \\
        --others ../shared/data/dev-real/commands/all.jsonl ../shared/data/dev-real/harvard/all.jsonl \\
        --out /tmp/adapt-bench [--variant "name:--flag value ..."] [--threads 2]

Every variant adapts the same N clips (drawn by --seed) with `python -m srcore.adapt` plus its own
flags; each row of the table is one model, scored with its own default decoding. Measuring only:
the adapted models are thrown away, never shipped.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from srcore.evaluate import evaluate  # noqa: E402
from srcore.transcribe import Recognizer  # noqa: E402


def split(manifest: Path, n: int, seed: int, out: Path) -> tuple[Path, Path]:
    """Rows of `manifest` as two manifests (keys made absolute): n to adapt on, the rest to score."""
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    for row in rows:
        row["key"] = str((manifest.parent / row["key"]).resolve())
    order = np.random.default_rng(seed).permutation(len(rows))
    out.mkdir(parents=True, exist_ok=True)
    learn, rest = out / "adapt.jsonl", out / "held-out.jsonl"
    learn.write_text("".join(json.dumps(rows[i]) + "\n" for i in sorted(order[:n])))
    rest.write_text("".join(json.dumps(rows[i]) + "\n" for i in sorted(order[n:])))
    return learn, rest


def score(model: Path, manifests: dict) -> dict:
    recognizer = Recognizer.load(model)
    return {name: evaluate(recognizer, path).summary() for name, path in manifests.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=ROOT / "checkpoints" / "default")
    parser.add_argument("--speaker", type=Path, required=True)
    parser.add_argument("--adapt-clips", type=int, default=20)
    parser.add_argument("--others", type=Path, nargs="*", default=[])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", default=[],
                        help="NAME:FLAGS, srcore.adapt flags (e.g. \"anchor:--anchor 0.01\"); repeatable")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    learn, rest = split(args.speaker, args.adapt_clips, args.seed, args.out)
    sets = {"speaker held out": rest, **{p.parent.name: p for p in args.others}}
    results = {"before": score(args.model, sets)}
    print(f"before: {json.dumps(results['before'])}", file=sys.stderr, flush=True)
    timings = {}
    for variant in args.variant or ["default:"]:
        name, _, flags = variant.partition(":")
        target = args.out / name
        command = [sys.executable, "-m", "srcore.adapt", "--model", str(args.model), "--manifest", str(learn),
                   "--out", str(target), "--threads", str(args.threads), *flags.split()]
        started = time.perf_counter()
        subprocess.run(command, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        timings[name] = time.perf_counter() - started
        results[name] = score(target, sets)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr, flush=True)
    names = list(sets)
    print("| model | adapt wall s | " + " | ".join(f"{n} WER / CER" for n in names) + " |")
    print("|---|---|" + "---|" * len(names))
    for model, scores in results.items():
        cells = [f"{100 * scores[n]['wer']:.1f} / {100 * scores[n]['cer']:.1f}" for n in names]
        print(f"| {model} | {timings.get(model, 0):.0f} | " + " | ".join(cells) + " |")
    (args.out / "results.json").write_text(json.dumps({"results": results, "timings": timings}, indent=2))


if __name__ == "__main__":
    main()
