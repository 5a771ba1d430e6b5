"""Models side by side on held-out manifests: WER, CER and one-thread RTF, greedy and with each
model directory's own decoding (its word LM when it has one), in one run.

    .venv/bin/python bench/compare_models.py --model old=DIR --model new=DIR \
        --manifest cathy=../shared/data/dev-real/cathy/all.jsonl --manifest ...

Prints a Markdown table, then one JSON object (the last line) with every figure.
"""
import argparse

import torch
from _common import emit, machine, named

from srcore.evaluate import evaluate
from srcore.transcribe import Recognizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=named, action="append", required=True, help="NAME=MODEL_DIR")
    parser.add_argument("--manifest", type=named, action="append", required=True, help="NAME=MANIFEST")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = []
    for model_name, model_dir in args.model:
        for greedy in (True, False):
            recognizer = Recognizer.load(model_dir, greedy=greedy)
            for set_name, manifest in args.manifest:
                result = evaluate(recognizer, manifest)
                results.append({"model": model_name, "decoding": recognizer.decoding if not greedy else "greedy",
                                "set": set_name, **result.summary()})
    print("| model | decoding | set | clips | WER % | CER % | RTF |\n|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['model']} | {r['decoding']} | {r['set']} | {r['n']} | {100 * r['wer']:.1f} | "
              f"{100 * r['cer']:.1f} | {r['rtf']:.4f} |")
    emit({"machine": machine(), "results": results})


if __name__ == "__main__":
    main()
