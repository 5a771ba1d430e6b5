"""Training data: utterances -> features and targets, length-bucketed batches, collation."""
import logging
import random
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import AudioError, is_silent, read_audio
from .augment import LengthPlan, WaveAugmentConfig, augment_wave, draw_length_plan, draw_warp
from .features import FeatureConfig, LogMel
from .manifest import SkipReport, Utterance
from .text import encode, normalize_text
from .vad import speech_span

log = logging.getLogger(__name__)
LENGTH_STREAM = 1  # the random stream of a clip's length plan, apart from its other effects


@contextmanager
def one_thread():
    """Hold torch at one intra-op thread. Per-clip ops (resampling, a short STFT) are too small to
    gain from more, and on a busy machine every multi-threaded op waits until all its threads have
    been scheduled: milliseconds for a microsecond's work."""
    threads = torch.get_num_threads()
    if threads > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if threads > 1:
            torch.set_num_threads(threads)


class SpeechDataset(Dataset):
    """Items are (index, epoch) pairs so that augmentation is a pure function of seed, epoch and
    utterance: a resumed run sees exactly the audio an uninterrupted one would.

    `cache(max_mb)` decodes every clip once and keeps it in memory (the waveform at the model's rate
    when items are augmented, else the finished features), so later epochs skip the file read,
    resampling and, without augmentation, the log-mel. Items are identical with and without it.
    `trim_silence`: each clip loses the silence before and after its speech (srcore.vad), as the
    recognizer reads it (training's default, TrainConfig.trim_silence; a speaker's takes always).
    """

    def __init__(self, utterances: list[Utterance], features: FeatureConfig,
                 augment: WaveAugmentConfig | None = None, seed: int = 0, trim_silence: bool = False):
        self.utterances = utterances
        self.trim_silence = trim_silence
        self.features = features
        self.logmel = LogMel(features)
        self.augment = augment
        self.seed = seed
        self.targets = [encode(u.text) for u in utterances]
        self.texts = [normalize_text(u.text) for u in utterances]
        self.cached = ""  # "", "wave" or "feats"
        self.unreadable: set[str] = set()  # clips that failed to decode (named in the log once)
        self._store = None  # all cached clips concatenated along their last axis
        self._offsets = None  # numpy int64 (n + 1,); a clip that failed to read has length 0

    def __len__(self):
        return len(self.utterances)

    @property
    def augmenting(self) -> bool:
        return self.augment is not None and self.augment.enabled

    def length_plan(self, index: int, epoch: int) -> LengthPlan:
        """The margins and speed clip `index` gets in `epoch`: a stream of its own, so the batch
        sampler can know the lengths before any clip is read."""
        if not self.augmenting:
            return LengthPlan()
        return draw_length_plan(np.random.default_rng([self.seed, epoch, index, LENGTH_STREAM]),
                                self.augment)

    def planned_seconds(self, epoch: int) -> list[float]:
        """Every clip's duration in `epoch` as the model will hear it (before trimming): what
        training batches are bucketed by, so that a clip given margins waits among long ones."""
        return [self.length_plan(index, epoch).seconds(utt.duration)
                for index, utt in enumerate(self.utterances)]

    def cache_bytes(self) -> int:
        """Memory that cache() would take, estimated from the manifest durations."""
        seconds = sum(u.duration for u in self.utterances)
        per_second = (self.features.sample_rate if self.augmenting
                      else self.features.n_mels * self.features.sample_rate / self.features.hop_length)
        return int(seconds * per_second * 4 * 1.02) + 1

    def cache(self, max_mb: float) -> str:
        """Decode every clip into memory if that takes at most max_mb; returns what was cached."""
        if max_mb <= 0 or self.cache_bytes() > max_mb * 2 ** 20:
            return ""
        kind = "wave" if self.augmenting else "feats"
        with one_thread():
            pieces = [self._decode_or_hole(utt.path, kind) for utt in self.utterances]
        lengths = [piece.shape[-1] for piece in pieces]
        self._store = torch.cat(pieces, dim=-1).contiguous()
        self._offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        self.cached = kind
        log.info("cached %s of %d clips in memory (%.0f MB)", "waveforms" if kind == "wave"
                 else "features", len(pieces), self._store.numel() * 4 / 2 ** 20)
        return kind

    def _decode_or_hole(self, path: str, kind: str) -> torch.Tensor:
        try:
            return self._decode(path, kind)
        except AudioError as exc:  # kept as an empty hole: the item stays None, as it would uncached
            self._skip(path, exc)
            return torch.zeros(0) if kind == "wave" else torch.zeros(self.features.n_mels, 0)

    def _skip(self, path: str, exc: AudioError) -> None:
        if path not in self.unreadable:
            self.unreadable.add(path)
            log.warning("skipping %s: %s", path, exc)

    def _read(self, path: str) -> torch.Tensor:
        """The clip at the model's rate; AudioError if it can't be read or is silent (a silent
        clip with a transcript teaches the model to hear words in silence)."""
        wave = read_audio(path, self.features.sample_rate)
        if is_silent(wave):
            raise AudioError("the audio is silent")
        if self.trim_silence:
            start, end = speech_span(wave, self.features.sample_rate)
            wave = wave[start:end]
        return wave

    def _decode(self, path: str, kind: str) -> torch.Tensor:
        wave = self._read(path)
        if kind == "wave":
            return wave
        with torch.no_grad():
            return self.logmel(wave)

    def _cached(self, index: int) -> torch.Tensor | None:
        start, end = int(self._offsets[index]), int(self._offsets[index + 1])
        return self._store[..., start:end] if end > start else None

    def __getitems__(self, items):
        """A batch's items (the DataLoader's batched fetch), on one intra-op thread as in a loader
        process: see one_thread()."""
        with one_thread():
            return [self[item] for item in items]

    def __getitem__(self, item):
        index, epoch = item
        utt = self.utterances[index]
        if self.cached == "feats":
            feats = self._cached(index)
            if feats is None:
                return None
        else:
            try:
                wave = self._cached(index) if self.cached else self._read(utt.path)
            except AudioError as exc:  # vanished or broke after the manifest was checked
                self._skip(utt.path, exc)
                return Unreadable((utt.path,))
            if wave is None:
                return None
            warp = 1.0
            if self.augmenting:
                rng = np.random.default_rng([self.seed, epoch, index])
                wave = augment_wave(wave, self.features.sample_rate, rng, self.augment,
                                    self.length_plan(index, epoch))
                warp = draw_warp(rng, self.augment)
            with torch.no_grad():
                feats = self.logmel(wave, warp)
        return feats, torch.tensor(self.targets[index]), utt.duration, self.texts[index]


@dataclass(frozen=True)
class Unreadable:
    """Clips found unreadable while loading (a dataset item of one, or a batch with nothing else
    in it), so that the trainer can count them whatever process loaded them."""
    paths: tuple = ()


@dataclass
class Batch:
    feats: torch.Tensor  # (batch, n_mels, frames), zero padded
    feat_lengths: torch.Tensor
    targets: torch.Tensor  # (batch, max_target), zero padded
    target_lengths: torch.Tensor
    audio_seconds: float
    texts: list
    unreadable: tuple = ()  # paths of the clips left out of it because they could not be read

    def to(self, device) -> "Batch":
        return Batch(self.feats.to(device, non_blocking=True), self.feat_lengths,
                     self.targets.to(device, non_blocking=True), self.target_lengths,
                     self.audio_seconds, self.texts, self.unreadable)

    def pin_memory(self) -> "Batch":
        """The DataLoader's pin_memory=True calls this: page-locked tensors, so that `to`'s
        non-blocking copies to a GPU overlap with the step instead of waiting."""
        return replace(self, feats=self.feats.pin_memory(), targets=self.targets.pin_memory())


def collate(items) -> Batch | Unreadable:
    """Items -> a padded Batch; unreadable ones (None: already counted when caching; Unreadable:
    found now) are left out, and an Unreadable stands for a batch with nothing left."""
    unreadable = tuple(path for it in items if isinstance(it, Unreadable) for path in it.paths)
    items = [it for it in items if it is not None and not isinstance(it, Unreadable)]
    if not items:
        return Unreadable(unreadable)
    feats, targets, seconds, texts = zip(*items)
    lengths = torch.tensor([f.shape[-1] for f in feats])
    padded = torch.zeros(len(feats), feats[0].shape[0], int(lengths.max()))
    for i, f in enumerate(feats):
        padded[i, :, : f.shape[-1]] = f
    return Batch(padded, lengths, torch.nn.utils.rnn.pad_sequence(targets, batch_first=True),
                 torch.tensor([len(t) for t in targets]), float(sum(seconds)), list(texts), unreadable)


class BucketBatchSampler:
    """Shuffled batches of similar duration, a pure function of (seed, epoch).

    Utterances are shuffled, cut into pools of `pool_batches` batches, sorted by duration within a
    pool and batched; the batch order is shuffled again. `durations` is a list, or a function of the
    epoch that returns one (the lengths augmentation will give the clips that epoch). With
    `num_replicas` > 1 each rank takes every n-th batch (equal counts, unless `even` is False: then
    every batch is someone's). `skip` drops the first batches of the epoch for mid-epoch resume.
    """

    def __init__(self, durations: Sequence[float] | Callable[[int], Sequence[float]], batch_size: int,
                 seed: int = 0, shuffle: bool = True, rank: int = 0, num_replicas: int = 1,
                 pool_batches: int = 50, max_batch_seconds: float | None = None, even: bool = True):
        if not callable(durations):
            fixed = list(durations)
            durations = lambda _epoch: fixed  # noqa: E731 (the same lengths every epoch)
        self.durations_of = durations
        self.batch_size = batch_size
        self.seed, self.shuffle = seed, shuffle
        self.rank, self.num_replicas = rank, num_replicas
        self.pool = batch_size * pool_batches
        self.max_batch_seconds = max_batch_seconds
        self.even = even  # equal batch counts per rank (training); False: every batch (validation)
        self.epoch, self.skip = 0, 0
        self._made = (None, [])  # (epoch, its batches): planning an epoch reads every clip's plan

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.epoch, self.skip = epoch, skip

    def _split(self, indices, durations):
        batch, longest = [], 0.0
        for i in indices:
            longest = max(longest, durations[i])
            too_long = (self.max_batch_seconds is not None and batch
                        and longest * (len(batch) + 1) > self.max_batch_seconds)
            if len(batch) == self.batch_size or too_long:
                yield batch
                batch, longest = [], durations[i]
            batch.append(i)
        if batch:
            yield batch

    def batches(self) -> list[list[int]]:
        if self._made[0] != self.epoch:
            self._made = (self.epoch, self._plan_epoch())
        return self._made[1]

    def _plan_epoch(self) -> list[list[int]]:
        durations = self.durations_of(self.epoch)
        order = list(range(len(durations)))
        rng = random.Random(self.seed * 100_003 + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        batches = []
        for start in range(0, len(order), self.pool):
            pool = sorted(order[start:start + self.pool], key=lambda i: durations[i])
            batches.extend(self._split(pool, durations))
        if self.shuffle:
            rng.shuffle(batches)
        mine = batches[self.rank::self.num_replicas]
        return mine[:len(batches) // self.num_replicas] if self.even else mine

    def __len__(self):
        return len(self.batches())

    def __iter__(self):
        for batch in self.batches()[self.skip:]:
            yield [(i, self.epoch) for i in batch]


def drop_unalignable(utterances, frames_per_second: float, report: SkipReport) -> list[Utterance]:
    """Skip clips whose model output would have fewer frames than CTC needs for their transcript:
    a frame per character and a blank between each pair of repeated characters."""
    kept = []
    for utt in utterances:
        text = normalize_text(utt.text)
        needed = len(text) + sum(a == b for a, b in zip(text, text[1:]))
        if utt.duration * frames_per_second < needed:
            report.add(utt.path, "too short for its transcript")
        else:
            kept.append(utt)
    return kept
