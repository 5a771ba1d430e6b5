"""Score a model on a manifest.

    python -m srcore.evaluate [--model DIR] --manifest M.jsonl [--out report.jsonl] [--beam N]

Writes one JSON line per utterance (key, speaker, ref, hyp, wer, cer, diff as `(REF->HYP)`) to --out
and prints, as its last line, the totals: {"wer", "cer", "n", "audio_s", "rtf", "skipped", ...,
"speakers"}: per speaker {"n", "wer", "cer"} when the manifest names two or more. Before it, on
stderr: the worst utterances and the most frequent word errors.
"""
import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass

from .atomic import output_file, write_text_atomic
from .audio import AudioError
from .manifest import MAX_DURATION_S, SkipReport, read_manifest
from .metrics import ErrorCounts, error_counts, format_diff, word_diff
from .text import normalize_text
from .transcribe import Recognizer, add_recognizer_arguments, recognizer_from_args


@dataclass
class Evaluation:
    rows: list  # per-utterance dicts
    counts: ErrorCounts
    audio_s: float
    compute_s: float
    skipped: int

    def summary(self) -> dict:
        summary = {"wer": round(self.counts.wer, 4), "cer": round(self.counts.cer, 4),
                   **{kind: round(rate, 4) for kind, rate in self.counts.kinds().items()},
                   "n": len(self.rows), "words": self.counts.words, "audio_s": round(self.audio_s, 2),
                   "rtf": round(self.compute_s / max(self.audio_s, 1e-9), 5), "skipped": self.skipped}
        speakers = by_speaker(self.rows)
        if len(speakers) > 1:
            summary["speakers"] = speakers
        return summary


def by_speaker(rows) -> dict:
    """{speaker: {"n", "wer", "cer"}} over the rows that name one, worst WER first."""
    counts, clips = defaultdict(ErrorCounts), Counter()
    for row in rows:
        if row.get("speaker"):
            counts[row["speaker"]] += error_counts(row["ref"], row["hyp"])
            clips[row["speaker"]] += 1
    table = {name: {"n": clips[name], "wer": round(c.wer, 4), "cer": round(c.cer, 4)}
             for name, c in counts.items()}
    return dict(sorted(table.items(), key=lambda item: (-item[1]["wer"], item[0])))


def frequent_errors(rows, top: int = 10) -> list[tuple[str, int]]:
    """The most frequent word errors over the rows, `(REF->HYP)` with their counts."""
    errors = Counter(text for row in rows for text, tag in word_diff(row["ref"], row["hyp"]) if tag)
    return errors.most_common(top)


def score_utterance(recognizer: Recognizer, path: str, reference: str, speaker: str = "") -> dict:
    """Transcribe one clip and compare it with its (normalised) reference; a clip longer than a
    manifest's MAX_DURATION_S is refused from its header, whatever duration its row stores."""
    result = recognizer.transcribe_file(path, MAX_DURATION_S)
    ref = normalize_text(reference)
    counts = error_counts(ref, result.text)
    return {"key": path, "speaker": speaker, "ref": ref, "hyp": result.text, "wer": round(counts.wer, 4),
            "cer": round(counts.cer, 4), "diff": format_diff(ref, result.text),
            "audio_s": round(result.audio_s, 3), "elapsed_s": round(result.elapsed_s, 4),
            "_counts": counts}


def score_utterances(recognizer: Recognizer, utterances, report: SkipReport,
                     progress=iter) -> tuple[list, ErrorCounts]:
    """Per-utterance rows and the summed error counts; unreadable clips go to `report`.
    `progress` wraps the utterance iterable (a tqdm or a UI progress bar)."""
    rows, counts = [], ErrorCounts()
    for utt in progress(utterances):
        try:
            row = score_utterance(recognizer, utt.path, utt.text, utt.speaker)
        except AudioError as exc:
            report.add(utt.path, str(exc))
            continue
        counts = counts + row.pop("_counts")
        rows.append(row)
    return rows, counts


def evaluate(recognizer: Recognizer, manifest, limit: int = 0) -> Evaluation:
    """Transcribe every usable clip of `manifest` (the first `limit` when > 0)."""
    report = SkipReport()
    utterances = read_manifest(manifest, report=report)
    if limit:
        utterances = utterances[:limit]
    rows, counts = score_utterances(recognizer, utterances, report)
    return Evaluation(rows, counts, sum(r["audio_s"] for r in rows),
                      sum(r["elapsed_s"] for r in rows), report.total)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.evaluate", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", required=True, help="JSON-lines manifest to score")
    parser.add_argument("--out", help="per-utterance report (JSON lines)")
    parser.add_argument("--limit", type=int, default=0, help="score only the first N clips")
    parser.add_argument("--summary", help="also write the final JSON summary to this file")
    parser.add_argument("--show", type=int, default=5, help="print the N worst utterances")
    add_recognizer_arguments(parser)
    args = parser.parse_args(argv)
    try:  # before any clip is scored
        for path in (args.out, args.summary):
            if path:
                output_file(path)
    except ValueError as exc:
        parser.error(str(exc))
    recognizer = recognizer_from_args(args)
    try:
        started = time.perf_counter()
        result = evaluate(recognizer, args.manifest, args.limit)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"error: {exc}")
    if not result.rows:  # a score over nothing is no score
        sys.exit(f"error: {args.manifest}: no clip could be scored "
                 + (f"({result.skipped} skipped; see the warnings above)" if result.skipped else "(it lists none)"))
    if args.out:
        write_text_atomic(args.out, "".join(json.dumps(row) + "\n" for row in result.rows))
    for row in sorted(result.rows, key=lambda r: -r["wer"])[: args.show]:
        print(f"{row['wer']:.2f}  {row['diff']}", file=sys.stderr)
    if errors := frequent_errors(result.rows):
        print("most frequent errors: " + ", ".join(f"{n}x {e}" for e, n in errors), file=sys.stderr)
    summary = {**result.summary(), "model": str(recognizer.model_dir), "manifest": args.manifest,
               "decoding": recognizer.decoding,
               "reads": "the whole input" if recognizer.keep_silence else "speech regions",
               "wall_s": round(time.perf_counter() - started, 1)}
    if args.summary:
        write_text_atomic(args.summary, json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
