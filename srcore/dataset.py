"""Training data: utterances -> features and targets, length-bucketed batches, collation."""
import random
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio
from torch.utils.data import Dataset

from .audio import AudioError, read_audio
from .features import FeatureConfig, LogMel
from .manifest import SkipReport, Utterance
from .text import encode, normalize_text

SPEED_FACTORS = (0.9, 1.0, 1.1)


@dataclass
class WaveAugmentConfig:
    """On-the-fly waveform augmentation for training batches (never validation)."""
    enabled: bool = True
    speed_prob: float = 0.6
    noise_prob: float = 0.5
    snr_db: tuple = (8.0, 40.0)
    gain_db: tuple = (-12.0, 6.0)


def augment_wave(wave: torch.Tensor, sample_rate: int, rng: np.random.Generator,
                 config: WaveAugmentConfig) -> torch.Tensor:
    """Speed perturbation, gain and white/brown noise at a random SNR, drawn from `rng`."""
    if rng.random() < config.speed_prob:
        factor = SPEED_FACTORS[rng.integers(len(SPEED_FACTORS))]
        if factor != 1.0:  # playing `factor` times faster: fewer samples, higher pitch
            wave = torchaudio.functional.resample(wave, int(sample_rate * factor), sample_rate)
    wave = wave * 10 ** (rng.uniform(*config.gain_db) / 20)
    if rng.random() < config.noise_prob:
        noise = torch.from_numpy(rng.standard_normal(wave.shape[-1]).astype(np.float32))
        if rng.random() < 0.5:  # brown noise: hum and rumble rather than hiss
            noise = torch.cumsum(noise, 0)
            noise = noise - torch.linspace(noise[0], noise[-1], len(noise))
        snr = rng.uniform(*config.snr_db)
        scale = wave.pow(2).mean().sqrt() / (noise.pow(2).mean().sqrt() + 1e-8) / 10 ** (snr / 20)
        wave = wave + scale * noise
    return wave


class SpeechDataset(Dataset):
    """Items are (index, epoch) pairs so that augmentation is a pure function of seed, epoch and
    utterance: a resumed run sees exactly the audio an uninterrupted one would."""

    def __init__(self, utterances: list[Utterance], features: FeatureConfig,
                 augment: WaveAugmentConfig | None = None, seed: int = 0):
        self.utterances = utterances
        self.features = features
        self.logmel = LogMel(features)
        self.augment = augment
        self.seed = seed
        self.targets = [encode(u.text) for u in utterances]

    def __len__(self):
        return len(self.utterances)

    def __getitem__(self, item):
        index, epoch = item
        utt = self.utterances[index]
        try:
            wave = read_audio(utt.path, self.features.sample_rate)
        except AudioError:  # vanished or broke after the manifest was checked
            return None
        if self.augment is not None and self.augment.enabled:
            rng = np.random.default_rng([self.seed, epoch, index])
            wave = augment_wave(wave, self.features.sample_rate, rng, self.augment)
        with torch.no_grad():
            feats = self.logmel(wave)
        return feats, torch.tensor(self.targets[index]), utt.duration, normalize_text(utt.text)


@dataclass
class Batch:
    feats: torch.Tensor  # (batch, n_mels, frames), zero padded
    feat_lengths: torch.Tensor
    targets: torch.Tensor  # (batch, max_target), zero padded
    target_lengths: torch.Tensor
    audio_seconds: float
    texts: list

    def to(self, device) -> "Batch":
        return Batch(self.feats.to(device, non_blocking=True), self.feat_lengths,
                     self.targets.to(device, non_blocking=True), self.target_lengths,
                     self.audio_seconds, self.texts)


def collate(items) -> Batch | None:
    items = [it for it in items if it is not None]
    if not items:
        return None
    feats, targets, seconds, texts = zip(*items)
    lengths = torch.tensor([f.shape[-1] for f in feats])
    padded = torch.zeros(len(feats), feats[0].shape[0], int(lengths.max()))
    for i, f in enumerate(feats):
        padded[i, :, : f.shape[-1]] = f
    return Batch(padded, lengths, torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
                 torch.tensor([len(t) for t in targets]), float(sum(seconds)), list(texts))


class BucketBatchSampler:
    """Shuffled batches of similar duration, a pure function of (seed, epoch).

    Utterances are shuffled, cut into pools of `pool_batches` batches, sorted by duration within a
    pool and batched; the batch order is shuffled again. With `num_replicas` > 1 each rank takes every
    n-th batch (equal counts). `skip` drops the first batches of the epoch for mid-epoch resume.
    """

    def __init__(self, durations, batch_size: int, seed: int = 0, shuffle: bool = True,
                 rank: int = 0, num_replicas: int = 1, pool_batches: int = 50,
                 max_batch_seconds: float | None = None):
        self.durations = list(durations)
        self.batch_size = batch_size
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.num_replicas = rank, num_replicas
        self.pool = batch_size * pool_batches
        self.max_batch_seconds = max_batch_seconds
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _split(self, indices):
        batch, longest = [], 0.0
        for i in indices:
            longest = max(longest, self.durations[i])
            too_long = (self.max_batch_seconds is not None and batch
                        and longest * (len(batch) + 1) > self.max_batch_seconds)
            if len(batch) == self.batch_size or too_long:
                yield batch
                batch, longest = [], self.durations[i]
            batch.append(i)
        if batch:
            yield batch

    def batches(self) -> list[list[int]]:
        order = list(range(len(self.durations)))
        rng = random.Random(self.seed * 100_003 + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        batches = []
        for start in range(0, len(order), self.pool):
            pool = sorted(order[start:start + self.pool], key=lambda i: self.durations[i])
            batches.extend(self._split(pool))
        if self.shuffle:
            rng.shuffle(batches)
        per_rank = len(batches) // self.num_replicas if self.num_replicas > 1 else len(batches)
        return batches[self.rank::self.num_replicas][:per_rank]

    def __len__(self):
        return len(self.batches())

    def __iter__(self):
        for batch in self.batches()[self.skip:]:
            yield [(i, self.epoch) for i in batch]


def drop_unalignable(utterances, frames_per_second: float, report: SkipReport) -> list[Utterance]:
    """Skip clips whose model output would have fewer frames than their transcript has characters
    (CTC cannot align them)."""
    kept = []
    for utt in utterances:
        if utt.duration * frames_per_second < len(normalize_text(utt.text)):
            report.add(utt.path, "too short for its transcript")
        else:
            kept.append(utt)
    return kept
