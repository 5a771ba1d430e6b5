"""Audio I/O with soundfile: mono mix-down and resampling to the model's rate."""
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


def read_audio(path, sample_rate: int) -> torch.Tensor:
    """Read any soundfile-supported file as a mono float32 tensor at `sample_rate`."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises several types for corrupt data
        raise AudioError(f"{path}: unreadable audio ({exc})") from exc
    if data.size == 0:
        raise AudioError(f"{path}: empty audio")
    return to_model_rate(data.mean(axis=1), rate, sample_rate)


@lru_cache(maxsize=32)
def resampler(orig_freq: int, new_freq: int) -> torchaudio.transforms.Resample:
    """torchaudio.functional.resample with its filter kernel computed once (same output)."""
    return torchaudio.transforms.Resample(orig_freq, new_freq, dtype=torch.float32)


def to_model_rate(samples, rate: int, sample_rate: int) -> torch.Tensor:
    """Mono samples (numpy or tensor, any dtype) to float32 at `sample_rate`."""
    wave = torch.as_tensor(np.asarray(samples))
    if not wave.is_floating_point():
        wave = wave.float() / float(torch.iinfo(wave.dtype).max)
    wave = wave.float()
    if wave.ndim == 2:  # (samples, channels) as gradio and soundfile give it
        wave = wave.mean(dim=1)
    if rate != sample_rate:
        wave = resampler(int(rate), int(sample_rate))(wave)
    return wave.contiguous()


OGG_COMPRESSION = 0.6  # Vorbis quality: about 20 MB an hour of 16 kHz speech


def write_audio(path, wave, sample_rate: int) -> None:
    """Write a mono float waveform; the format follows the file suffix (wav, flac, ogg)."""
    options = {"compression_level": OGG_COMPRESSION} if str(path).endswith(".ogg") else {}
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, **options)
