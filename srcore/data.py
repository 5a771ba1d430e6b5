"""Corpus commands: `python -m srcore.data {synth,import,split,combine} ...`."""
import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from .manifest import SkipReport, read_manifest, split_rows, write_manifest


def split_manifest(manifest, out_dir, valid_speakers=(), valid_fraction=0.1, seed=0) -> dict:
    """Split a manifest into train/valid: by the named speakers, else by manifest.split_rows
    (whole speakers when they are known, utterances at random otherwise). Keys of clips under
    out_dir become relative to it, others absolute."""
    if not 0 < valid_fraction < 1:
        raise ValueError(f"--valid-fraction {valid_fraction}: the share held out is between 0 and 1")
    report = SkipReport()
    rows = [asdict(u) for u in read_manifest(manifest, report=report)]
    if not rows:
        raise ValueError(f"{manifest}: no usable rows to split ({report.summary()})")
    if valid_speakers:
        missing = set(valid_speakers) - {row["speaker"] for row in rows}
        if missing:
            raise ValueError(f"{manifest}: no speakers named {sorted(missing)}")
        train = [row for row in rows if row["speaker"] not in valid_speakers]
        valid = [row for row in rows if row["speaker"] in valid_speakers]
    else:
        train, valid = split_rows(rows, valid_fraction, seed)
    out_dir = Path(out_dir)
    write_manifest(train, out_dir / "train.jsonl")
    write_manifest(valid, out_dir / "valid.jsonl")
    return {"train": len(train), "valid": len(valid), "skipped": report.total, "out": str(out_dir)}


def _split_command(args) -> None:
    try:
        print(split_manifest(args.manifest, args.out, args.valid_speakers, args.valid_fraction, args.seed))
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")


def add_split_cli(subparsers) -> None:
    p = subparsers.add_parser("split", help="split a manifest into train.jsonl and valid.jsonl")
    p.add_argument("manifest")
    p.add_argument("--out", required=True)
    p.add_argument("--valid-speakers", nargs="*", default=(), help="speakers held out for validation")
    p.add_argument("--valid-fraction", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_split_command)


def combine_manifests(sources, out) -> dict:
    """Concatenate manifests into one; `FILE@N` repeats FILE's rows N times (to up-weight a small
    real corpus against a large synthetic one). Bad rows are skipped and counted."""
    report, rows = SkipReport(), []
    for source in sources:
        path, at, times = str(source).rpartition("@")
        if not (at and times.isdigit()):  # no repeat count: '@' may be part of the path
            path, times = str(source), "1"
        rows.extend(read_manifest(path, report=report) * int(times))
    write_manifest(rows, out)
    return {"rows": len(rows), "hours": round(sum(u.duration for u in rows) / 3600, 3),
            "skipped": report.total, "out": str(out)}


def _combine_command(args) -> None:
    try:
        print(combine_manifests(args.manifests, args.out))
    except (ValueError, FileNotFoundError) as exc:
        sys.exit(f"error: {exc}")


def add_combine_cli(subparsers) -> None:
    p = subparsers.add_parser("combine", help="concatenate manifests (FILE@N repeats FILE N times)")
    p.add_argument("manifests", nargs="+")
    p.add_argument("--out", required=True)
    p.set_defaults(func=_combine_command)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m srcore.data", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_split_cli(subparsers)
    add_combine_cli(subparsers)
    for module in ("synth", "importers"):
        try:
            __import__(f"srcore.{module}", fromlist=["add_cli"]).add_cli(subparsers)
        except ImportError as exc:  # an optional extra that is not installed
            subparsers.add_parser(module, help=f"unavailable: {exc}")
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
