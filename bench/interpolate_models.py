"""A model directory between two models in weight space (WiSE-FT): BASE + KEEP * (TUNED - BASE).

    .venv/bin/python bench/interpolate_models.py --base checkpoints/default --tuned runs/r9/model \
        --keep 0.5 --out runs/soup

TUNED must descend from BASE (trained on from it, with --init-from). When TUNED is wider (BASE was
widened, `srcore.model.widen_recurrent`), BASE is widened the same way first; the units that the
widening added take TUNED's incoming weights (BASE's are arbitrary: those units reach nothing), and
their outgoing weights go from BASE's zeros towards TUNED's, so KEEP 0 computes what BASE computes.
The directory gets TUNED's LM and decoding.json; its token prior is TUNED's, so re-tune it:

    .venv/bin/python -m srcore.lm tune --model runs/soup --lm runs/soup/lm --manifest DEV \
        --prior-from SYNTHETIC_VALID --write runs/soup/decoding.json
"""
import argparse
from pathlib import Path

import torch
from _common import REPO  # noqa: F401 (puts the repository on sys.path)

from srcore.adapt import keep_share
from srcore.checkpoint import load_model, write_model_dir
from srcore.decoding import DECODING_FILE, LM_DIR
from srcore.model import widen_recurrent


def widened_start(base: torch.nn.Module, base_config, tuned: torch.nn.Module, tuned_config) -> dict:
    """BASE's weights at TUNED's width, the added units' incoming weights taken from TUNED."""
    old, new = base_config.hidden_size, tuned_config.hidden_size
    if old == new:
        return base.state_dict()
    base, _ = widen_recurrent(base, base_config, new)
    added_rows = torch.cat([torch.arange(old, new) + gate * new for gate in range(3)])
    start, tuned_state = base.state_dict(), tuned.state_dict()
    for name, tensor in start.items():
        if name.startswith("rnn."):  # every GRU tensor has its units' gates along its rows
            tensor[added_rows] = tuned_state[name][added_rows]
    return start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the model TUNED was trained on from")
    parser.add_argument("--tuned", required=True)
    parser.add_argument("--keep", type=float, default=0.5, help="share of the change kept (0-1)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    base, base_config = load_model(args.base)
    tuned, tuned_config = load_model(args.tuned)
    keep_share(tuned, widened_start(base, base_config, tuned, tuned_config), args.keep)
    out = write_model_dir(args.out, tuned, tuned_config,
                          {"interpolated": {"base": args.base, "tuned": args.tuned, "keep": args.keep}},
                          companions=[Path(args.tuned) / LM_DIR, Path(args.tuned) / DECODING_FILE])
    print(f"wrote {out} (keep {args.keep} of {args.base} -> {args.tuned}); re-tune its decoding")


if __name__ == "__main__":
    main()
