"""Cost of each on-the-fly augmentation step and of the log-mel features, in audio seconds per
second on one core: what a data-loader process can feed a GPU.

    .venv/bin/python bench/augment_speed.py [--manifest M.jsonl] [--clips 100] [--repeats 3]

Every step runs over the same clips (read once, at the model's rate), best of --repeats. "pink
noise, exact-length FFT" is the shaping the project used before it went to a power-of-two FFT:
kept here as the reference for that ratio; the "libsndfile's Opus" rows are what a machine without
libopus runs (srcore.opus). Prints a table, then one JSON object.
"""
import argparse
import json
import time
from pathlib import Path
from unittest.mock import patch

import numpy as np
import torch
from _common import REPO, emit, machine

from srcore import opus
from srcore.audio import read_audio
from srcore.augment import (
    CODECS,
    add_noise,
    augment_wave,
    codec,
    colored_noise,
    reverberate,
    room_impulse,
    speed,
    through_device,
)
from srcore.config import WaveAugmentConfig
from srcore.features import FeatureConfig, LogMel

RATE = FeatureConfig().sample_rate


def exact_length_pink(rng: np.random.Generator, n: int) -> np.ndarray:
    """Pink noise shaped by an FFT of the clip's own length (the reference)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / freqs ** 0.5, n)


def steps() -> dict:
    logmel, config = LogMel(FeatureConfig()), WaveAugmentConfig()
    table = {
        "log-mel": lambda w, rng: logmel(w, 1.0),
        "log-mel, warped 1.1": lambda w, rng: logmel(w, 1.1),
        "speed 1.1x": lambda w, rng: speed(w, RATE, 1.1),
        "room (rt60 0.8 s)": lambda w, rng: reverberate(w, room_impulse(rng, RATE, 0.8)),
        "microphone response": lambda w, rng: through_device(w, RATE, rng),
        "noise (white, pink or brown)": lambda w, rng: add_noise(w, rng, 20.0),
        "pink noise": lambda w, rng: colored_noise(rng, w.shape[-1], 1.0),
        "pink noise, exact-length FFT": lambda w, rng: exact_length_pink(rng, w.shape[-1]),
    }
    for name in CODECS:
        table[f"codec {name}"] = lambda w, rng, name=name: codec(w, RATE, name, rng)
    table["codec opus, libsndfile's (without libopus)"] = with_libsndfile_opus(
        lambda w, rng: codec(w, RATE, "opus", rng))
    table["augmentation chain (defaults)"] = lambda w, rng: augment_wave(w, RATE, rng, config)
    table["augmentation chain, libsndfile's Opus"] = with_libsndfile_opus(
        lambda w, rng: augment_wave(w, RATE, rng, config))
    return table


def with_libsndfile_opus(step):
    """`step` as on a machine without libopus: Opus through libsndfile (complexity 10)."""
    def run(wave, rng):
        with patch.object(opus, "load", lambda: None):
            return step(wave, rng)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path,
                        default=REPO.parent / "shared" / "data" / "read-speech" / "all.jsonl")
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = [json.loads(line) for line in args.manifest.read_text().splitlines() if line.strip()]
    waves = [read_audio(args.manifest.parent / row["key"], RATE) for row in rows[:args.clips]]
    audio_s = sum(w.shape[-1] for w in waves) / RATE
    figures = {}
    print("| step | audio-s/s on one core |\n|---|---|")
    for name, step in steps().items():
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            for i, wave in enumerate(waves):
                step(wave, np.random.default_rng(i))
            best = min(best, time.perf_counter() - started)
        figures[name] = round(audio_s / best, 1)
        print(f"| {name} | {figures[name]:.0f} |", flush=True)
    emit({"bench": "augment_speed", "clips": len(waves), "audio_s": round(audio_s, 1),
          "audio_s_per_s": figures, "machine": machine()})


if __name__ == "__main__":
    main()
