"""Memory of beam search without a word LM (CTC prefix beam search, `--beam N`) on long input:
searched whole against a window at a time (what srcore.decoding does), each in a fresh process.

    .venv/bin/python bench/prefix_beam_memory.py [--minutes 5] [--beam 64]

The input is made-up log-probabilities of that many minutes of frames (blank-heavy, as a CTC
model's are), so the figure is the decoder's alone. Reported per mode: the peak resident memory
the decode added (MB, ru_maxrss) and its seconds. Prints one JSON object.
"""
import argparse
import json
import subprocess
import sys

from _common import REPO, emit, machine

DECODE = """
import json, resource, sys, time, torch
from srcore import decoding
minutes, beam, whole = float(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "whole"
if whole:
    decoding.PREFIX_WINDOW_FRAMES = 10 ** 9
torch.manual_seed(0)
frames = int(minutes * 60 / 0.03)  # the default model's 30 ms frames
logits = torch.randn(frames, 29) * 3
logits[:, 28] += 4
log_probs = logits.log_softmax(-1)
decoder = decoding.BeamDecoder(beam_size=beam)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
decoder.decode_path(log_probs, frames)
seconds = time.perf_counter() - started
added = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"added_mb": round(added), "seconds": round(seconds, 1)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--beam", type=int, default=64)
    args = parser.parse_args()
    result = {"minutes": args.minutes, "beam": args.beam, **machine()}
    for mode in ("whole", "windows"):
        done = subprocess.run([sys.executable, "-c", DECODE, str(args.minutes), str(args.beam), mode],
                              cwd=REPO, capture_output=True, text=True, check=True)
        result[mode] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{mode:8s} +{result[mode]['added_mb']} MB, {result[mode]['seconds']} s", flush=True)
    emit(result)


if __name__ == "__main__":
    main()
