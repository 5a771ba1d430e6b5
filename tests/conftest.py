"""Shared fixtures: a tiny spoken corpus made with eSpeak NG, and a tiny model trained on it.

Everything is made here, offline; nothing is read from ../shared/.
"""
import json
import os
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest

from srcore.audio import to_model_rate, write_audio

SAMPLE_RATE = 16000
WAIT_S = 60
# Debian's Chromium for the browser tests (never a downloaded browser); flags for a closed network.
CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WORDS = ["yes", "no", "stop", "go"]  # one clean eSpeak clip each: a tiny model can learn them


def speak(text: str, voice: str = "en-us", rate: int = 150) -> np.ndarray:
    """`text` spoken by eSpeak NG as float32 at SAMPLE_RATE."""
    from srcore import synth
    engine = synth.get_engine("espeak")
    samples, engine_rate = engine.synthesize(text, synth.VoiceSettings("espeak", voice, rate=rate))
    return to_model_rate(samples, engine_rate, SAMPLE_RATE).numpy()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(condition, timeout_s: float = WAIT_S, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def write_corpus(folder: Path, texts, manifest_name: str = "all.jsonl") -> Path:
    """One wav per text under folder/audio and a native manifest beside it."""
    (folder / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for i, text in enumerate(texts):
        wave = np.concatenate([np.zeros(1600, np.float32), speak(text), np.zeros(1600, np.float32)])
        key = f"audio/{i:03d}_{text.replace(' ', '_')}.wav"
        write_audio(folder / key, wave, SAMPLE_RATE)
        rows.append({"key": key, "text": text, "duration": round(len(wave) / SAMPLE_RATE, 3),
                     "speaker": "espeak"})
    manifest = folder / manifest_name
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


@pytest.fixture(scope="session")
def word_corpus(tmp_path_factory) -> Path:
    """Manifest of four clean one-word clips (yes, no, stop, go)."""
    return write_corpus(tmp_path_factory.mktemp("words"), WORDS)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, word_corpus) -> Path:
    """A run folder of the tiny model trained to recognise WORDS (train = valid: it memorises)."""
    from srcore.train import TrainConfig, train
    out = tmp_path_factory.mktemp("runs") / "words"
    train(TrainConfig(train=str(word_corpus), valid=str(word_corpus), model="tiny", epochs=200,
                      batch_size=4, lr=1e-2, warmup_steps=0, augment=False, specaugment=False, workers=0,
                      out=str(out), seed=0, log_every=10, threads=1, lr_patience=100))
    return out


@pytest.fixture(scope="session")
def trained_model(trained_run) -> Path:
    return trained_run / "checkpoints" / "best"
