"""On-the-fly waveform augmentation of training clips: what real microphones and channels do.

Every effect is drawn from the clip's own numpy Generator, so a resumed run draws the same ones:
silent margins before and after the speech (a microphone take's: the recognizer cuts most of them
away, srcore.vad, but not room noise that stands within its range of the speech), speed (tempo and
pitch), a room (reverberation), a microphone's frequency response, level, noise (white, pink or
brown), lossy codecs (MP3 at a random quality, Opus, GSM 06.10 telephone at 8 kHz; encoded and
decoded in memory by libsndfile, Opus by libopus where installed: srcore.opus) and clipping of an
over-driven input. Validation clips are never augmented.
"""
from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import soundfile as sf
import torch

from . import opus
from .audio import resampler
from .config import WaveAugmentConfig

SPEED_FACTORS = (0.9, 1.0, 1.1)
CODECS = {  # name: (container, subtype, sample rate it runs at; 0 = the clip's)
    "mp3": ("MP3", "MPEG_LAYER_III", 0),
    "opus": ("OGG", "OPUS", 0),
    "gsm": ("WAV", "GSM610", 8000),
}
CODEC_WEIGHTS = {"mp3": 0.5, "opus": 0.2, "gsm": 0.3}
MP3_QUALITY = (0.3, 0.95)  # libsndfile's compression level: 0 best, 1 smallest
# Opus through libopus where the system has it: libsndfile's encoder runs at complexity 10, about
# nine times slower; these bitrates sound about as its default does (28 kbps at 16 kHz)
OPUS_BITRATE = (20_000, 32_000)
OPUS_COMPLEXITY = 5


@dataclass(frozen=True)
class LengthPlan:
    """The effects of the chain that change a clip's length (margins, then speed), drawn apart from
    the rest so that batches can be formed from the lengths the model will hear."""
    before_s: float = 0.0
    after_s: float = 0.0
    speed: float = 1.0

    def seconds(self, seconds: float) -> float:
        """How long a clip of `seconds` comes out."""
        return (seconds + self.before_s + self.after_s) / self.speed


def draw_length_plan(rng: np.random.Generator, config: WaveAugmentConfig) -> LengthPlan:
    before = after = 0.0
    if rng.random() < config.margin_prob:
        before, after = (float(rng.uniform(*config.margin_s)) for _ in range(2))
    factor = 1.0
    if rng.random() < config.speed_prob:
        factor = SPEED_FACTORS[rng.integers(len(SPEED_FACTORS))]
    return LengthPlan(before, after, factor)


def pad_margins(wave: torch.Tensor, sample_rate: int, before_s: float, after_s: float) -> torch.Tensor:
    """`wave` with `before_s` and `after_s` seconds of digital silence before and after it."""
    return torch.nn.functional.pad(wave, (round(before_s * sample_rate), round(after_s * sample_rate)))


def speed(wave: torch.Tensor, sample_rate: int, factor: float) -> torch.Tensor:
    """Play `factor` times faster: fewer samples, higher pitch."""
    return wave if factor == 1.0 else resampler(int(sample_rate * factor), sample_rate)(wave)


def fft_length(n: int) -> int:
    """The power of two at or above n (at least 2): an FFT of an awkward length (a prime, say)
    costs fifteen times as much."""
    return 1 << max(n - 1, 1).bit_length()


NOISE_COLOURS = (0.0, 1.0, 2.0)  # white (hiss), pink, brown (hum and rumble): 1/f**exponent power


def colored_noise(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Unit-RMS noise with a 1/f**exponent power spectrum (0 white, 1 pink, 2 brown). Coloured
    noise is shaped over fft_length(n) samples and cut to n."""
    if not exponent or n < 2:
        white = rng.standard_normal(n)
    else:
        size = fft_length(n)
        spectrum = np.fft.rfft(rng.standard_normal(size))
        freqs = np.fft.rfftfreq(size)
        freqs[0] = freqs[1]
        white = np.fft.irfft(spectrum / freqs ** (exponent / 2), size)[:n]
    return (white / max(float(np.sqrt(np.mean(white ** 2))), 1e-9)).astype(np.float32)


def add_noise(wave: torch.Tensor, rng: np.random.Generator, snr_db: float) -> torch.Tensor:
    """White, pink or brown noise at `snr_db` below the clip."""
    exponent = NOISE_COLOURS[int(rng.integers(len(NOISE_COLOURS)))]
    noise = torch.from_numpy(colored_noise(rng, wave.shape[-1], exponent))
    scale = wave.pow(2).mean().sqrt() / 10 ** (snr_db / 20)
    return wave + scale * noise


ROOM_DRR_DB = (0.0, 12.0)  # direct-to-reverberant energy ratio: far from the microphone to close
ROOM_HIGH_DECAY = (0.35, 0.8)  # how much sooner the highs die away than the lows (air, soft furnishing)
ROOM_CROSSOVER_HZ = 1500.0
ROOM_EARLY_REFLECTIONS = 8  # within ROOM_EARLY_MS of the direct sound: walls, desk, ceiling
ROOM_EARLY_MS = (1.0, 30.0)
ROOM_MAX_SECONDS = 1.0  # the impulse response is cut here (-60 dB at the longest rt60 anyway)


def fading(t: np.ndarray, rt60: float) -> np.ndarray:
    """The amplitude of a room's sound `t` seconds on: 60 dB (a thousandth) down at `rt60`."""
    return np.exp(-np.log(1000.0) * t / rt60)


def diffuse_tail(rng: np.random.Generator, n: int, sample_rate: int, rt60: float) -> np.ndarray:
    """Noise fading over `rt60` below ROOM_CROSSOVER_HZ and sooner above it."""
    t = np.arange(n) / sample_rate
    noise = np.fft.rfft(rng.standard_normal(n))
    low = np.fft.rfftfreq(n, 1 / sample_rate) < ROOM_CROSSOVER_HZ
    high_rt60 = rt60 * rng.uniform(*ROOM_HIGH_DECAY)
    return np.fft.irfft(noise * low, n) * fading(t, rt60) + np.fft.irfft(noise * ~low, n) * fading(t, high_rt60)


def add_early_reflections(rng: np.random.Generator, tail: np.ndarray, sample_rate: int, rt60: float) -> None:
    """A few strong echoes in the first ROOM_EARLY_MS, as loud as the tail's peak or louder."""
    count = ROOM_EARLY_REFLECTIONS
    at = np.minimum((rng.uniform(*ROOM_EARLY_MS, count) * sample_rate / 1000).astype(int), len(tail) - 1)
    signs, gains = rng.choice((-1.0, 1.0), count), rng.uniform(0.5, 2.0, count)
    np.add.at(tail, at, signs * gains * fading(at / sample_rate, rt60) * float(np.abs(tail).max()))


def room_impulse(rng: np.random.Generator, sample_rate: int, rt60: float) -> np.ndarray:
    """A synthetic room impulse response (a statistical room model): the direct sound at t = 0, a
    few early reflections, then a diffuse tail decaying 60 dB in `rt60` seconds, its highs sooner
    than its lows, at a random direct-to-reverberant ratio. The direct sound stays at sample 0, so
    the clip is not shifted."""
    n = max(2, int(min(rt60, ROOM_MAX_SECONDS) * sample_rate))
    impulse = diffuse_tail(rng, n, sample_rate, rt60)
    add_early_reflections(rng, impulse, sample_rate, rt60)
    impulse[0] = 0.0
    drr = 10 ** (rng.uniform(*ROOM_DRR_DB) / 10)
    impulse *= np.sqrt(1.0 / (drr * max(float(np.sum(impulse ** 2)), 1e-12)))
    impulse[0] = 1.0
    return impulse.astype(np.float32)


def reverberate(wave: torch.Tensor, impulse: np.ndarray) -> torch.Tensor:
    """The clip as heard through `impulse`: same length (the tail past the end is cut), same level."""
    n = wave.shape[-1]
    size = fft_length(n + len(impulse) - 1)
    wet = np.fft.irfft(np.fft.rfft(wave.numpy(), size) * np.fft.rfft(impulse, size), size)[:n]
    return at_level_of(wet, wave)


DEVICE_KNOTS_HZ = (100, 200, 400, 800, 1600, 3200, 6400)  # where the response's wiggles are drawn
DEVICE_WIGGLE_DB = 4.0  # their spread
DEVICE_LOW_CUT_HZ = (50.0, 400.0)  # small capsules and telephones lose the bass below here ...
DEVICE_HIGH_CUT_HZ = (3500.0, 8000.0)  # ... and the highs above here
DEVICE_ROLLOFF_DB_PER_OCTAVE = 12.0


def device_response(rng: np.random.Generator, freqs: np.ndarray) -> np.ndarray:
    """The amplitude response of a made-up microphone and input chain at `freqs` (Hz): smooth
    wiggles of a few dB, a bass cut and a treble cut, 12 dB per octave beyond them."""
    octaves = np.log2(np.maximum(freqs, 1.0))
    wiggles = np.interp(octaves, np.log2(DEVICE_KNOTS_HZ),
                        np.clip(rng.normal(0.0, DEVICE_WIGGLE_DB, len(DEVICE_KNOTS_HZ)), -10, 10))
    low, high = np.log2(rng.uniform(*DEVICE_LOW_CUT_HZ)), np.log2(rng.uniform(*DEVICE_HIGH_CUT_HZ))
    cuts = DEVICE_ROLLOFF_DB_PER_OCTAVE * (np.maximum(low - octaves, 0) + np.maximum(octaves - high, 0))
    return 10 ** ((wiggles - cuts) / 20)


def through_device(wave: torch.Tensor, sample_rate: int, rng: np.random.Generator) -> torch.Tensor:
    """The clip as a made-up microphone records it (zero phase, same length, same level)."""
    n = wave.shape[-1]
    size = fft_length(n)
    spectrum = np.fft.rfft(wave.numpy(), size) * device_response(rng, np.fft.rfftfreq(size, 1 / sample_rate))
    return at_level_of(np.fft.irfft(spectrum, size)[:n], wave)


def at_level_of(out: np.ndarray, wave: torch.Tensor) -> torch.Tensor:
    """`out` scaled to the RMS level of `wave`, as a float32 tensor."""
    scale = np.sqrt(float(wave.pow(2).mean()) / max(float(np.mean(out ** 2)), 1e-18))
    return torch.from_numpy((out * scale).astype(np.float32))


def codec(wave: torch.Tensor, sample_rate: int, name: str, rng: np.random.Generator) -> torch.Tensor:
    """Encode and decode with a lossy codec in memory; same length and rate as the input."""
    container, subtype, rate = CODECS[name]
    rate = rate or (opus_rate(sample_rate) if name == "opus" else sample_rate)
    x = resampler(sample_rate, rate)(wave) if rate != sample_rate else wave
    peak = max(float(x.abs().max()), 1.0)  # codecs take [-1, 1]
    libopus = opus.load() if name == "opus" and rate in opus.RATES else None
    if libopus is not None:
        bitrate = int(rng.integers(*OPUS_BITRATE))
        y = torch.from_numpy(libopus.round_trip((x / peak).numpy(), rate, bitrate, OPUS_COMPLEXITY))
    else:
        options = {"compression_level": float(rng.uniform(*MP3_QUALITY))} if name == "mp3" else {}
        buffer = io.BytesIO()
        sf.write(buffer, (x / peak).numpy(), rate, format=container, subtype=subtype, **options)
        buffer.seek(0)
        y = torch.from_numpy(sf.read(buffer, dtype="float32")[0])
    y = y * peak
    if rate != sample_rate:
        y = resampler(rate, sample_rate)(y)
    n = wave.shape[-1]
    return torch.nn.functional.pad(y[:n], (0, max(0, n - y.shape[-1])))


def opus_rate(sample_rate: int) -> int:
    """The Opus rate a clip runs at: its own when Opus has it, else the next one up (Opus codes
    only 8, 12, 16, 24 and 48 kHz)."""
    return next((rate for rate in sorted(opus.RATES) if rate >= sample_rate), max(opus.RATES))


def clip(wave: torch.Tensor, level: float) -> torch.Tensor:
    """Saturate at `level` of the peak, as an over-driven microphone input does."""
    limit = float(wave.abs().max()) * level
    return wave.clamp(-limit, limit) if limit > 0 else wave


def draw_warp(rng: np.random.Generator, config: WaveAugmentConfig) -> float:
    """The frequency warp of a clip's features: 1.0 (none) or a factor in warp_range, in steps
    of 0.01."""
    if rng.random() >= config.warp_prob:
        return 1.0
    return round(float(rng.uniform(*config.warp_range)), 2)


def augment_wave(wave: torch.Tensor, sample_rate: int, rng: np.random.Generator,
                 config: WaveAugmentConfig, plan: LengthPlan | None = None) -> torch.Tensor:
    """The augmentation chain: margins, speed, room, microphone, gain, noise, codec, clipping; each
    drawn from `rng`, margins and speed first unless `plan` has drawn them already."""
    if plan is None:
        plan = draw_length_plan(rng, config)
    if plan.before_s or plan.after_s:
        wave = pad_margins(wave, sample_rate, plan.before_s, plan.after_s)
    wave = speed(wave, sample_rate, plan.speed)
    if rng.random() < config.reverb_prob:
        wave = reverberate(wave, room_impulse(rng, sample_rate, rng.uniform(*config.rt60)))
    if rng.random() < config.device_prob:
        wave = through_device(wave, sample_rate, rng)
    wave = wave * 10 ** (rng.uniform(*config.gain_db) / 20)
    if rng.random() < config.noise_prob:
        wave = add_noise(wave, rng, rng.uniform(*config.snr_db))
    if rng.random() < config.codec_prob:
        names = list(CODEC_WEIGHTS)
        weights = np.array([CODEC_WEIGHTS[n] for n in names])
        wave = codec(wave, sample_rate, names[rng.choice(len(names), p=weights / weights.sum())], rng)
    if rng.random() < config.clip_prob:
        wave = clip(wave, rng.uniform(*config.clip_level))
    return wave
