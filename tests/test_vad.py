"""Speech regions (srcore.vad) and how the recognizer decodes only them."""
import numpy as np
import pytest
import torch
from conftest import SAMPLE_RATE, speak

from srcore.text import BLANK, CHAR_TO_ID
from srcore.transcribe import Recognizer
from srcore.vad import MARGIN_S, speech_regions

RNG = np.random.default_rng(0)


def hiss(seconds: float, level: float = 1e-4) -> np.ndarray:
    """Room noise: white noise far below speech (-80 dBFS by default)."""
    return (RNG.standard_normal(int(seconds * SAMPLE_RATE)) * level).astype(np.float32)


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def regions_s(*pieces) -> list[tuple[float, float]]:
    wave = torch.from_numpy(np.concatenate(pieces))
    return [(start / SAMPLE_RATE, end / SAMPLE_RATE) for start, end in speech_regions(wave, SAMPLE_RATE)]


def test_the_speech_is_found_with_a_margin_each_side():
    [(start, end)] = regions_s(hiss(2.0), tone(0.5), hiss(3.0))
    assert start == pytest.approx(2.0 - MARGIN_S, abs=0.03)
    assert end == pytest.approx(2.5 + MARGIN_S, abs=0.04)


def test_a_long_pause_splits_the_speech_and_a_short_one_does_not():
    assert len(regions_s(hiss(1.0), tone(0.5), hiss(2.0), tone(0.5), hiss(1.0))) == 2
    assert len(regions_s(hiss(1.0), tone(0.5), hiss(0.4), tone(0.5), hiss(1.0))) == 1


@pytest.mark.parametrize("wave", [np.zeros(SAMPLE_RATE, np.float32), hiss(1.0, 0.05), np.zeros(0, np.float32)],
                         ids=["digital silence", "steady noise", "empty"])
def test_nothing_standing_out_is_one_region_of_everything(wave):
    assert speech_regions(torch.from_numpy(wave), SAMPLE_RATE) == [(0, len(wave))]


def silence(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


def region_transcripts(recognizer: Recognizer, wave: np.ndarray) -> list:
    """Each speech region of `wave` transcribed on its own, with its start in seconds."""
    return [(start / SAMPLE_RATE, recognizer.transcribe(wave[start:end], SAMPLE_RATE))
            for start, end in speech_regions(torch.from_numpy(wave), SAMPLE_RATE)]


def test_only_the_speech_is_decoded_and_the_timeline_is_the_inputs(trained_model):
    # The tiny model knows its four clips exactly as recorded, so the test compares the whole
    # input's transcript with its speech region's, not with the word (dev-real: bench/robustness.py).
    recognizer = Recognizer.load(trained_model)
    wave = np.concatenate([silence(3.0), speak("stop"), silence(3.0)])
    result = recognizer.transcribe(wave, SAMPLE_RATE)
    [(start_s, alone)] = region_transcripts(recognizer, wave)
    assert start_s == pytest.approx(3.0 - MARGIN_S, abs=0.02)
    assert result.text == alone.text and result.text
    frames_per_s = 1 / result.frame_s
    assert result.log_probs.shape[0] == pytest.approx(len(wave) / SAMPLE_RATE * frames_per_s, abs=1)
    first = round(start_s * frames_per_s)
    assert torch.equal(result.log_probs[first:first + len(alone.log_probs)], alone.log_probs)
    quiet = torch.cat([result.log_probs[:first], result.log_probs[first + len(alone.log_probs):]])
    assert bool((quiet.argmax(-1) == BLANK).all()) and float(quiet[:, BLANK].min()) == 0.0
    assert [w.word for w in result.words] == [w.word for w in alone.words]
    assert result.words[0].start == pytest.approx(start_s + alone.words[0].start, abs=result.frame_s)


def test_words_either_side_of_a_pause_stay_apart(trained_model):
    recognizer = Recognizer.load(trained_model)
    wave = np.concatenate([silence(0.5), speak("yes"), silence(2.5), speak("go"), silence(0.5)])
    result = recognizer.transcribe(wave, SAMPLE_RATE)
    pieces = region_transcripts(recognizer, wave)
    assert len(pieces) == 2 and all(alone.text for _, alone in pieces)
    assert result.text == " ".join(alone.text for _, alone in pieces)
    assert result.words[-1].start >= pieces[1][0]
    between = result.log_probs[round(pieces[0][0] / result.frame_s) + len(pieces[0][1].log_probs):
                               round(pieces[1][0] / result.frame_s)]
    assert int((between.argmax(-1) == CHAR_TO_ID[" "]).sum()) == 1  # a certain word boundary


def test_keep_silence_lets_the_model_read_everything(trained_model):
    wave = np.concatenate([silence(3.0), speak("stop"), silence(3.0)])
    whole = Recognizer.load(trained_model, keep_silence=True).transcribe(wave, SAMPLE_RATE)
    regions = Recognizer.load(trained_model).transcribe(wave, SAMPLE_RATE)
    assert whole.log_probs.shape == regions.log_probs.shape
    assert not torch.equal(whole.log_probs[:50], regions.log_probs[:50])  # the model's own frames


def padded_take(tmp_path):
    from srcore.audio import write_audio
    from srcore.manifest import Utterance
    word = speak("go")
    path = tmp_path / "take.wav"
    write_audio(path, np.concatenate([silence(2.0), word, silence(2.0)]), SAMPLE_RATE)
    return [Utterance(str(path), "go", 4.0 + len(word) / SAMPLE_RATE)], word


def test_a_take_can_lose_its_silence_before_training(tmp_path):
    from srcore.dataset import SpeechDataset
    from srcore.features import FeatureConfig
    take, word = padded_take(tmp_path)
    whole = SpeechDataset(take, FeatureConfig())[(0, 0)][0]
    trimmed = SpeechDataset(take, FeatureConfig(), trim_silence=True)[(0, 0)][0]
    frames_per_s = SAMPLE_RATE / FeatureConfig().hop_length
    assert whole.shape[-1] == pytest.approx((4.0 + len(word) / SAMPLE_RATE) * frames_per_s, abs=2)
    assert trimmed.shape[-1] == pytest.approx((len(word) / SAMPLE_RATE + 2 * MARGIN_S) * frames_per_s, abs=8)


def test_training_reads_its_clips_as_the_recognizer_does(tmp_path):
    """A run trims training and validation clips to their speech unless told not to; a run stored
    before the option existed did not."""
    from srcore.config import TrainConfig, as_stored_then
    from srcore.manifest import write_manifest
    from srcore.train import make_loaders, sized_preset
    take, word = padded_take(tmp_path)
    manifest = tmp_path / "takes.jsonl"
    write_manifest(take, manifest)
    frames = {}
    for trim in (True, False):
        cfg = TrainConfig(train=str(manifest), valid=str(manifest), model="tiny", workers=0, augment=False,
                          trim_silence=trim)
        _, train_loader, valid_loader, _ = make_loaders(cfg, sized_preset(cfg), 0, 1, torch.device("cpu"))
        frames[trim] = [train_loader.dataset[(0, 0)][0].shape[-1], valid_loader.dataset[(0, 0)][0].shape[-1]]
    assert frames[True][0] == frames[True][1] < frames[False][0] / 2
    assert TrainConfig().trim_silence and as_stored_then(TrainConfig, {"train": "t.jsonl"})["trim_silence"] is False
