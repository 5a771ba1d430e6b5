"""Audio I/O with soundfile: mono mix-down and resampling to the model's rate, in bounded memory.

Reading checks the header first (duration, sample rate, channels against the caller's limits),
then decodes in blocks (SoundFile.read in a loop: SoundFile.blocks hides short reads), mixing
each down to mono and resampling it as it comes, so memory is bounded by the mono output at the
model's rate, never by what a tiny compressed file expands to.
Non-finite samples, truncated or damaged files are errors (`AudioError`, naming the file by its
name, not its folder); a silent file decodes to zeros (see `is_silent`).

Resampling uses torchaudio's windowed-sinc kernels, applied in chunks. Its kernel holds
(new/gcd) x (orig/gcd + 2*width) floats, gigabytes for rates with a small gcd (15991 -> 16000
Hz): such a rate is resampled as if it were the nearest rate (within 0.1 %, a harmless pitch and
tempo change) whose kernel is small. Kernels are cached up to KERNEL_CACHE_BYTES in all.
"""
import math
import re
import threading
from collections import OrderedDict
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio


class AudioError(ValueError):
    """An audio file that cannot be used; the message names the file and the problem."""


MAX_RATE = 384_000  # header limits when the caller gives none
MAX_CHANNELS = 32
DEFAULT_MAX_SECONDS = 2 * 3600.0  # 460 MB of float32 at 16 kHz
SILENCE_PEAK = 1e-3  # is_silent: loudest sample below this (-60 dBFS)
READ_BLOCK_FRAMES = 1 << 16
UNKNOWN_LENGTH = 2**62  # libsndfile reports a length it cannot know as the largest count (2**63 - 1)
LOSSY_FRAME_SLACK = 0.01  # MP3 lengths may be estimates: allow 1 % fewer frames than announced

RATE_TOLERANCE = 0.001  # how far a rate may be moved to get a small kernel (0.1 %)
MAX_KERNEL_ELEMENTS = 1 << 20  # 4 MB of float32 per kernel
KERNEL_CACHE_BYTES = 32 * 2 ** 20  # all cached kernels together
RESAMPLE_CHUNK = 1 << 16  # input samples per convolution
LOWPASS_FILTER_WIDTH = 6  # torchaudio's defaults
ROLLOFF = 0.99


# ------------------------------------------------------------------------------ resampling

def _reduced(orig: int, new: int) -> tuple[int, int]:
    g = math.gcd(orig, new)
    return orig // g, new // g


def _kernel_elements(orig: int, new: int) -> int:
    """Size of torchaudio's sinc kernel for orig -> new Hz (see _get_sinc_resample_kernel)."""
    o, n = _reduced(orig, new)
    if o == n:
        return 0
    width = math.ceil(LOWPASS_FILTER_WIDTH * o / (min(o, n) * ROLLOFF))
    return n * (o + 2 * width)


def _nearby(rate: int, tolerance: float) -> list[int]:
    """Rates within `tolerance` of `rate` (at least +-1 Hz), nearest first."""
    span = max(1, int(rate * tolerance))
    return sorted(range(max(1, rate - span), rate + span + 1), key=lambda r: (abs(r - rate), r))


@lru_cache(maxsize=4096)
def resample_plan(orig: int, new: int) -> tuple[int, int]:
    """The (orig, new) rates actually used: the given ones when their kernel is small, else the
    nearest pair (orig moved first, then new, then both) whose kernel fits MAX_KERNEL_ELEMENTS;
    the tolerance widens from 0.1 % only for rates too low for any 0.1 % move to help."""
    orig, new = int(orig), int(new)
    if orig <= 0 or new <= 0:
        raise ValueError(f"sample rates must be positive, got {orig} -> {new} Hz")
    if _kernel_elements(orig, new) <= MAX_KERNEL_ELEMENTS:
        return orig, new
    for tolerance in (RATE_TOLERANCE, 0.002, 0.005, 0.01, 0.02, 0.05):
        for pairs in (((o, new) for o in _nearby(orig, tolerance)),
                      ((orig, n) for n in _nearby(new, tolerance)),
                      sorted(((o, n) for o in _nearby(orig, tolerance)[:65]
                              for n in _nearby(new, tolerance)[:65]),
                             key=lambda p: abs(p[0] - orig) / orig + abs(p[1] - new) / new)):
            for o, n in pairs:
                if _kernel_elements(o, n) <= MAX_KERNEL_ELEMENTS:
                    return o, n
    raise ValueError(f"cannot resample {orig} -> {new} Hz in bounded memory")


_KERNELS: OrderedDict = OrderedDict()  # (orig, new) reduced -> (kernel, width); LRU by bytes
_KERNELS_LOCK = threading.Lock()


def kernel_cache_bytes() -> int:
    with _KERNELS_LOCK:
        return sum(kernel.numel() * kernel.element_size() for kernel, _ in _KERNELS.values())


def _kernel(o: int, n: int) -> tuple[torch.Tensor, int]:
    """torchaudio's (n, 1, o + 2*width) float32 kernel for the reduced rates o -> n, cached."""
    with _KERNELS_LOCK:
        if (o, n) in _KERNELS:
            _KERNELS.move_to_end((o, n))
            return _KERNELS[(o, n)]
    transform = torchaudio.transforms.Resample(o, n, dtype=torch.float32)
    entry = (transform.kernel.detach(), int(transform.width))
    with _KERNELS_LOCK:
        _KERNELS[(o, n)] = entry
        total = sum(k.numel() * k.element_size() for k, _ in _KERNELS.values())
        while total > KERNEL_CACHE_BYTES and len(_KERNELS) > 1:
            old, _ = _KERNELS.popitem(last=False)[1]
            total -= old.numel() * old.element_size()
    return entry


class ResampleStream:
    """Resample a mono signal fed in pieces; the result equals torchaudio.functional.resample of
    the whole (same kernel, same padding). `length` is the number of input samples to come."""

    def __init__(self, orig: int, new: int, length: int):
        o, n = _reduced(*resample_plan(orig, new))
        self.identity = o == n
        self.length = int(length)
        self.out = torch.empty(self.length if self.identity else math.ceil(n * self.length / o))
        self.filled = 0
        if not self.identity:
            self.o, self.n = o, n
            self.kernel, self.width = _kernel(o, n)
            self.buffer = torch.zeros(self.width)  # the left padding

    def _emit(self, values: torch.Tensor) -> None:
        take = min(values.numel(), self.out.numel() - self.filled)
        self.out[self.filled:self.filled + take] = values[:take]
        self.filled += take

    def _convolve(self) -> None:
        """Every output position the buffer holds enough input for; keep the rest."""
        size = self.kernel.shape[-1]
        positions = (self.buffer.numel() - size) // self.o + 1
        if positions <= 0:
            return
        used = self.buffer[:(positions - 1) * self.o + size]
        out = torch.nn.functional.conv1d(used[None, None], self.kernel, stride=self.o)
        self._emit(out[0].transpose(0, 1).reshape(-1))
        self.buffer = self.buffer[positions * self.o:].clone()

    def push(self, samples: torch.Tensor) -> None:
        samples = samples.reshape(-1).float()
        if self.identity:
            self._emit(samples)
            return
        for start in range(0, samples.numel(), RESAMPLE_CHUNK):
            self.buffer = torch.cat([self.buffer, samples[start:start + RESAMPLE_CHUNK]])
            if self.buffer.numel() >= RESAMPLE_CHUNK:
                self._convolve()

    def finish(self) -> torch.Tensor:
        if not self.identity:
            self.buffer = torch.cat([self.buffer, torch.zeros(self.width + self.o)])
            self._convolve()
        return self.out[:self.filled]


class Resampler:
    """A callable like torchaudio.transforms.Resample(orig_freq, new_freq): (..., time) float
    tensors in, float32 out; memory bounded by the clip (see resample_plan)."""

    def __init__(self, orig_freq: int, new_freq: int):
        self.orig_freq, self.new_freq = int(orig_freq), int(new_freq)
        self.plan = resample_plan(self.orig_freq, self.new_freq)

    def __call__(self, wave: torch.Tensor) -> torch.Tensor:
        o, n = _reduced(*self.plan)
        if o == n:
            return wave
        rows = wave.reshape(-1, wave.shape[-1])
        out = []
        for row in rows:
            stream = ResampleStream(self.orig_freq, self.new_freq, row.numel())
            stream.push(row)
            out.append(stream.finish())
        return torch.stack(out).reshape(*wave.shape[:-1], -1)

    def __repr__(self) -> str:
        return f"Resampler({self.orig_freq} -> {self.new_freq} Hz, as {self.plan[0]} -> {self.plan[1]})"


def resampler(orig_freq: int, new_freq: int) -> Resampler:
    """A resampler from orig_freq to new_freq Hz (torchaudio's kernel, computed once and cached
    within KERNEL_CACHE_BYTES)."""
    return Resampler(orig_freq, new_freq)


# ------------------------------------------------------------------------------ reading

def _non_finite(samples) -> bool:
    if isinstance(samples, torch.Tensor):
        return not bool(torch.isfinite(samples).all())
    return not bool(np.isfinite(samples).all())


def _reason(exc: Exception, path: Path) -> str:
    """libsndfile's complaint without the file's full path (a server's temp folder)."""
    text = getattr(exc, "error_string", None) or str(exc)
    return text.replace(str(path), path.name).strip() or type(exc).__name__


_CHUNK_SIZE_LOG = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _truncation_in_log(info: sf.SoundFile) -> str:
    """What libsndfile's header log says is missing: a data chunk shorter than its header
    promises (WAV, AIFF) or an Ogg stream without its last page."""
    log = info.extra_info or ""
    for claimed, actual in _CHUNK_SIZE_LOG.findall(log):
        claimed, actual = int(claimed), int(actual)
        placeholder = claimed == 0 or claimed >= 0x7FFFFFFF  # streamed WAV: length unknown
        frame_bytes = max(1, info.channels) * 8
        if not placeholder and claimed - actual >= frame_bytes:
            return f"{actual:,} of {claimed:,} audio bytes"
    if "Last page lacks an end-of-stream bit" in log:
        return "the Ogg stream has no end"
    return ""


def _seconds(value: float) -> str:
    return f"{value:.2f} s" if value < 120 else f"{value / 60:.1f} min"


def read_audio(path, sample_rate: int, max_seconds: float | None = None, *,
               max_rate: int = MAX_RATE, max_channels: int = MAX_CHANNELS) -> torch.Tensor:
    """Read any soundfile-supported file as a mono float32 tensor at `sample_rate`.

    The header is checked first: at most `max_seconds` (DEFAULT_MAX_SECONDS when None),
    `max_rate` Hz and `max_channels`. Then blocks are decoded, mixed down and resampled one at a
    time. AudioError (naming the file) for a missing, unreadable, empty, too long, truncated or
    damaged file and for NaN/inf samples; a silent file gives zeros (see is_silent)."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise AudioError(f"{name}: " + ("a folder, not an audio file" if path.is_dir() else "no such file"))
    try:
        source = sf.SoundFile(str(path))
    except Exception as exc:  # soundfile raises several types for corrupt data
        raise AudioError(f"{name}: unreadable audio ({_reason(exc, path)})") from None
    with source:
        frames, rate, channels = source.frames, source.samplerate, source.channels
        if rate <= 0 or channels <= 0:
            raise AudioError(f"{name}: unreadable audio (header gives {rate} Hz, {channels} channels)")
        if rate > max_rate:
            raise AudioError(f"{name}: sample rate {rate} Hz is above the limit of {max_rate} Hz")
        if channels > max_channels:
            raise AudioError(f"{name}: {channels} channels; at most {max_channels}")
        if frames <= 0:
            raise AudioError(f"{name}: empty audio")
        limit = DEFAULT_MAX_SECONDS if max_seconds is None else float(max_seconds)
        if frames >= UNKNOWN_LENGTH:  # a streamed FLAC, say: nothing tells how much would be decoded
            raise AudioError(f"{name}: the header does not give the audio's length; re-encode the "
                             "file (e.g. ffmpeg -i IN OUT.flac)")
        if frames / rate > limit:
            raise AudioError(f"{name}: audio lasts {_seconds(frames / rate)}; at most "
                             f"{_seconds(limit)}")
        missing = _truncation_in_log(source)
        if missing:
            raise AudioError(f"{name}: audio is truncated ({missing}); the file is incomplete")
        stream = ResampleStream(rate, sample_rate, frames)
        decoded = 0
        try:
            while decoded < frames:  # not SoundFile.blocks: it pads short reads silently
                block = source.read(min(READ_BLOCK_FRAMES, frames - decoded), dtype="float32",
                                    always_2d=True)
                if block.shape[0] == 0:
                    break
                if _non_finite(block):
                    raise AudioError(f"{name}: audio has non-finite samples (NaN or inf) at "
                                     f"{_seconds(decoded / rate)}")
                mono = block[:, 0] if channels == 1 else block.mean(axis=1, dtype=np.float32)
                stream.push(torch.from_numpy(np.ascontiguousarray(mono)))
                decoded += block.shape[0]
        except AudioError:
            raise
        except Exception as exc:  # libsndfile's decoders raise several types mid-way
            raise AudioError(f"{name}: audio is damaged or truncated: decoding failed after "
                             f"{_seconds(decoded / rate)} of {_seconds(frames / rate)} "
                             f"({_reason(exc, path)})") from None
        slack = int(frames * LOSSY_FRAME_SLACK) if source.format in ("MP3", "MPEG") else 0
        if decoded < frames - slack:
            raise AudioError(f"{name}: audio is truncated: the header promises "
                             f"{_seconds(frames / rate)}, only {_seconds(decoded / rate)} decode")
    return stream.finish().contiguous()


def is_silent(wave, peak: float = SILENCE_PEAK) -> bool:
    """Whether a waveform (tensor or array) is empty or its loudest sample is below `peak`."""
    wave = torch.as_tensor(np.asarray(wave)) if not isinstance(wave, torch.Tensor) else wave
    return wave.numel() == 0 or float(wave.abs().max()) < peak


def to_model_rate(samples, rate: int, sample_rate: int) -> torch.Tensor:
    """Mono samples (numpy or tensor, any dtype) to float32 at `sample_rate`; AudioError for
    NaN or inf samples."""
    wave = torch.as_tensor(np.asarray(samples))
    if not wave.is_floating_point():
        wave = wave.float() / float(torch.iinfo(wave.dtype).max)
    wave = wave.float()
    if wave.ndim == 2:  # (samples, channels) as gradio and soundfile give it
        wave = wave.mean(dim=1)
    if _non_finite(wave):
        raise AudioError("audio has non-finite samples (NaN or inf)")
    if rate != sample_rate:
        wave = resampler(int(rate), int(sample_rate))(wave)
    return wave.contiguous()


OGG_COMPRESSION = 0.6  # Vorbis quality: about 20 MB an hour of 16 kHz speech


def write_audio(path, wave, sample_rate: int) -> None:
    """Write a mono float waveform; the format follows the file suffix (wav, flac, ogg)."""
    options = {"compression_level": OGG_COMPRESSION} if str(path).endswith(".ogg") else {}
    sf.write(str(path), np.asarray(wave, dtype=np.float32), sample_rate, **options)
