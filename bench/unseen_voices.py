"""How models read synthesizers they never trained on: the same sentences read by every voice of
the named engines (srcore.voices, each voice at its own tempo, no timbre warp), scored per voice.

    .venv/bin/python bench/unseen_voices.py --engines flite,festival \
        --exclude runs/r8/corpus/sentences.txt --model checkpoints/default --model runs/r11/model

Sentences: --count of fortune-mod's (Debian `fortunes`) of 6-18 words that share no word n-gram
with an --exclude list (give the corpus's sentences.txt: the models must not have heard them), in
a seeded order. Fortunes is also one of the word LM's text sources, so the models' own decoding
may know the sentences; the greedy figures cannot. Clips go to --out (named by what they say; a
second run reuses them).
Prints, per model, WER % with its own decoding and greedy, per voice and over all; then one JSON
object (the last line).
"""
import argparse
import hashlib
import json
import random
from pathlib import Path

import torch
from _common import emit, machine

from srcore import lm, synth, voices
from srcore.audio import write_audio
from srcore.evaluate import by_speaker, evaluate
from srcore.transcribe import Recognizer

ENGINE_VOICES = {"flite": voices.FLITE_VOICES, "festival": tuple(voices.FESTIVAL_VOICES),
                 "pico": tuple(voices.PICO_LANGS), "rhvoice": voices.RHVOICE_VOICES,
                 "mbrola": voices.MBROLA_VOICES}
WORDS = (6, 18)


def test_sentences(count: int, seed: int, excludes) -> list[str]:
    """`count` fortune sentences sharing no word n-gram with the --exclude lists, seeded."""
    heard = [line for path in excludes for line in lm.line_file_sentences(path)]
    candidates = lm.speakable(lm.source_sentences("fortunes"), lm.Decontaminator(heard), WORDS)
    random.Random(seed).shuffle(candidates)
    return candidates[:count]


def neutral(engine: str, name: str) -> voices.VoiceSettings:
    """A voice at its own tempo and pitch (Pico's and RHVoice's pitch is a percentage)."""
    return voices.VoiceSettings(engine=engine, name=name,
                                pitch=100 if engine in ("pico", "rhvoice") else 50)


def render(engines: list[str], sentences: list[str], out: Path) -> Path:
    """out/all.jsonl: every sentence read by every voice of `engines` (speaker ENGINE:VOICE)."""
    rows = []
    for engine in engines:
        problem = synth.engine_problem(engine)
        if problem:
            raise SystemExit(f"{engine}: {problem}; install: {synth.INSTALL_HINTS[engine]}")
        for name in ENGINE_VOICES[engine]:
            folder = out / engine / name
            folder.mkdir(parents=True, exist_ok=True)
            for text in sentences:  # named by what it says: another run's clips never mislead
                path = folder / f"{hashlib.sha1(text.encode()).hexdigest()[:16]}.flac"
                if not path.is_file():
                    samples, rate = synth.get_engine(engine).synthesize(text, neutral(engine, name))
                    write_audio(path, samples, rate)
                rows.append({"key": str(path), "text": text, "speaker": f"{engine}:{name}"})
    manifest = out / "all.jsonl"
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engines", default="flite,festival",
                        help=f"comma-separated, of: {', '.join(ENGINE_VOICES)}")
    parser.add_argument("--model", action="append", required=True, help="model directory (repeatable)")
    parser.add_argument("--exclude", action="append", default=[], help="a sentence list the models heard")
    parser.add_argument("--count", type=int, default=40)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--out", type=Path, default=Path("runs/unseen-voices"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    manifest = render(args.engines.split(","), test_sentences(args.count, args.seed, args.exclude),
                      args.out)
    results = {}
    for model in args.model:
        for reading, greedy in (("own decoding", False), ("greedy", True)):
            scored = evaluate(Recognizer.load(model, greedy=greedy), manifest)
            results[f"{model} {reading}"] = {"wer": scored.counts.wer, "cer": scored.counts.cer,
                                            "voices": by_speaker(scored.rows)}
    speakers = sorted(next(iter(results.values()))["voices"])
    print("| model, decoding | " + " | ".join(speakers) + " | all |")
    print("|---|" + "---|" * (len(speakers) + 1))
    for name, result in results.items():
        cells = [f"{100 * result['voices'][s]['wer']:.1f}" for s in speakers]
        print(f"| {name} | " + " | ".join(cells) + f" | {100 * result['wer']:.1f} ({100 * result['cer']:.1f}) |")
    emit({"machine": machine(), "manifest": str(manifest), "results": results})


if __name__ == "__main__":
    main()
