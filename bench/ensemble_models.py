"""Several models as one at inference: their per-frame posteriors averaged, decoded with the first
model's decoding (its LM, weights and token prior), scored on held-out sets by speech regions.

    .venv/bin/python bench/ensemble_models.py --model checkpoints/default --model runs/r9/model \
        --manifest cathy=../shared/data/dev-real/cathy/all.jsonl --manifest ...

`--average geometric` (the default) averages log-probabilities and renormalises; `arithmetic`
averages probabilities. Every model must read the same features at the same frame rate. One
thread; prints a Markdown table, then one JSON object (the last line).
"""
import argparse
from dataclasses import asdict

import torch
from _common import emit, machine, named
from robustness import CONDITIONS, inputs

from srcore.manifest import read_manifest
from srcore.metrics import ErrorCounts, corpus_counts
from srcore.transcribe import Recognizer


def averaged(readers: list, how: str):
    """A function wave -> the readers' per-frame log-probabilities, averaged `how`."""
    def log_probs(wave: torch.Tensor) -> torch.Tensor:
        outs = [read(wave) for read in readers]
        frames = min(out.shape[0] for out in outs)
        stack = torch.stack([out[:frames] for out in outs])
        if how == "geometric":
            return stack.mean(0).log_softmax(-1)
        return torch.logsumexp(stack, 0) - torch.log(torch.tensor(float(len(outs))))
    return log_probs


def ensemble(model_dirs: list[str], how: str) -> Recognizer:
    """The first model's recognizer (speech regions, decoding) reading with all the models."""
    recognizers = [Recognizer.load(model_dir) for model_dir in model_dirs]
    if len({r.frame_s for r in recognizers}) > 1 or len({r.sample_rate for r in recognizers}) > 1:
        raise SystemExit("the models read different frame or sample rates: they cannot be averaged")
    first = recognizers[0]
    first._model_log_probs = averaged([r._model_log_probs for r in recognizers], how)
    return first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True,
                        help="model directory (repeatable; the first one's decoding is used)")
    parser.add_argument("--average", choices=("geometric", "arithmetic"), default="geometric")
    parser.add_argument("--manifest", type=named, action="append", required=True, help="NAME=MANIFEST")
    parser.add_argument("--conditions", default="as-recorded",
                        help=f"comma-separated, of: {', '.join(CONDITIONS)}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    recognizer = ensemble(args.model, args.average)
    sets = {name: list(read_manifest(path)) for name, path in args.manifest}
    results = []
    for condition in args.conditions.split(","):
        for name, utterances in sets.items():
            clips = inputs(utterances, recognizer.sample_rate, condition)
            counts = corpus_counts([ref for ref, _ in clips],
                                   [recognizer.transcribe_wave(wave).text for _, wave in clips])
            results.append({"condition": condition, "set": name, "clips": len(clips),
                            "wer": counts.wer, "cer": counts.cer, "counts": asdict(counts)})
    print("| condition | " + " | ".join(sets) + " | all |")
    print("|---|" + "---|" * (len(sets) + 1))
    for condition in args.conditions.split(","):
        rows = [r for r in results if r["condition"] == condition]
        total = sum((ErrorCounts(**r["counts"]) for r in rows), ErrorCounts())
        cells = [f"{100 * r['wer']:.1f} ({100 * r['cer']:.1f})" for r in rows]
        cells.append(f"{100 * total.wer:.1f} ({100 * total.cer:.1f})")
        print(f"| {CONDITIONS[condition][0]} | " + " | ".join(cells) + " |")
    emit({"machine": machine(), "models": args.model, "average": args.average, "results": results})


if __name__ == "__main__":
    main()
