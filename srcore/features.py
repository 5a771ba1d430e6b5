"""Log-mel features and SpecAugment (torchaudio)."""
import warnings
from dataclasses import dataclass

import torch
import torch.nn as nn
import torchaudio


@dataclass
class FeatureConfig:
    sample_rate: int = 16000
    n_mels: int = 80
    win_length: int = 400  # samples: 25 ms at 16 kHz
    hop_length: int = 160  # samples: 10 ms at 16 kHz
    n_fft: int = 400
    log_offset: float = 1e-6
    normalize: bool = True  # per-utterance mean/variance normalisation of each mel bin
    # Vocal tract length normalisation: the frequency warp a model adapted to one speaker gives
    # every input (srcore/adapt.py chooses it); 1 for a model of everyone.
    speaker_warp: float = 1.0

    def __post_init__(self):
        if not SPEAKER_WARP_RANGE[0] <= self.speaker_warp <= SPEAKER_WARP_RANGE[1]:
            raise ValueError(f"features: speaker_warp = {self.speaker_warp!r}, expected a number in "
                             f"[{SPEAKER_WARP_RANGE[0]}, {SPEAKER_WARP_RANGE[1]}]")


SPEAKER_WARP_RANGE = (0.7, 1.4)


# The original notebook: 81 mels at 8 kHz, 20 ms window, 10 ms hop, log(x + 1e-14), no normalisation.
SEED_FEATURES = FeatureConfig(sample_rate=8000, n_mels=81, win_length=160, hop_length=80, n_fft=400,
                              log_offset=1e-14, normalize=False)


class LogMel(nn.Module):
    """Waveform (..., samples) -> log-mel (..., n_mels, frames)."""

    def __init__(self, config: FeatureConfig):
        super().__init__()
        self.config = config
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=config.sample_rate, n_fft=config.n_fft, win_length=config.win_length,
            hop_length=config.hop_length, n_mels=config.n_mels)
        self._warps: dict[float, torch.Tensor] = {}

    def forward(self, wave: torch.Tensor, warp: float = 1.0) -> torch.Tensor:
        """`warp` != 1 moves the spectrum's content from f to warp * f before the mel filters
        (vocal tract length perturbation: a training-time augmentation), on top of the config's
        speaker_warp."""
        warp = round(warp * self.config.speaker_warp, 4)
        if warp == 1.0:
            mel = self.mel(wave)
        else:
            spec = self.mel.spectrogram(wave)
            mel = torch.matmul(spec.transpose(-1, -2), self._warped_filters(warp)).transpose(-1, -2)
        feats = torch.log(mel + self.config.log_offset)
        if self.config.normalize:
            mean = feats.mean(dim=-1, keepdim=True)
            std = feats.std(dim=-1, keepdim=True, unbiased=False)
            feats = (feats - mean) / (std + 1e-5)
        return feats

    def _warped_filters(self, warp: float) -> torch.Tensor:
        """The mel filters read at warp * f: content at f lands where warp * f would. Kept per
        warp (callers draw warps from a short list of steps)."""
        if warp not in self._warps:
            n_freqs = self.config.n_fft // 2 + 1
            with warnings.catch_warnings():  # top filters are empty below warp 1: intended
                warnings.simplefilter("ignore", UserWarning)
                self._warps[warp] = torchaudio.functional.melscale_fbanks(
                    n_freqs, 0.0, self.config.sample_rate / 2, self.config.n_mels,
                    int(round(self.config.sample_rate * warp)))
        return self._warps[warp]


@dataclass
class SpecAugmentConfig:
    """The notebook's policy 3 and sizes: half the time one mask pair, else two, applied at `rate`."""
    rate: float = 0.5
    freq_mask: int = 15
    time_mask: int = 70
    time_mask_fraction: float = 1.0  # a time mask covers at most this share of the batch's frames
    enabled: bool = True


class SpecAugment(nn.Module):
    """Frequency and time masking on a batch (batch, n_mels, frames); each utterance masked apart."""

    def __init__(self, config: SpecAugmentConfig):
        super().__init__()
        self.config = config
        self.freq = torchaudio.transforms.FrequencyMasking(config.freq_mask, iid_masks=True)
        self.time = torchaudio.transforms.TimeMasking(config.time_mask, iid_masks=True,
                                                   p=config.time_mask_fraction)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        if not self.config.enabled or torch.rand(1).item() >= self.config.rate:
            return feats
        pairs = 1 if torch.rand(1).item() > 0.5 else 2
        fill = feats.mean()  # masks blend into the utterance instead of punching silence
        x = feats.unsqueeze(1)
        for _ in range(pairs):
            x = self.time(self.freq(x, mask_value=float(fill)), mask_value=float(fill))
        return x.squeeze(1)
