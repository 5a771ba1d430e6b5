"""Audio input hardening: bounded memory for odd sample rates and compressed-audio bombs, header
limits, non-finite samples, truncated files and silence. Memory is measured in a subprocess as
the peak RSS (ru_maxrss) above the peak after imports and a warm-up."""
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio

from srcore import audio
from srcore.audio import AudioError, is_silent, read_audio, resampler, to_model_rate

RATE = 16000
ROOT = Path(__file__).resolve().parent.parent
MB = 2 ** 20

PEAK_RSS = textwrap.dedent("""
    import json, resource, sys
    import numpy as np
    from srcore import audio
    def peak_mb():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    audio.to_model_rate(np.zeros(4800, np.float32), 48000, 16000)  # warm-up: torch's conv code
    base = peak_mb()
    what, arg, limit = sys.argv[1], sys.argv[2], sys.argv[3]
    try:
        if what == "rate":
            rate = int(arg)
            samples = np.random.default_rng(0).uniform(-0.5, 0.5, rate // 2).astype(np.float32)
            result = int(audio.to_model_rate(samples, rate, 16000).numel())
        else:
            result = int(audio.read_audio(arg, 16000, float(limit) if limit else None).numel())
    except audio.AudioError as exc:
        result = str(exc)
    print(json.dumps({"extra_mb": peak_mb() - base, "result": result}))
""")


def peak_rss(what: str, arg, limit=None) -> dict:
    """{"extra_mb": peak RSS growth, "result": samples out or the AudioError message}."""
    done = subprocess.run([sys.executable, "-c", PEAK_RSS, what, str(arg), str(limit or "")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def noise(seconds: float, rate: int = RATE, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * rate)).astype(np.float32)


# --------------------------------------------------------------------------- 1. odd sample rates

@pytest.mark.parametrize("rate", [15991, 7793])
def test_odd_rate_resampling_memory_is_bounded(rate):
    """torchaudio's kernel for coprime rates is (16000, 1, ~rate) floats: gigabytes."""
    measured = peak_rss("rate", rate)
    assert measured["extra_mb"] < 200, measured
    expected = rate // 2 * RATE / rate
    assert abs(measured["result"] - expected) <= 0.001 * expected + 1  # <0.1 % tempo error


def test_common_rates_resample_exactly_as_torchaudio():
    x = torch.from_numpy(noise(1.3, 44100))
    for orig, new in ((44100, RATE), (8000, RATE), (22050, RATE), (RATE, 8000), (14400, RATE)):
        x = torch.from_numpy(noise(1.3, orig, seed=orig))
        expected = torchaudio.functional.resample(x, orig, new)
        got = resampler(orig, new)(x)
        assert got.shape == expected.shape
        assert torch.allclose(got, expected, atol=1e-5), (orig, new)
    batch = torch.stack([x, 2 * x])  # (..., time) like torchaudio
    assert torch.allclose(resampler(RATE, 8000)(batch)[1], 2 * resampler(RATE, 8000)(x), atol=1e-5)
    assert torch.equal(to_model_rate(x.numpy(), RATE, RATE), x)


def test_long_input_resamples_in_chunks_with_the_same_result():
    x = torch.from_numpy(noise(9.0, 44100))
    assert torch.allclose(resampler(44100, RATE)(x), torchaudio.functional.resample(x, 44100, RATE),
                          atol=1e-5)


def test_kernel_cache_is_bounded_in_bytes():
    for rate in range(15900, 16100, 7):  # many odd rates, each its own plan
        resampler(rate, RATE)(torch.zeros(200))
    assert 0 < audio.kernel_cache_bytes() <= audio.KERNEL_CACHE_BYTES


# --------------------------------------------------------------------------- 2. compressed bombs

def write_bomb(path: Path, seconds: int, rate: int = 192000, channels: int = 8) -> Path:
    """Silence at a high rate with many channels: a tiny FLAC that decodes to gigabytes."""
    block = np.zeros((rate, channels), np.int16)
    with sf.SoundFile(str(path), "w", rate, channels, subtype="PCM_16", format="FLAC") as f:
        for _ in range(seconds):
            f.write(block)
    return path


def test_flac_bomb_is_refused_from_its_header_or_decoded_in_bounded_memory(tmp_path):
    bomb = write_bomb(tmp_path / "bomb.flac", 60)
    assert bomb.stat().st_size < 300_000  # 60 s x 192 kHz x 8 channels: 368 MB as float32
    refused = peak_rss("read", bomb, limit=30)
    assert "bomb.flac" in refused["result"] and "30" in refused["result"], refused
    assert refused["extra_mb"] < 50, refused
    decoded = peak_rss("read", bomb)  # no caller limit: blocks mixed down as they come
    assert decoded["result"] == 60 * RATE, decoded
    assert decoded["extra_mb"] < 120, decoded


def test_a_flac_whose_header_gives_no_length_says_so(tmp_path):
    path = tmp_path / "streamed.flac"
    sf.write(path, np.full(16000, 0.1, np.float32), 16000)
    data = bytearray(path.read_bytes())  # STREAMINFO's 36-bit sample count, at byte 18, set to 0
    field = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(data)
    with pytest.raises(AudioError, match="streamed.flac: the header does not give the audio's length"):
        read_audio(path, 16000)


def test_header_limits_on_rate_and_channels(tmp_path):
    many = tmp_path / "many.wav"
    sf.write(many, np.zeros((1600, 8), np.float32), RATE)
    with pytest.raises(AudioError, match=r"many\.wav.*8 channels"):
        read_audio(many, RATE, max_channels=2)
    assert read_audio(many, RATE).shape == (1600,)
    fast = tmp_path / "fast.wav"
    sf.write(fast, np.zeros(9600, np.float32), 96000)
    with pytest.raises(AudioError, match=r"fast\.wav.*96000 Hz"):
        read_audio(fast, RATE, max_rate=48000)
    with pytest.raises(AudioError, match=r"fast\.wav.*lasts 0\.10 s.*0\.05 s"):
        read_audio(fast, RATE, max_seconds=0.05)


def test_stereo_is_mixed_down_and_resampled(tmp_path):
    left, right = noise(1.0, 44100, 1), noise(1.0, 44100, 2)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="PCM_24")
    mixed = torchaudio.functional.resample(torch.from_numpy((left + right) / 2), 44100, RATE)
    assert torch.allclose(read_audio(path, RATE), mixed, atol=1e-4)


# --------------------------------------------------------------------------- 3. non-finite audio

@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused(tmp_path, bad):
    samples = noise(0.5)
    samples[1234] = bad
    path = tmp_path / "server-tmp-dir" / "nan.wav"
    path.parent.mkdir()
    sf.write(path, samples, RATE, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"^nan\.wav: .*non-finite") as caught:
        read_audio(path, RATE)
    assert "server-tmp-dir" not in str(caught.value)
    with pytest.raises(AudioError, match="non-finite"):
        to_model_rate(samples, RATE, RATE)
    with pytest.raises(AudioError, match="non-finite"):
        to_model_rate(samples, 44100, RATE)


def test_non_finite_audio_is_a_value_error_the_loaders_skip():
    assert issubclass(AudioError, ValueError)


# --------------------------------------------------------------------------- 4. truncated, silent

def truncated(tmp_path: Path, name: str, subtype: str, keep: float = 0.5) -> Path:
    full = tmp_path / f"full-{name}"
    sf.write(full, noise(3.0), RATE, subtype=subtype)
    data = full.read_bytes()
    cut = tmp_path / "upload-tmp" / name
    cut.parent.mkdir(exist_ok=True)
    cut.write_bytes(data[:int(len(data) * keep)])
    return cut


@pytest.mark.parametrize("name,subtype", [("cut.wav", "PCM_16"), ("cut.flac", "PCM_16"),
                                          ("cut.ogg", "VORBIS"), ("cut.mp3", "MPEG_LAYER_III")])
def test_truncated_file_is_an_error_not_its_first_part(tmp_path, name, subtype):
    if name.endswith(".mp3") and "MP3" not in sf.available_formats():
        pytest.skip("this libsndfile has no MP3")
    path = truncated(tmp_path, name, subtype)
    with pytest.raises(AudioError, match=rf"^{name.replace('.', '[.]')}: .*truncated") as caught:
        read_audio(path, RATE)
    assert "upload-tmp" not in str(caught.value)


def test_whole_files_still_decode(tmp_path):
    for name, subtype in (("ok.wav", "PCM_16"), ("ok.flac", "PCM_16"), ("ok.ogg", "VORBIS")):
        sf.write(tmp_path / name, noise(3.0), RATE, subtype=subtype)
        assert read_audio(tmp_path / name, RATE).shape == (3 * RATE,)


def test_silent_file_decodes_to_zeros_and_is_silent(tmp_path):
    path = tmp_path / "quiet.wav"
    sf.write(path, np.zeros(RATE, np.float32), 8000)
    wave = read_audio(path, RATE)
    assert wave.shape == (2 * RATE,) and not wave.any()
    assert is_silent(wave) and is_silent(torch.zeros(0)) and is_silent(np.full(100, 1e-4))
    assert not is_silent(torch.from_numpy(noise(0.1)))
    assert not is_silent(np.full(100, 0.01), peak=1e-3) and is_silent(np.full(100, 0.01), peak=0.1)


def test_errors_name_the_file_not_its_folder(tmp_path):
    folder = tmp_path / "gradio-tmp-9f8e7d"
    folder.mkdir()
    fake = folder / "notes.wav"
    fake.write_text("this is a text file")
    for path, problem in ((fake, "unreadable"), (folder / "gone.wav", "no such file")):
        with pytest.raises(AudioError, match=rf"^{path.name}: .*{problem}") as caught:
            read_audio(path, RATE)
        assert "gradio-tmp-9f8e7d" not in str(caught.value)
    empty = folder / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), RATE)
    with pytest.raises(AudioError, match=r"^empty\.wav: empty audio"):
        read_audio(empty, RATE)
