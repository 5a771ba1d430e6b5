"""The Gradio app: handlers called directly, then the running app through gradio_client."""
import json
import os
import subprocess
import sys
import time
import types
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio
from conftest import SAMPLE_RATE, WORDS, free_port, speak

import app

REPO = Path(__file__).resolve().parent.parent


def padded(text: str, pad_s: float = 0.1) -> np.ndarray:
    silence = np.zeros(int(pad_s * SAMPLE_RATE), np.float32)
    return np.concatenate([silence, speak(text), silence])


def resampled(wave: np.ndarray, rate: int) -> np.ndarray:
    return torchaudio.functional.resample(torch.from_numpy(wave), SAMPLE_RATE, rate).numpy()


def clip_paths(word_corpus) -> dict:
    return {p.stem.split("_", 1)[1]: p for p in (word_corpus.parent / "audio").glob("*.wav")}


def sparse_wav(path: Path, seconds: float, rate: int = 8000) -> Path:
    """A valid wav header claiming `seconds` of silence, stored sparsely (no disk, no decoding)."""
    with sf.SoundFile(path, "w", rate, 1, "PCM_16") as f:
        f.write(np.zeros(rate, np.int16))
    size = path.stat().st_size + int((seconds - 1) * rate) * 2
    with open(path, "r+b") as f:
        f.truncate(size)
        f.seek(4)
        f.write((size - 8).to_bytes(4, "little"))
        f.seek(40)
        f.write((size - 44).to_bytes(4, "little"))
    return path


# ------------------------------------------------------------------ transcription handler


def test_transcribe_hears_each_word_with_timing_and_picture(trained_model, word_corpus):
    for word, path in clip_paths(word_corpus).items():
        text, info, figure = app.transcribe(str(path), app.GREEDY, 16, str(trained_model))
        assert text == word
        assert "s of audio transcribed in" in info and not info.startswith(app.WARN)
        audio_s = sf.info(str(path)).duration
        assert f"{audio_s:.2f} s of audio" in info
    heatmaps = [trace for trace in figure.data if trace.type == "heatmap"]
    assert len(heatmaps) == 2  # log-mel and per-frame character probabilities
    assert len(heatmaps[1].y) == 29 and heatmaps[1].y[-1] == "blank"
    labels = [note for note in figure.layout.annotations if note.yref == "y2 domain"]
    assert [note.text for note in labels] == [text]  # the word, above the frames it was read from
    assert 0 < labels[0].x < audio_s


def test_beam_search_decoding(trained_model, word_corpus):
    path = clip_paths(word_corpus)["stop"]
    text, info, _ = app.transcribe(str(path), app.BEAM, 8, str(trained_model), False)
    assert text == "stop" and "beam search 8" in info


@pytest.mark.parametrize("suffix,fmt", [("flac", None), ("ogg", None), ("mp3", "MP3")])
def test_compressed_formats(trained_model, tmp_path, suffix, fmt):
    path = tmp_path / f"go.{suffix}"
    sf.write(path, padded("go"), SAMPLE_RATE, format=fmt)
    assert app.transcribe(str(path), app.GREEDY, 16, str(trained_model), False)[0] == "go"


def test_96khz_stereo_upload(trained_model, tmp_path):
    wave = resampled(padded("stop"), 96000)
    path = tmp_path / "stereo96k.wav"
    sf.write(path, np.stack([wave, 0.5 * wave], axis=1), 96000, subtype="PCM_24")
    text, info, figure = app.transcribe(str(path), app.GREEDY, 16, str(trained_model))
    assert text == "stop", info
    assert figure is not None


def test_long_audio_is_chunked_not_rejected(trained_model, tmp_path, monkeypatch):
    import srcore.transcribe
    pieces = []
    def spy(wave, rate, *args):
        bounds = real_chunk_bounds(wave, rate, *args)
        pieces.extend(bounds)
        return bounds
    real_chunk_bounds = srcore.transcribe.chunk_bounds
    monkeypatch.setattr(srcore.transcribe, "chunk_bounds", spy)
    wave = np.tile(padded("go", 0.2), 60)  # about 48 s of speech without a pause to split it at:
    path = tmp_path / "long.flac"         # past CHUNK_S, far below MAX_AUDIO_S
    sf.write(path, wave, SAMPLE_RATE)
    text, info, figure = app.transcribe(str(path), app.GREEDY, 16, str(trained_model))
    assert not info.startswith(app.WARN) and text, info
    assert f"{len(wave) / SAMPLE_RATE:.2f} s of audio" in info
    assert len(pieces) >= 3 and all(end - start <= srcore.transcribe.CHUNK_S * SAMPLE_RATE for start, end in pieces)
    assert sum(end - start for start, end in pieces) >= 0.95 * len(wave)
    assert all(len(trace.x) <= app.PLOT_COLUMNS for trace in figure.data)
    assert max(trace.x[-1] for trace in figure.data) == pytest.approx(len(wave) / SAMPLE_RATE, abs=1)
    monkeypatch.setattr(app, "PLOT_MAX_S", 10.0)  # the picture shows the start of long audio
    figure = app.transcribe(str(path), app.GREEDY, 16, str(trained_model))[2]
    assert max(trace.x[-1] for trace in figure.data) == pytest.approx(10, abs=0.2)
    assert "first 10 s" in figure.layout.xaxis2.title.text


def expect_message(result, *fragments):
    text, info, figure = result
    assert text == "" and figure is None
    assert info.startswith(app.WARN) and "Traceback" not in info
    for fragment in fragments:
        assert fragment in info, info


def test_bad_inputs_give_clear_messages(trained_model, tmp_path):
    model = str(trained_model)
    expect_message(app.transcribe(None, app.GREEDY, 16, model), "No audio")
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), SAMPLE_RATE)
    expect_message(app.transcribe(str(empty), app.GREEDY, 16, model), "empty.wav", "empty")
    zero_bytes = tmp_path / "zero.wav"
    zero_bytes.write_bytes(b"")
    expect_message(app.transcribe(str(zero_bytes), app.GREEDY, 16, model), "zero.wav", "empty")
    silence = tmp_path / "silence.wav"
    sf.write(silence, np.zeros(SAMPLE_RATE * 2, np.float32), SAMPLE_RATE)
    expect_message(app.transcribe(str(silence), app.GREEDY, 16, model), "silence.wav", "silent")
    blip = tmp_path / "blip.wav"
    sf.write(blip, 0.5 * np.ones(400, np.float32), SAMPLE_RATE)
    expect_message(app.transcribe(str(blip), app.GREEDY, 16, model), "blip.wav", "too short")
    text_file = tmp_path / "notes.wav"
    text_file.write_text("this is a text file, not audio\n" * 20)
    expect_message(app.transcribe(str(text_file), app.GREEDY, 16, model), "notes.wav",
                   "not audio")
    hour = sparse_wav(tmp_path / "hour.wav", 3600)
    expect_message(app.transcribe(str(hour), app.GREEDY, 16, model), "hour.wav", "60.0 min",
                   f"up to {app.MAX_AUDIO_MIN:.0f} min")
    huge = sparse_wav(tmp_path / "huge.wav", 60, rate=1_000_000)  # 120 MB, one minute
    expect_message(app.transcribe(str(huge), app.GREEDY, 16, model), "huge.wav",
                   f"up to {app.MAX_UPLOAD_MB} MB")
    expect_message(app.transcribe(str(tmp_path / "gone.wav"), app.GREEDY, 16, model), "gone.wav")


def test_missing_model_is_a_message_not_a_crash(word_corpus, tmp_path, monkeypatch):
    clip = str(clip_paths(word_corpus)["go"])
    expect_message(app.transcribe(clip, app.GREEDY, 16, str(tmp_path / "nothing")),
                   "not a model directory")
    monkeypatch.setattr(app, "DEFAULT_MODEL_DIR", tmp_path / "checkpoints" / "default")  # a clone without it
    expect_message(app.transcribe(clip, app.GREEDY, 16, str(app.DEFAULT_MODEL_DIR)),
                   "shipped model is not there yet")
    assert "not there yet" in app.describe_model(str(app.DEFAULT_MODEL_DIR))


def test_unexpected_errors_become_messages(trained_model, word_corpus, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of cheese")
    monkeypatch.setattr(app, "heard_figure", broken)
    clip = str(clip_paths(word_corpus)["go"])
    expect_message(app.transcribe(clip, app.GREEDY, 16, str(trained_model)), "out of cheese")


def test_models_are_loaded_once(trained_model):
    first = app.get_recognizer(str(trained_model))
    assert app.get_recognizer(str(trained_model)) is first
    assert app.get_recognizer(str(trained_model), beam=8) is not first


def stream_chunks(wave: np.ndarray, rate: int, chunk_s: float = 0.5):
    """Microphone chunks as gradio gives them: (rate, int16 samples x 2 channels)."""
    pcm = (np.clip(wave, -1, 1) * 32767).astype(np.int16)
    step = int(rate * chunk_s)
    for start in range(0, len(pcm), step):
        piece = pcm[start:start + step]
        yield rate, np.stack([piece, piece], axis=1)


def test_live_transcription_accumulates_the_stream(trained_model):
    live = app.new_live_state()
    assert live["pending"].size == 0 and live["settled"] == ""
    wave = resampled(np.concatenate([padded("go", 0.3), np.zeros(4800, np.float32)]), 48000)
    for chunk in stream_chunks(wave, 48000):
        live, text = app.live_transcribe(chunk, live, str(trained_model))
    assert text == "go"
    assert live["seconds"] == pytest.approx(len(wave) / 48000, abs=0.01)
    # short recordings are re-read whole, kept at the model's rate
    assert live["rate"] == 16000 and live["pending"].size == pytest.approx(len(wave) / 3, abs=2)
    assert app.live_transcribe(None, live, str(trained_model))[1] == ""
    kept, message = app.live_transcribe((48000, np.zeros(48000 * 21, np.int16)), live, str(trained_model))
    assert kept == app.gr.skip()  # a refused piece leaves the recording as it was
    assert "pieces of at most 20 s" in message
    _, text = app.live_transcribe((16000, np.zeros(16000, np.int16)), None, str(trained_model))
    assert text == "…"  # silence so far
    _, text = app.live_transcribe((16000, np.full(16000, 9000, np.int16)), None, "/no/model")
    assert text.startswith(app.WARN) and "not a model directory" in text


def test_live_transcription_settles_old_audio(monkeypatch):
    """Past LIVE_WINDOW_S the oldest audio is cut at a quiet moment and its words kept: each
    update re-reads a bounded window however long the user speaks."""
    class CountingRecognizer:
        sample_rate = 8000
        reads = []
        def transcribe(self, samples, rate):
            self.reads.append(len(samples) / rate)
            return types.SimpleNamespace(text=f"w{len(self.reads)}")
    monkeypatch.setattr(app, "get_recognizer", lambda model_dir, beam=0: CountingRecognizer())
    rate, second = 8000, np.r_[np.full(7000, 0.3, np.float32), np.zeros(1000, np.float32)]
    live = None
    for _ in range(50):  # 50 s of speech with a short pause every second
        live, text = app.live_transcribe((rate, (second * 32767).astype(np.int16)), live, "m")
    assert live["seconds"] == pytest.approx(50)
    assert max(CountingRecognizer.reads) <= app.LIVE_WINDOW_S + 1
    assert live["pending"].size <= app.LIVE_WINDOW_S * rate
    settled = live["settled"].split()
    assert len(settled) >= 2 and text.split()[:len(settled)] == settled


# ------------------------------------------------------------------ validation handler


def test_validation_table_diff_and_totals(trained_model, word_corpus):
    table, diffs, summary, samples = app.validate(str(word_corpus), 10, False, app.GREEDY, 16,
                                                  str(trained_model))
    assert [row[2] for row in table] == WORDS and [row[3] for row in table] == WORDS
    assert all(row[4] == 0 and row[5] == 0 for row in table)
    assert "WER 0.0 %" in summary and "CER 0.0 %" in summary and "4 clips" in summary
    assert [text for text, _ in diffs if text not in ("\n",) and not text[0].isdigit()] == WORDS
    two = app.validate(str(word_corpus), 2, False, app.GREEDY, 16, str(trained_model))[0]
    assert len(two) == 2
    audio, sample_diff = app.show_sample(samples, 3)
    assert audio[0] == 16000 and audio[1].dtype == np.int16 and len(audio[1]) > 8000
    assert sample_diff == [("3. ", None), ("stop", None)]


def test_validation_diff_marks_errors(trained_model, word_corpus, tmp_path):
    clips = clip_paths(word_corpus)
    rows = [{"key": str(clips["yes"]), "text": "no"},  # substitution
            {"key": str(clips["go"]), "text": "go stop"},  # deletion
            {"key": str(tmp_path / "missing.wav"), "text": "gone"},  # skipped
            "not json"]
    manifest = tmp_path / "wrong.jsonl"
    manifest.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    table, diffs, summary, samples = app.validate(str(manifest), 10, False, app.GREEDY, 16,
                                                  str(trained_model))
    assert [(row[2], row[3], row[4]) for row in table] == [("no", "yes", 1.0), ("go stop", "go", 0.5)]
    assert ("(no->yes)", "substitution") in diffs and ("(stop->*)", "deletion") in diffs
    assert "WER 66.7 %" in summary and "skipped 2 clips" in summary and "missing audio" in summary


def test_validation_bad_manifests(trained_model, tmp_path):
    model = str(trained_model)
    table, diffs, summary, samples = app.validate(None, 10, False, app.GREEDY, 16, model)
    assert (table, samples) == ([], []) and "Choose a validation manifest" in summary
    summary = app.validate(str(tmp_path / "nope.jsonl"), 10, False, app.GREEDY, 16, model)[2]
    assert summary.startswith(app.WARN) and "not found" in summary
    junk = tmp_path / "junk.jsonl"
    junk.write_text("this is not json\n")
    summary = app.validate(str(junk), 10, False, app.GREEDY, 16, model)[2]
    assert "no usable clips" in summary and "not valid JSON" in summary
    binary = tmp_path / "model.jsonl"
    binary.write_bytes(bytes(range(256)) * 4)
    summary = app.validate(str(binary), 10, False, app.GREEDY, 16, model)[2]
    assert summary.startswith(app.WARN) and "not a JSON-lines text file" in summary
    assert app.show_sample([], 1) == (None, [])


def test_a_model_directory_made_of_uploads_is_refused(trained_model, tmp_path, monkeypatch):
    import shutil
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "uploads"))
    shutil.copytree(trained_model, tmp_path / "uploads" / "abc")
    served = app.served_folders(trained_model, None)
    state, _, status, _, _ = app.choose_model(str(tmp_path / "uploads" / "abc"), str(trained_model),
                                              None, served)
    assert state == str(trained_model) and "cannot be made of uploads" in status
    state, _, status, _, _ = app.choose_model("x\x00y", str(trained_model), None, served)
    assert state == str(trained_model) and "outside the folders this app serves" in status


def test_validation_refuses_bulk_manifests_and_clips_longer_than_their_rows_say(
        trained_model, tmp_path, monkeypatch):
    flood = tmp_path / "flood.jsonl"
    flood.write_text("x\n" * 5000)
    monkeypatch.setattr(app, "MAX_MANIFEST_MB", 0.001)
    summary = app.validate(str(flood), 10, False, app.GREEDY, 16, str(trained_model))[2]
    assert "may be at most" in summary and "flood.jsonl" in summary
    monkeypatch.undo()
    long_clip = tmp_path / "long.wav"
    sf.write(long_clip, np.random.default_rng(0).normal(0, 0.1, 8000 * 31).astype(np.float32), 8000)
    lying = tmp_path / "lying.jsonl"  # the row says 1 s; the header says 31 s
    lying.write_text(json.dumps({"key": "long.wav", "text": "modern printers", "duration": 1}) + "\n")
    summary = app.validate(str(lying), 10, False, app.GREEDY, 16, str(trained_model))[2]
    assert "could be scored" in summary and "at most 30" in summary


# ------------------------------------------------------------------ model picker


def test_model_choices_list_runs_and_the_validation_set(trained_run, word_corpus):
    runs = trained_run.parent
    values = [value for _, value in app.model_choices(runs)]
    assert str(trained_run / "checkpoints" / "best") in values
    assert str(trained_run / "checkpoints" / "last") in values
    labels = [label for label, _ in app.model_choices(runs, "/some/where")]
    assert "/some/where (not found)" in labels
    manifests = app.manifest_choices(runs, str(trained_run / "checkpoints" / "best"))
    assert [Path(value) for _, value in manifests] == [word_corpus, app.SHIPPED_SAMPLES]


def test_shipped_samples_give_the_validation_tab_something_out_of_the_box(trained_model):
    rows = [json.loads(line) for line in app.SHIPPED_SAMPLES.read_text().splitlines()]
    assert len(rows) == 12 and all((app.SHIPPED_SAMPLES.parent / r["key"]).is_file() for r in rows)
    assert [p for _, p in app.manifest_choices(None)] == [str(app.SHIPPED_SAMPLES)]


def test_choose_model_keeps_the_current_one_when_the_new_one_fails(trained_run, tmp_path):
    best, runs = str(trained_run / "checkpoints" / "best"), trained_run.parent
    state, picker, status, header, manifest = app.choose_model(best, None, runs)
    assert state == best and "default architecture" in status and "words/checkpoints/best" in header
    assert manifest["value"].endswith("all.jsonl")
    state, picker, status, header, _ = app.choose_model(str(tmp_path), best, runs)
    assert state == best and status.startswith(app.WARN) and "not a model directory" in status
    assert header == app.describe_model(best)


def test_hub_model_is_downloaded_only_on_request(trained_model, monkeypatch, tmp_path):
    current = str(trained_model)
    monkeypatch.setenv(app.HUB_CACHE_ENV, str(tmp_path / "hub"))
    state, _, status, _, _ = app.download_hub_model("  ", None, current)
    assert state == current and "Type a Hub model id" in status
    monkeypatch.setitem(sys.modules, "srcore.hub", None)  # not installed: ImportError
    state, _, status, _, _ = app.download_hub_model("user/model", None, current)
    assert state == current and "not available" in status
    calls = []
    def download(repo_id, revision=None, token=None, srcore_only=False, cache_dir=None):
        calls.append((repo_id, revision, token, srcore_only, cache_dir))
        if repo_id == "user/offline":
            raise OSError("no network")
        return trained_model
    trims = []
    def trim_cache(cache_dir, max_mb, keep):
        trims.append((cache_dir, max_mb, keep))
        return []
    monkeypatch.setitem(sys.modules, "srcore.hub", types.SimpleNamespace(download=download, trim_cache=trim_cache))
    for local in (str(trained_model), "/root", "../etc", "a/b/c"):  # server paths are never taken
        state, _, status, _, _ = app.download_hub_model(local, None, current)
        assert state == current and "is not a Hub model id" in status and "not a model directory" not in status
    state, _, status, _, _ = app.download_hub_model("user/offline", "", current)
    assert state == current and "Could not download user/offline" in status and "no network" in status
    state, picker, status, _, _ = app.download_hub_model(" user/model ", "v1", "/elsewhere")
    assert state == current and picker["value"] == current
    # never with the server's own Hub login: a visitor must not reach its owner's private models
    # and into the app's own cache, which is trimmed after each download
    cache = tmp_path / "hub"
    assert calls == [("user/offline", None, False, True, cache), ("user/model", "v1", False, True, cache)]
    assert trims == [(cache, app.HUB_CACHE_MB, str(trained_model))]
    def failing_trim(cache_dir, max_mb, keep):
        raise FileNotFoundError("a blob another download renamed")
    monkeypatch.setitem(sys.modules, "srcore.hub", types.SimpleNamespace(download=download, trim_cache=failing_trim))
    state, _, status, _, _ = app.download_hub_model("user/model", None, "/elsewhere")
    assert state == current and "Could not download" not in status  # the download stands


def test_a_hub_model_in_use_counts_as_recently_used(trained_model, monkeypatch, tmp_path):
    import os
    import shutil
    monkeypatch.setenv(app.HUB_CACHE_ENV, str(tmp_path))
    repo = tmp_path / "models--user--model"
    snapshot = repo / "snapshots" / "sha1"
    shutil.copytree(trained_model, snapshot)
    os.utime(repo, (1e9, 1e9))
    app.get_recognizer(str(snapshot))
    assert repo.stat().st_mtime > 1e9 + 1e6  # so trimming the cache takes other models first


# ------------------------------------------------------------------ the running app


@pytest.fixture(scope="module")
def server(trained_model, trained_run):
    demo = app.build_demo(trained_model, trained_run.parent)
    _, url, _ = app.launch(demo, free_port(), prevent_thread_lock=True, quiet=True)
    yield url
    demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client
    return Client(server, verbose=False)


def test_every_handler_is_a_named_endpoint(client):
    endpoints = set(client.view_api(print_info=False, return_format="dict")["named_endpoints"])
    assert {"/transcribe", "/live_transcribe", "/reset_live", "/validate", "/show_sample",
            "/choose_model", "/refresh_models", "/download_hub_model",
            "/use_uploaded_manifest", "/keep_take", "/adapt_voice"} <= endpoints
    assert "/live_stream" not in endpoints  # the browser's stream: gradio_client can't follow it


def test_client_live_transcribes_piece_by_piece(client, tmp_path):
    from gradio_client import handle_file
    word = padded("go", 0.3)
    halves = [tmp_path / "first.wav", tmp_path / "second.wav"]
    sf.write(halves[0], word[: word.size // 2], 16000)
    sf.write(halves[1], word[word.size // 2:], 16000)
    first = client.predict(handle_file(str(halves[0])), api_name="/live_transcribe")
    assert first != "go"  # half a word
    assert client.predict(handle_file(str(halves[1])), api_name="/live_transcribe") == "go"  # the
    sf.write(tmp_path / "long.wav", np.zeros(16000 * 25, np.float32) + 0.1, 16000)  # session kept
    message = client.predict(handle_file(str(tmp_path / "long.wav")), api_name="/live_transcribe")
    assert message.startswith(app.WARN) and "pieces of at most 20 s" in message


def test_client_transcribes_and_validates(client, word_corpus):
    from gradio_client import handle_file
    text, info, plot = client.predict(handle_file(str(clip_paths(word_corpus)["stop"])),
                                      api_name="/transcribe")
    assert text == "stop" and "s of audio transcribed" in info and plot["type"] == "plotly"
    table, diffs, summary = client.predict(str(word_corpus), 10, False, "greedy", 16,
                                           api_name="/validate")
    assert [row[3] for row in table["data"]] == WORDS and "WER 0.0 %" in summary
    manifest = client.predict(handle_file(str(word_corpus)), api_name="/use_uploaded_manifest")
    assert manifest.endswith("all.jsonl")


def test_client_gets_messages_for_bad_uploads(client, tmp_path):
    from gradio_client import handle_file
    fake = tmp_path / "notes.wav"
    fake.write_text("not audio at all")
    text, info, _ = client.predict(handle_file(str(fake)), show_picture=False, api_name="/transcribe")
    assert text == "" and "notes.wav is not audio" in info


def test_twenty_simultaneous_transcriptions(server, word_corpus):
    from gradio_client import Client, handle_file
    clips = clip_paths(word_corpus)
    jobs = [WORDS[i % len(WORDS)] for i in range(20)]

    def ask(word):
        client = Client(server, verbose=False)
        return client.predict(handle_file(str(clips[word])), "greedy", 16, False,
                              api_name="/transcribe")[0]

    started = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, jobs))
    assert answers == jobs
    assert time.perf_counter() - started < 60


def test_the_server_bounds_what_visitors_leave_behind(monkeypatch):
    """Uploads and served files are swept after an hour; the sessions held in memory (each may
    keep minutes of takes) are capped."""
    assert app.demo.delete_cache == (app.CACHE_SWEEP_S, app.CACHE_AGE_S)
    launched = {}
    monkeypatch.setattr(app.demo, "launch", lambda **kwargs: launched.update(kwargs))
    app.launch(app.demo, 7860)
    assert launched["state_session_capacity"] == app.SESSIONS_KEPT
    assert launched["max_file_size"] == app.MAX_UPLOAD_MB * 2**20


def test_python_app_py_starts_without_the_shipped_model(tmp_path, word_corpus):
    """`python app.py` on $PORT with a model that isn't there: it serves and explains, and SIGTERM
    stops it as an ordinary exit."""
    port = free_port()
    env = {**os.environ, "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    process = subprocess.Popen([sys.executable, "app.py", "--model", str(tmp_path / "none"),
                                "--runs", str(tmp_path)], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):
            try:
                page = urllib.request.urlopen(url, timeout=2).read().decode()
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                time.sleep(0.25)
        else:
            pytest.fail("app.py did not start")
        assert "not a model directory" in page
        from gradio_client import Client, handle_file
        text, info, _ = Client(url, verbose=False).predict(
            handle_file(str(clip_paths(word_corpus)["go"])), api_name="/transcribe")
        assert text == "" and "not a model directory" in info
        process.terminate()  # what a container's stop sends: an ordinary exit, exit handlers run
        assert process.wait(timeout=20) == 143
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=20)


def test_served_folders_keep_visitors_to_the_projects_files(trained_model, word_corpus, tmp_path):
    mine, elsewhere = tmp_path / "mine", tmp_path / "private"
    mine.mkdir()
    elsewhere.mkdir()
    served = app.served_folders(trained_model, None, extra=[word_corpus.parent, mine])
    outside = elsewhere / "secrets.jsonl"
    outside.write_text(word_corpus.read_text())
    summary = app.validate(str(outside), 10, False, app.GREEDY, 16, str(trained_model),
                           served=served)[2]
    assert "outside the folders this app serves" in summary
    # a served manifest naming audio elsewhere: those clips are skipped and counted, not played
    mixed = mine / "mixed.jsonl"
    rows = [{**r, "key": str(word_corpus.parent / r["key"])}
            for r in map(json.loads, word_corpus.read_text().splitlines())]
    clip = elsewhere / "yes.wav"
    clip.write_bytes(Path(rows[0]["key"]).read_bytes())
    # an outside path that exists and one that does not read alike: the app is no file-finder
    probes = [{"key": str(clip), "text": "yes"}, {"key": str(elsewhere / "none.wav"), "text": "no"}]
    mixed.write_text("".join(json.dumps(r) + "\n" for r in rows + probes))
    table, _, summary, samples = app.validate(str(mixed), 10, False, app.GREEDY, 16,
                                              str(trained_model), served=served)
    assert len(table) == len(rows) and str(clip) not in {s["key"] for s in samples}
    assert "2 outside the folders it may read" in summary and "missing" not in summary
    assert str(mine) not in summary and "mixed.jsonl:" in summary  # rows named, not server paths
    status = app.choose_model(str(elsewhere), str(trained_model), None, served)[2]
    assert "outside the folders this app serves" in status


def test_client_cannot_score_files_outside_the_served_folders(client, word_corpus, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text(word_corpus.read_text())
    table, _, summary = client.predict(str(outside), 10, False, "greedy", 16, api_name="/validate")
    assert "outside the folders this app serves" in summary


def test_the_header_names_no_server_path_and_gives_percentages(trained_run):
    header = app.describe_model(str(trained_run / "checkpoints" / "best"))
    assert str(trained_run.parent) not in header and "words/checkpoints/best" in header
    assert "WER 0.0 %" in header
    assert "`checkpoints/default`" in app.describe_model(str(app.DEFAULT_MODEL_DIR))
