"""Unit tests of the small pieces whose breakage would otherwise leave the suite green: the
length-bucketed sampler, the speaker split, manifest combining, greedy CTC decoding, metrics."""
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from srcore.data import combine_manifests, split_manifest
from srcore.dataset import BucketBatchSampler
from srcore.decoding import greedy_decode
from srcore.manifest import read_manifest
from srcore.metrics import error_counts, format_diff
from srcore.text import BLANK, CHAR_TO_ID


def test_sampler_batches_similar_lengths_and_covers_every_clip_once():
    rng = np.random.default_rng(0)
    durations = list(rng.uniform(0.5, 20, size=1000))
    sampler = BucketBatchSampler(durations, batch_size=16, seed=1, pool_batches=10)
    batches = sampler.batches()
    assert sorted(i for b in batches for i in b) == list(range(1000))
    spread = np.mean([max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches])
    assert spread < 2.0  # sorted within pools: a random batch spreads over ~18 s
    assert batches == BucketBatchSampler(durations, 16, seed=1, pool_batches=10).batches()
    sampler.set_epoch(1)
    assert sampler.batches() != batches  # a new order each epoch


def test_sampler_skip_resumes_mid_epoch_and_ranks_share_the_batches():
    durations = [1.0 + i % 7 for i in range(100)]
    whole = [list(b) for b in BucketBatchSampler(durations, 8, seed=2)]
    resumed = BucketBatchSampler(durations, 8, seed=2)
    resumed.set_epoch(0, skip=3)
    assert list(resumed) == whole[3:]
    ranks = [BucketBatchSampler(durations, 8, seed=2, rank=r, num_replicas=2).batches() for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) and not {tuple(b) for b in ranks[0]} & {tuple(b) for b in ranks[1]}


def test_sampler_buckets_by_the_lengths_of_each_epoch():
    """Augmentation lengthens some clips and not others, differently each epoch: batches are formed
    from that epoch's lengths, as the loader will produce them."""
    def durations_of(epoch):
        return [1.0 + (i * (epoch + 3)) % 17 for i in range(200)]

    def spread(batches, durations):
        return np.mean([max(durations[i] for i in b) - min(durations[i] for i in b) for b in batches])

    sampler = BucketBatchSampler(durations_of, 8, seed=3)
    for epoch, other in ((0, 1), (1, 0)):
        sampler.set_epoch(epoch)
        batches = sampler.batches()
        assert sorted(i for b in batches for i in b) == list(range(200))
        assert spread(batches, durations_of(epoch)) < 1 < 3 < spread(batches, durations_of(other))


def test_training_items_are_as_long_as_the_sampler_planned(tmp_path):
    from srcore.config import WaveAugmentConfig
    from srcore.dataset import SpeechDataset
    from srcore.features import FeatureConfig
    from srcore.manifest import Utterance

    utterances = []
    for i, seconds in enumerate((0.5, 1.0, 2.0)):
        t = np.arange(int(16000 * seconds)) / 16000
        sf.write(tmp_path / f"{i}.wav", (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000)
        utterances.append(Utterance(str(tmp_path / f"{i}.wav"), "a", seconds))
    features = FeatureConfig()
    dataset = SpeechDataset(utterances, features, WaveAugmentConfig(margin_prob=0.5, speed_prob=0.8), seed=1)
    for epoch in range(4):
        planned = dataset.planned_seconds(epoch)
        frames = [dataset[(i, epoch)][0].shape[-1] for i in range(3)]
        assert frames == pytest.approx([s * features.sample_rate / features.hop_length for s in planned], abs=2)
    assert len({tuple(dataset.planned_seconds(epoch)) for epoch in range(4)}) > 1


def test_sampler_caps_the_audio_in_a_batch():
    durations = [10.0] * 10 + [1.0] * 10
    batches = BucketBatchSampler(durations, 10, shuffle=False, max_batch_seconds=30).batches()
    assert all(max(durations[i] for i in b) * len(b) <= 30 for b in batches)


@pytest.fixture
def speakers_manifest(tmp_path):
    sf.write(tmp_path / "a.wav", np.full(1600, 0.1, np.float32), 16000)
    rows = [{"key": "a.wav", "text": f"word {i}", "speaker": f"s{i % 5}"} for i in range(50)]
    (tmp_path / "all.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path / "all.jsonl"


def test_split_holds_out_whole_speakers(speakers_manifest, tmp_path):
    split_manifest(speakers_manifest, tmp_path / "out", valid_fraction=0.2, seed=0)
    train = read_manifest(tmp_path / "out" / "train.jsonl")
    valid = read_manifest(tmp_path / "out" / "valid.jsonl")
    assert len(train) + len(valid) == 50 and len(valid) == 10
    assert not {u.speaker for u in train} & {u.speaker for u in valid}
    split_manifest(speakers_manifest, tmp_path / "named", valid_speakers=["s3"])
    assert {u.speaker for u in read_manifest(tmp_path / "named" / "valid.jsonl")} == {"s3"}


def test_combine_repeats_and_concatenates(speakers_manifest, tmp_path):
    summary = combine_manifests([speakers_manifest, f"{speakers_manifest}@3"], tmp_path / "c.jsonl")
    assert summary["rows"] == 200 and len(read_manifest(tmp_path / "c.jsonl")) == 200


def peaky(text: str, repeat: int = 3) -> torch.Tensor:
    """Log-probabilities that spell `text`, each character held `repeat` frames, blanks between."""
    frames = []
    for c in text:
        frames += [CHAR_TO_ID[c]] * repeat + [BLANK]
    log_probs = torch.full((len(frames), BLANK + 1), -20.0)
    log_probs[torch.arange(len(frames)), torch.tensor(frames)] = 0.0
    return log_probs


def test_greedy_decoding_collapses_repeats_and_keeps_doubled_letters():
    assert greedy_decode(peaky("hello  world")) == "hello world"
    assert greedy_decode(peaky("abc"), length=4) == "a"  # frames past the length are ignored


def test_error_counts_and_diff():
    counts = error_counts("the cat sat", "the hat sat down")
    assert (counts.word_errors, counts.words) == (2, 3)
    assert (counts.substitutions, counts.deletions, counts.insertions) == (1, 0, 1)
    total = counts + error_counts("a big dog ran", "a dog") + error_counts("", "oh no")
    assert (total.substitutions, total.deletions, total.insertions) == (1, 2, 3)
    assert total.word_errors == 6 and total.words == 7
    assert total.kinds() == {"sub": 1 / 7, "del": 2 / 7, "ins": 3 / 7}
    assert format_diff("the cat sat", "the hat sat") == "the (cat->hat) sat"


def test_error_counts_squeeze_whitespace_as_words_are_counted():
    assert error_counts(" the cat ", "the cat") == error_counts("the cat", "the cat")
    spaced = error_counts("the  cat", "the cat")
    assert (spaced.word_errors, spaced.char_errors, spaced.chars) == (0, 0, 7)


def test_validation_batches_cover_every_clip_across_ranks():
    durations = [1.0] * 23  # 3 batches of 8: an uneven share for 2 ranks
    shares = [BucketBatchSampler(durations, 8, shuffle=False, rank=r, num_replicas=2, even=False).batches()
              for r in (0, 1)]
    assert sorted(i for share in shares for b in share for i in b) == list(range(23))
