"""How a model holds up when the words do not fill the recording: WER/CER of held-out clips as
recorded, with seconds of silence or room noise around them, and two clips joined by a pause,
each decoded from the whole input (`--keep-silence`) and from its speech regions (the default,
srcore.vad), in one run.

    .venv/bin/python bench/robustness.py [--model DIR] \
        --manifest cathy=../shared/data/dev-real/cathy/all.jsonl --manifest ...

The room noise is white noise at a fixed level below each clip's own (its RMS): under the speech
too, as a microphone's would be. Prints a Markdown table, then one JSON object (the last line).
"""
import argparse
from dataclasses import asdict

import torch
from _common import emit, machine, named

from srcore.audio import read_audio
from srcore.manifest import read_manifest
from srcore.metrics import ErrorCounts, corpus_counts
from srcore.text import normalize_text
from srcore.transcribe import Recognizer

SEED = 0


def level_db(wave: torch.Tensor) -> float:
    return float(10 * torch.log10(wave.pow(2).mean() + 1e-12))


def noise(samples: int, db: float, generator: torch.Generator) -> torch.Tensor:
    return torch.randn(samples, generator=generator) * 10 ** (db / 20)


def surrounded(wave, rate, seconds: float, below_db: float | None, generator) -> torch.Tensor:
    """`wave` with `seconds` each side of digital silence (below_db None) or of noise `below_db`
    under its level, that noise also added under the speech."""
    side = int(seconds * rate)
    if below_db is None:
        return torch.cat([torch.zeros(side), wave, torch.zeros(side)])
    db = level_db(wave) - below_db
    return torch.cat([noise(side, db, generator), wave + noise(wave.numel(), db, generator),
                      noise(side, db, generator)])


def joined(first, second, rate, pause_s: float, below_db: float, generator) -> torch.Tensor:
    """Two clips with 0.5 s of noise around them and `pause_s` of it between them."""
    db = (level_db(first) + level_db(second)) / 2 - below_db
    edge, pause = int(0.5 * rate), int(pause_s * rate)
    return torch.cat([noise(edge, db, generator), first + noise(first.numel(), db, generator),
                      noise(pause, db, generator), second + noise(second.numel(), db, generator),
                      noise(edge, db, generator)])


CONDITIONS = {  # name -> (what the table says, how a clip is changed: None, (seconds each side,
    #                dB below or None for digital silence) or ("pair", pause s, dB below))
    "as-recorded": ("as recorded", None),
    "silence-2s": ("2 s of digital silence each side", (2.0, None)),
    "noise40-1s": ("1 s of room noise each side, 40 dB below the speech", (1.0, 40.0)),
    "noise25-2s": ("2 s of room noise each side, 25 dB below the speech", (2.0, 25.0)),
    "pause-1.5s": ("two clips, a 1.5 s pause between (noise 40 dB below)", ("pair", 1.5, 40.0)),
}


def inputs(utterances, rate: int, condition: str) -> list[tuple[str, torch.Tensor]]:
    """(reference, waveform) pairs of a set under a condition; the noise is seeded per condition."""
    generator = torch.Generator().manual_seed(SEED)
    change = CONDITIONS[condition][1]
    waves = [(normalize_text(u.text), read_audio(u.path, rate)) for u in utterances]
    if change is None:
        return waves
    if change[0] == "pair":
        return [(f"{a[0]} {b[0]}", joined(a[1], b[1], rate, *change[1:], generator))
                for a, b in zip(waves[0::2], waves[1::2])]
    return [(ref, surrounded(wave, rate, *change, generator)) for ref, wave in waves]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model directory (default: the shipped one)")
    parser.add_argument("--manifest", type=named, action="append", required=True, help="NAME=MANIFEST")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help=f"comma-separated, of: {', '.join(CONDITIONS)}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    readers = {"whole input": Recognizer.load(args.model, keep_silence=True),
               "speech regions": Recognizer.load(args.model)}
    sets = {name: list(read_manifest(path)) for name, path in args.manifest}
    results = []
    for condition in args.conditions.split(","):
        for set_name, utterances in sets.items():
            clips = inputs(utterances, readers["speech regions"].sample_rate, condition)
            for reading, recognizer in readers.items():
                counts = corpus_counts([ref for ref, _ in clips],
                                       [recognizer.transcribe_wave(wave).text for _, wave in clips])
                results.append({"condition": condition, "set": set_name, "reading": reading,
                                "clips": len(clips), "wer": counts.wer, "cer": counts.cer,
                                "counts": asdict(counts)})
    print_table(results, list(sets))
    emit({"machine": machine(), "model": args.model or "checkpoints/default", "results": results})


def print_table(results: list[dict], set_names: list[str]) -> None:
    """One row per condition and reading: WER % (CER %) per set and over all sets' clips."""
    print("| condition | reading | " + " | ".join(set_names) + " | all |")
    print("|---|---|" + "---|" * (len(set_names) + 1))
    for condition in dict.fromkeys(r["condition"] for r in results):
        for reading in ("whole input", "speech regions"):
            rows = [r for r in results if r["condition"] == condition and r["reading"] == reading]
            total = sum((ErrorCounts(**r["counts"]) for r in rows), ErrorCounts())
            cells = [f"{100 * r['wer']:.1f} ({100 * r['cer']:.1f})" for r in rows]
            cells.append(f"{100 * total.wer:.1f} ({100 * total.cer:.1f})")
            print(f"| {CONDITIONS[condition][0]} | {reading} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
