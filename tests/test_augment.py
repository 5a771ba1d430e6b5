import numpy as np
import pytest
import torch

from srcore.augment import (
    CODECS,
    SPEED_FACTORS,
    WaveAugmentConfig,
    augment_wave,
    clip,
    codec,
    colored_noise,
    device_response,
    draw_length_plan,
    pad_margins,
    reverberate,
    room_impulse,
    through_device,
)

RATE = 16000


def tone(seconds=1.0):
    t = torch.arange(int(RATE * seconds), dtype=torch.float32) / RATE
    return 0.3 * torch.sin(2 * torch.pi * 440 * t) * torch.sin(2 * torch.pi * 3 * t)


@pytest.mark.parametrize("name", sorted(CODECS))
def test_codec_round_trip_keeps_length_and_signal(name):
    wave = tone()
    out = codec(wave, RATE, name, np.random.default_rng(0))
    assert out.shape == wave.shape and torch.isfinite(out).all()
    relative_error = float((out - wave).pow(2).mean() / wave.pow(2).mean())
    assert 0 < relative_error < 0.1  # changed by the codec, still the same signal, not shifted


@pytest.mark.parametrize("rate", [11025, 22050, 44100])
def test_opus_codes_a_clip_at_a_rate_opus_does_not_have(rate):
    wave = torch.nn.functional.interpolate(tone()[None, None], scale_factor=rate / RATE)[0, 0]
    out = codec(wave, rate, "opus", np.random.default_rng(0))  # runs at the next Opus rate up
    assert out.shape == wave.shape and torch.isfinite(out).all()


def test_gsm_removes_what_a_telephone_cannot_carry():
    t = torch.arange(RATE, dtype=torch.float32) / RATE
    high = 0.3 * torch.sin(2 * torch.pi * 6000 * t)  # above the 4 kHz of an 8 kHz channel
    out = codec(high, RATE, "gsm", np.random.default_rng(0))
    assert out.pow(2).mean() < 0.01 * high.pow(2).mean()


def test_clip_saturates_at_the_level():
    wave = tone()
    out = clip(wave, 0.5)
    assert float(out.abs().max()) == pytest.approx(0.5 * float(wave.abs().max()))


def test_augmentation_is_drawn_from_the_generator():
    config = WaveAugmentConfig(codec_prob=1.0, clip_prob=1.0, reverb_prob=1.0, device_prob=1.0)
    a = augment_wave(tone(), RATE, np.random.default_rng(3), config)
    b = augment_wave(tone(), RATE, np.random.default_rng(3), config)
    c = augment_wave(tone(), RATE, np.random.default_rng(4), config)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_margins_put_silence_of_the_drawn_lengths_around_the_clip():
    wave = tone() + 0.1  # no zero sample: the first non-zero one is where the clip begins
    out = pad_margins(wave, RATE, 0.5, 0.75)
    before = int((out != 0).nonzero()[0])
    assert before == RATE // 2 and out.numel() - before - wave.numel() == RATE * 3 // 4
    assert torch.equal(out[before:before + wave.numel()], wave) and out[:before].abs().max() == 0
    only_margins = WaveAugmentConfig(margin_prob=1.0, speed_prob=0.0, noise_prob=0.0, codec_prob=0.0,
                                     clip_prob=0.0, reverb_prob=0.0, device_prob=0.0, gain_db=(0.0, 0.0))
    margins = [augment_wave(wave, RATE, np.random.default_rng(seed), only_margins).numel() - wave.numel()
               for seed in range(5)]
    assert all(0.2 * RATE <= m <= 3 * RATE for m in margins) and len(set(margins)) == 5


def test_the_length_plan_says_how_long_the_clip_comes_out():
    config = WaveAugmentConfig(margin_prob=1.0, speed_prob=1.0, reverb_prob=1.0, device_prob=1.0,
                               noise_prob=1.0, codec_prob=1.0)
    wave = tone()
    for seed in range(6):
        plan = draw_length_plan(np.random.default_rng(seed), config)
        assert plan.before_s > 0 and plan.after_s > 0
        out = augment_wave(wave, RATE, np.random.default_rng(100 + seed), config, plan)
        assert out.numel() == pytest.approx(plan.seconds(wave.numel() / RATE) * RATE, abs=2)
    assert {draw_length_plan(np.random.default_rng(s), config).speed for s in range(30)} == set(SPEED_FACTORS)


def test_frequency_warp_moves_a_tone_up_or_down():
    from srcore.features import FeatureConfig, LogMel
    logmel = LogMel(FeatureConfig(normalize=False))
    t = torch.arange(RATE, dtype=torch.float32) / RATE
    tone = torch.sin(2 * torch.pi * 1000 * t)
    peak = {warp: int(logmel(tone, warp).mean(-1).argmax()) for warp in (0.88, 1.0, 1.12)}
    assert peak[0.88] < peak[1.0] < peak[1.12]
    assert torch.equal(logmel(tone, 1.0), logmel(tone))


def test_warp_draws_stay_in_range_and_on_steps():
    from srcore.augment import draw_warp
    config = WaveAugmentConfig(warp_prob=0.5)
    warps = [draw_warp(np.random.default_rng(i), config) for i in range(200)]
    assert 60 < warps.count(1.0) < 140
    assert all(0.88 <= w <= 1.12 and round(w, 2) == w for w in warps)


@pytest.mark.parametrize("exponent", [0.0, 1.0, 2.0])
def test_colored_noise_has_its_spectral_slope_and_unit_level_at_any_length(exponent):
    n = 48_017  # prime: the noise is shaped over a power of two and cut
    noise = colored_noise(np.random.default_rng(0), n, exponent)
    assert noise.shape == (n,) and noise.dtype == np.float32
    assert np.sqrt(np.mean(noise.astype(np.float64) ** 2)) == pytest.approx(1.0, rel=1e-3)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(n)
    edges = np.geomspace(1e-3, 0.5, 12)  # log-spaced bands, averaged: a smooth estimate
    centres, levels = [], []
    for low, high in zip(edges[:-1], edges[1:]):
        band = (freqs >= low) & (freqs < high)
        centres.append(np.log10(np.sqrt(low * high)))
        levels.append(np.log10(power[band].mean()))
    slope = np.polyfit(centres, levels, 1)[0]
    assert slope == pytest.approx(-exponent, abs=0.2)


@pytest.mark.parametrize("rt60", [0.2, 0.7])
def test_room_impulse_is_direct_sound_then_a_decaying_tail(rt60):
    impulse = room_impulse(np.random.default_rng(0), RATE, rt60)
    assert impulse[0] == 1.0 and np.abs(impulse[1:]).max() < 1.0
    tail_energy = float(np.sum(impulse[1:] ** 2))
    assert 10 ** -1.2 <= tail_energy <= 1.0  # direct-to-reverberant ratio 0 to 12 dB
    tenth = RATE // 20  # 50 ms windows: each later one quieter; 60 dB down by rt60
    energy = [float(np.sum(impulse[i:i + tenth] ** 2)) for i in range(tenth, len(impulse) - tenth, tenth)]
    assert all(later < earlier for earlier, later in zip(energy, energy[1:]))
    assert 10 * np.log10(energy[-1] / energy[0]) < -60 * (len(energy) - 1) * 0.05 / rt60 * 0.7


def test_reverberation_smears_a_click_and_keeps_length_and_level():
    click = torch.zeros(RATE)
    click[1000] = 1.0
    out = reverberate(click, room_impulse(np.random.default_rng(1), RATE, 0.5))
    assert out.shape == click.shape and int(out.abs().argmax()) == 1000  # not shifted
    assert float(out[:1000].abs().max()) < 1e-6 and float(out[3000:].abs().max()) > 1e-3  # echoes after only
    assert float(out.pow(2).mean()) == pytest.approx(float(click.pow(2).mean()), rel=1e-3)


def test_device_response_cuts_bass_and_treble_beyond_speech():
    freqs = np.array([20.0, 1000.0, 16000.0])
    db = np.mean([20 * np.log10(device_response(np.random.default_rng(i), freqs)) for i in range(50)], axis=0)
    assert db[0] < db[1] - 12 and db[2] < db[1] - 6


def test_through_device_keeps_length_and_level_and_changes_the_tone_balance():
    t = torch.arange(RATE, dtype=torch.float32) / RATE
    wave = torch.sin(2 * torch.pi * 30 * t) + torch.sin(2 * torch.pi * 1000 * t)
    out = through_device(wave, RATE, np.random.default_rng(0))
    assert out.shape == wave.shape
    assert float(out.pow(2).mean()) == pytest.approx(float(wave.pow(2).mean()), rel=1e-3)
    spectrum = torch.fft.rfft(out).abs()
    assert spectrum[30] < 0.5 * spectrum[1000]  # the 30 Hz hum is below every simulated low cut


def test_libopus_round_trip_is_lossy_and_time_aligned():
    from srcore import opus
    libopus = opus.load()
    if libopus is None:
        pytest.skip("libopus is not installed (augmentation uses libsndfile's Opus)")
    from conftest import speak
    speech = speak("the quick brown fox jumps over the lazy dog")
    speech = (0.5 * speech / np.abs(speech).max()).astype(np.float32)
    out = libopus.round_trip(speech, RATE, 24_000, 5)
    assert out.shape == speech.shape
    lags = range(-100, 101)
    match = [float(np.dot(speech[200:-200], np.roll(out, lag)[200:-200])) for lag in lags]
    assert lags[int(np.argmax(match))] == 0
    snr_db = 10 * np.log10(np.sum(speech ** 2) / np.sum((speech - out) ** 2))
    assert 5 < snr_db < 40
    with pytest.raises(opus.OpusError, match="22050 Hz"):
        libopus.round_trip(speech, 22050, 24_000, 5)


def test_opus_falls_back_to_libsndfile_without_libopus(monkeypatch):
    from srcore import augment
    monkeypatch.setattr(augment.opus, "load", lambda: None)
    wave = tone()
    out = codec(wave, RATE, "opus", np.random.default_rng(0))
    assert out.shape == wave.shape
    assert 0 < float((out - wave).pow(2).mean() / wave.pow(2).mean()) < 0.1
