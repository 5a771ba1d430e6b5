"""Gradio web app: transcribe speech, score validation samples and pick a model.

    python app.py [--model DIR] [--runs DIR] [--share]

Port: $PORT or $GRADIO_SERVER_PORT (default 7860); host: $GRADIO_SERVER_NAME (default 127.0.0.1,
0.0.0.0 on a Hugging Face Space). Every handler below is a plain function (inputs -> outputs, never
raises: problems come back as a message) and a named API endpoint for `gradio_client`.
"""
import argparse
import atexit
import contextlib
import functools
import logging
import os
import queue
import random
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np
import plotly.graph_objects as go
import soundfile as sf
import torch
from plotly.subplots import make_subplots

from srcore import adapt as adaptation
from srcore.audio import AudioError, is_silent, read_audio, to_model_rate, write_audio
from srcore.checkpoint import read_config, resolve_model_dir
from srcore.config import AdaptConfig
from srcore.evaluate import score_utterances
from srcore.manifest import SkipReport, Utterance, read_manifest
from srcore.metrics import ErrorCounts, word_diff
from srcore.run import list_runs
from srcore.text import CHARS
from srcore.transcribe import (
    CUT_SEARCH_S,
    DEFAULT_MODEL_DIR,
    MAX_AUDIO_S,
    MIN_AUDIO_S,
    Recognizer,
    chunk_bounds,
)

log = logging.getLogger("srcore.app")

APP_DIR = Path(__file__).resolve().parent
DEFAULT_RUNS_DIR = APP_DIR / "runs"
SHIPPED_SAMPLES = APP_DIR / "samples" / "manifest.jsonl"
MAX_UPLOAD_MB = 100  # uploads above this are refused (launch's max_file_size and the handler)
MAX_MANIFEST_MB = 5  # a validation manifest above this is refused (200 clips take a few kB)
MAX_AUDIO_MIN = MAX_AUDIO_S / 60  # longer audio is refused; up to it, it is chunked
LIVE_WINDOW_S = 20.0  # live transcription re-reads at most this much of the latest audio
LIVE_EVERY_S = 1.0  # the live transcript is refreshed this often
LIVE_API_RATE = 16000  # pieces sent to /live_transcribe are read at this rate
PLOT_MAX_S = 120.0  # the picture shows at most the first this many seconds
TRANSCRIBE_CONCURRENCY = 4  # transcriptions run at once; more wait in the queue
LIVE_STREAMS = 4  # microphone streams open at once, apart from those (a stream holds its slot)
DEFAULT_SAMPLES = 10  # validation samples shown, as the original notebook did
MAX_SAMPLES = 200
DEFAULT_BEAM = 16
PLOT_COLUMNS = 1000  # longest time axis drawn; longer audio is averaged down to this
GREEDY, BEAM, DEFAULT_DECODING = "greedy", "beam search", "model default (its word LM, if any)"
DIFF_COLOURS = {"substitution": "#f59e0b", "deletion": "#ef4444", "insertion": "#22c55e"}
DIFF_TAGS = {"sub": "substitution", "del": "deletion", "ins": "insertion"}
WARN = "⚠️ "
MAX_TAKE_S = 15.0  # a "Teach it your voice" take is one prompt: longer recordings are refused
TAKE_RATE = 16000  # takes are kept at this rate (every preset model reads 16 kHz; adapt_voice checks)
PCM16_FULL_SCALE = 32767  # takes are kept as 16-bit samples
TAKES_TTL_S = 3600  # a session's takes are dropped this long after the last one was kept
SESSIONS_KEPT = 200  # sessions whose state the server holds (gradio's default, 10,000, x 20 takes
#                      of 15 s each could hold gigabytes); the oldest go first
CACHE_SWEEP_S, CACHE_AGE_S = 600, 3600  # uploads and served files older than this are deleted
SESSION_FOLDER_MAX_S = 4 * 3600  # a visitor's takes and adapted model are kept at most this long
ADAPT_MINUTES = 2.0  # default time cap of one adaptation (--adapt-minutes)
ADAPT_HELD_OUT = 4  # takes kept out of the fine-tuning to show before/after
MIN_TRAINING_TAKES = 4  # takes the fine-tuning needs besides the held-out ones
MIN_TAKES = ADAPT_HELD_OUT + MIN_TRAINING_TAKES
SPACE_ENV = "SPACE_ID"  # set on a Hugging Face Space: adaptation is off there unless --allow-adapt
HUB_CACHE_ENV = "SRCORE_APP_HUB_CACHE"  # where the app keeps the Hub models visitors download
HUB_CACHE_MB = 3 * 1024  # ... at most this much of them: the least recently used go first
HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


class UserError(Exception):
    """A problem the user can fix; its message is shown as it is."""


# ------------------------------------------------------------------------------ models


def is_model_dir(directory) -> bool:
    try:
        resolve_model_dir(directory)
        return True
    except (FileNotFoundError, OSError, TypeError):
        return False


_load_lock = threading.Lock()


@functools.lru_cache(maxsize=4)
def _load_model(model_dir: str, _weights_mtime: float) -> Recognizer:
    return Recognizer.load(model_dir, greedy=True)


@functools.lru_cache(maxsize=16)
def _load_recognizer(model_dir: str, beam: int | None, weights_mtime: float) -> Recognizer:
    """The model's weights are loaded once per directory; each decoding gets its own decoder:
    beam None the model's own (its word LM), 0 greedy, N a character beam of width N."""
    greedy = _load_model(model_dir, weights_mtime)
    if beam is None:
        return Recognizer(greedy.model, greedy.config, greedy.model_dir)
    if beam <= 1:
        return greedy
    return Recognizer(greedy.model, greedy.config, greedy.model_dir, beam=beam)


def get_recognizer(model_dir, beam: int | None = 0) -> Recognizer:
    """The model at `model_dir`, loaded once per (directory, beam) and reloaded if rewritten."""
    if not model_dir:
        raise UserError("No model is chosen: pick one in the Model tab.")
    if not is_model_dir(model_dir):
        raise UserError(missing_model_message(model_dir))
    resolved = resolve_model_dir(model_dir)
    mark_hub_model_used(resolved)
    with _load_lock:
        return _load_recognizer(str(resolved), None if beam is None else int(beam),
                                (resolved / "model.safetensors").stat().st_mtime)


def missing_model_message(model_dir) -> str:
    if Path(model_dir).resolve() == DEFAULT_MODEL_DIR.resolve():
        return (f"The shipped model is not there yet ({DEFAULT_MODEL_DIR} is missing). Train one "
                "(`python -m srcore.train ...`), start the app with `--model DIR`, or choose a run "
                "or a Hub model in the Model tab.")
    return (f"{model_dir} is not a model directory (it needs config.json and model.safetensors). "
            "Choose another in the Model tab.")


def beam_width(decoding: str, beam_size) -> int | None:
    """get_recognizer's beam for a decoding choice: None for the model's own decoding."""
    if decoding == BEAM:
        return int(beam_size or DEFAULT_BEAM)
    return 0 if decoding == GREEDY else None


def describe_model(model_dir) -> str:
    """A one-paragraph Markdown summary of a model directory (or why it can't be used)."""
    if not model_dir or not is_model_dir(model_dir):
        return WARN + missing_model_message(model_dir or DEFAULT_MODEL_DIR)
    meta = read_config(model_dir)
    model = meta.get("model", {})
    metrics = meta.get("metrics", {})
    scores = [f"{k.upper()} {100 * metrics[k]:.1f} %" for k in ("wer", "cer")
              if isinstance(metrics.get(k), (int, float))]
    return (f"**Model:** `{model_label(model_dir)}` · {model.get('architecture', '?')} architecture, "
            f"{model.get('features', {}).get('sample_rate', '?')} Hz"
            + (f" · validation {', '.join(scores)}" if scores else ""))


def model_label(model_dir) -> str:
    """How the page names a model directory: relative to the project, else its last parts (a
    visitor needs no server paths)."""
    path = Path(model_dir).resolve()
    if path.is_relative_to(APP_DIR):
        return str(path.relative_to(APP_DIR))
    return "/".join(path.parts[-3:]) if path.parent.name == "checkpoints" else path.name


def model_choices(runs_dir, *extra) -> list[tuple[str, str]]:
    """(label, directory) of the shipped model, every run's best/last checkpoint and `extra`."""
    choices = []
    if is_model_dir(DEFAULT_MODEL_DIR):
        choices.append(("shipped model (checkpoints/default)", str(DEFAULT_MODEL_DIR)))
    for run in list_runs(runs_dir) if runs_dir else []:
        for kind, directory in (("best", run.best_dir), ("last", run.last_dir)):
            if is_model_dir(directory):
                wer = read_config(directory).get("metrics", {}).get("wer")
                score = f" (WER {wer:.3f})" if isinstance(wer, (int, float)) else ""
                choices.append((f"run {run.name} · {kind}{score}", str(directory)))
    known = {value for _, value in choices}
    for directory in extra:
        if directory and str(directory) not in known:
            found = "" if is_model_dir(directory) else " (not found)"
            choices.append((f"{directory}{found}", str(directory)))
            known.add(str(directory))
    return choices


@dataclass(frozen=True)
class ServedFolders:
    """The folders whose files the served app may read for a visitor: a manifest, the audio it
    names or a model directory elsewhere on the server is refused (a visitor could otherwise
    listen to any audio file the server can read)."""
    roots: tuple

    def allows(self, path) -> bool:
        try:
            resolved = Path(path).resolve()
        except (ValueError, OSError, RuntimeError):  # a null byte, a name too long, a symlink loop
            return False
        return any(resolved.is_relative_to(root) for root in self.roots)


def uploads_folder() -> Path:
    """Where gradio keeps what visitors upload."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def served_folders(model_dir, runs_dir, extra=()) -> ServedFolders:
    """The project folder, the runs folder and the folders of every run's manifests, the model,
    gradio's upload folder and `extra` (--data)."""
    folders = [APP_DIR, uploads_folder(), model_dir, *extra]
    for run in list_runs(runs_dir) if runs_dir else []:
        try:
            config = run.read_config()
        except ValueError:  # a broken config.json names no manifests
            config = {}
        folders += [run.path] + [(run.path / config[k]).parent  # relative: to the run, not the cwd
                                 for k in ("train", "valid") if config.get(k)]
    return ServedFolders(tuple(Path(f).resolve() for f in folders if f))


def check_served(served: ServedFolders | None, path, what: str) -> None:
    if served is not None and not served.allows(path):
        raise UserError(f"{what} {path} is outside the folders this app serves "
                        "(start it with --data FOLDER to serve another one).")


def _existing_path(name, *roots) -> str | None:
    path = Path(name)
    candidates = [path] if path.is_absolute() else [root / path for root in roots]
    return next((str(p) for p in candidates if p.is_file()), None)


def manifest_choices(runs_dir, model_dir=None) -> list[tuple[str, str]]:
    """(label, path) of the validation manifest of `model_dir` and of every run."""
    sources = []
    if model_dir and is_model_dir(model_dir):
        sources.append(("this model", read_config(model_dir).get("training", {}).get("valid")))
    sources += [(f"run {run.name}", run.read_config().get("valid"))
                for run in (list_runs(runs_dir) if runs_dir else [])]
    choices, seen = [], set()
    for owner, valid in sources:
        path = valid and _existing_path(valid, Path.cwd(), APP_DIR)
        if path and path not in seen:
            seen.add(path)
            choices.append((f"{owner}: validation set ({valid})", path))
    if SHIPPED_SAMPLES.is_file():  # held-out clips that come with the repo: never an empty tab
        choices.append(("shipped samples (12 held-out clips, samples/README.md)", str(SHIPPED_SAMPLES)))
    return choices


# ------------------------------------------------------------------------------ error handling


def shows_errors(on_error):
    """Decorate a handler so that any failure becomes `on_error(message)`: a message, never a
    stack trace, in the UI and in the API's answer."""
    def decorate(handler):
        @functools.wraps(handler)
        def wrapper(*args, **kwargs):
            try:
                return handler(*args, **kwargs)
            except (UserError, AudioError) as exc:
                message = str(exc)
            except Exception as exc:  # noqa: BLE001 - the UI must get an answer, the log the trace
                log.exception("%s failed", handler.__name__)
                message = f"Something went wrong ({type(exc).__name__}: {exc})."
            return on_error(WARN + message)
        return wrapper
    return decorate


# ------------------------------------------------------------------------------ transcription


def check_upload(path) -> str:
    """Refuse what can't be transcribed before decoding it: too big, unreadable or too long."""
    if not path:
        raise UserError("No audio: record something or upload a file (wav, flac, ogg or mp3).")
    path, name = Path(path), Path(path).name
    if not path.is_file():
        raise UserError(f"{name}: the file is gone; upload it again.")
    size_mb = path.stat().st_size / 2**20
    if size_mb > MAX_UPLOAD_MB:
        raise UserError(f"{name} is {size_mb:.0f} MB; the app takes files up to {MAX_UPLOAD_MB} MB.")
    if path.stat().st_size == 0:
        raise UserError(f"{name} is empty: nothing was recorded.")
    try:
        info = sf.info(str(path))
    except Exception:
        raise UserError(f"{name} is not audio the app can read (use wav, flac, ogg or mp3).") from None
    if info.duration > MAX_AUDIO_S:
        raise UserError(f"{name} lasts {info.duration / 60:.1f} min; the app transcribes up to "
                        f"{MAX_AUDIO_MIN:.0f} min. Cut it into shorter pieces.")
    return name


def read_upload(path, sample_rate: int, max_seconds: float, hint: str) -> tuple[str, torch.Tensor]:
    """check_upload, then the audio at `sample_rate`, at most `max_seconds` long: (file name,
    waveform); a read failure becomes a UserError ending with `hint`."""
    name = check_upload(path)
    try:
        return name, read_audio(path, sample_rate, max_seconds)
    except AudioError as exc:
        raise UserError(f"{exc}. {hint}") from None


def transcribe_wave(recognizer: Recognizer, wave: torch.Tensor, name: str = "the recording"):
    """Transcript of a mono waveform at the model's rate, refusing silence with a message."""
    if wave.numel() == 0:
        raise UserError(f"{name} is empty: nothing was recorded.")
    if is_silent(wave):
        raise UserError(f"{name} is silent: nothing to transcribe.")
    try:
        return recognizer.transcribe_wave(wave)
    except AudioError as exc:
        raise UserError(f"{name}: {exc}") from None


def _shrink(matrix: np.ndarray, columns: int, reduce=np.mean) -> tuple[np.ndarray, int]:
    """Average (or `reduce`) groups of columns so that at most `columns` remain."""
    step = max(1, -(-matrix.shape[1] // columns))
    if step == 1:
        return matrix, 1
    pad = (-matrix.shape[1]) % step
    padded = np.pad(matrix, ((0, 0), (0, pad)), mode="edge")
    return reduce(padded.reshape(matrix.shape[0], -1, step), axis=2), step


def heard_figure(recognizer: Recognizer, wave: torch.Tensor, transcript) -> go.Figure:
    """What the model heard (the first PLOT_MAX_S seconds): the log-mel spectrogram and the
    per-frame character probabilities."""
    with torch.inference_mode():
        logmel = recognizer.logmel(wave[:int(PLOT_MAX_S * recognizer.sample_rate)]).numpy()
    mel_frame_s = recognizer.config.features.hop_length / recognizer.sample_rate
    logmel, mel_step = _shrink(logmel, PLOT_COLUMNS)
    probs = transcript.log_probs[:int(PLOT_MAX_S / transcript.frame_s)].exp().T.numpy()
    probs, prob_step = _shrink(probs, PLOT_COLUMNS, np.max)
    labels = [c if c != " " else "␣ (space)" for c in CHARS] + ["blank"]
    figure = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.11,
                           subplot_titles=("log-mel spectrogram (the model's input)",
                                           "character probability per frame (the model's output)"))
    figure.layout.annotations[1].update(yshift=16)  # room below it for the words
    figure.add_trace(go.Heatmap(z=logmel, x=np.arange(logmel.shape[1]) * mel_step * mel_frame_s,
                                colorscale="Viridis", showscale=False, name="log-mel"), row=1, col=1)
    figure.add_trace(go.Heatmap(z=probs, x=np.arange(probs.shape[1]) * prob_step * transcript.frame_s,
                                y=labels, colorscale="Blues", zmin=0, zmax=1, name="probability",
                                colorbar={"title": "p", "len": 0.45, "y": 0.22}), row=2, col=1)
    for word in transcript.words:
        if word.start < PLOT_MAX_S:  # each word above the frames it was read from
            figure.add_annotation(x=(word.start + word.end) / 2, y=1.0, yref="y2 domain", yanchor="bottom",
                                  text=word.word, showarrow=False, font={"size": 10})
    figure.update_yaxes(title_text="mel bin", row=1, col=1)
    figure.update_yaxes(title_text="character", row=2, col=1, dtick=1, tickfont={"size": 8})
    shown = "time (s)" if transcript.audio_s <= PLOT_MAX_S else f"time (s), first {PLOT_MAX_S:.0f} s"
    figure.update_xaxes(title_text=shown, row=2, col=1)
    figure.update_layout(height=640, margin={"l": 60, "r": 20, "t": 40, "b": 40})
    return figure


@shows_errors(lambda message: ("", message, None))
def transcribe(audio_path, decoding: str = DEFAULT_DECODING, beam_size: float = DEFAULT_BEAM,
               model_dir: str | None = None, show_picture: bool = True):
    """Audio file (wav, flac, ogg, mp3; any rate, stereo) -> (transcript, timing message, figure)."""
    started = time.perf_counter()
    name = check_upload(audio_path)
    recognizer = get_recognizer(model_dir, beam_width(decoding, beam_size))
    wave = read_audio(audio_path, recognizer.sample_rate, MAX_AUDIO_S)
    result = transcribe_wave(recognizer, wave, name)
    figure = heard_figure(recognizer, wave, result) if show_picture else None
    took = time.perf_counter() - started
    info = (f"{result.audio_s:.2f} s of audio transcribed in {took:.2f} s "
            f"(model {result.elapsed_s:.2f} s, {result.rtf:.3f}× real time), "
            f"{recognizer.decoding} decoding.")
    if not result.text:
        info = WARN + "No words recognised. " + info
    return result.text, info, figure


def new_live_state(rate: int = 0) -> dict:
    """A live recording: settled text, the recent audio still being re-read, total seconds."""
    return {"rate": rate, "settled": "", "pending": np.zeros(0, np.float32), "seconds": 0.0}


def _words_in(recognizer: Recognizer, samples: np.ndarray, rate: int) -> str:
    """Transcript of a piece of a live recording; silence and slivers are no words."""
    if samples.size < MIN_AUDIO_S * rate or is_silent(samples):
        return ""
    return recognizer.transcribe(samples, rate).text


def _joined(*texts) -> str:
    return " ".join(t for t in texts if t)


@shows_errors(lambda message: (gr.skip(), message))  # a bad piece leaves the recording as it was
def live_transcribe(chunk, live: dict | None, model_dir: str | None = None):
    """One streamed microphone chunk (rate, samples) -> (updated recording, transcript so far).

    The models are bidirectional, so the last LIVE_WINDOW_S seconds are re-read on every chunk;
    older audio is cut off at a quiet moment and its words are settled, so each update costs the
    same however long the user speaks. The recording is kept at the model's rate, and a chunk
    longer than LIVE_WINDOW_S is refused: a session holds at most that much audio."""
    if chunk is None:
        return live or new_live_state(), ""
    recognizer = get_recognizer(model_dir)
    rate = recognizer.sample_rate
    if np.shape(chunk[1])[0] > LIVE_WINDOW_S * int(chunk[0]):
        raise UserError(f"Send a recording in pieces of at most {LIVE_WINDOW_S:.0f} s.")
    samples = to_model_rate(chunk[1], int(chunk[0]), rate).numpy()
    if not live or live.get("rate") != rate:
        live = new_live_state(rate)
    settled, pending = live["settled"], np.concatenate([live["pending"], samples])
    while pending.size > LIVE_WINDOW_S * rate:
        cut = chunk_bounds(torch.from_numpy(pending), rate, LIVE_WINDOW_S - CUT_SEARCH_S)[0][1]
        settled = _joined(settled, _words_in(recognizer, pending[:cut], rate))
        pending = pending[cut:]
    live = {"rate": rate, "settled": settled, "pending": pending,
            "seconds": live["seconds"] + samples.size / rate}
    return live, _joined(settled, _words_in(recognizer, pending, rate)) or "…"


@shows_errors(lambda message: (gr.skip(), message))
def live_transcribe_file(path, live: dict | None, model_dir: str | None = None):
    """/live_transcribe for API clients (gradio_client can't follow the microphone's stream): the
    next piece of a recording as a file, at most LIVE_WINDOW_S long -> (recording, transcript)."""
    name, wave = read_upload(path, LIVE_API_RATE, LIVE_WINDOW_S,
                             f"Send a recording in pieces of at most {LIVE_WINDOW_S:.0f} s.")
    if wave.numel() == 0:
        raise UserError(f"{name} is empty.")
    return live_transcribe((LIVE_API_RATE, wave.numpy()), live, model_dir)


# ------------------------------------------------------------------------------ validation


def diff_highlights(ref: str, hyp: str) -> list[tuple[str, str | None]]:
    """word_diff as HighlightedText pieces: `(REF->HYP)` tagged substitution/deletion/insertion."""
    pieces = []
    for text, tag in word_diff(ref, hyp):
        pieces += [(text, DIFF_TAGS.get(tag)), (" ", None)]
    return pieces[:-1]


def check_manifest_size(manifest) -> None:
    """A validation manifest is a list of clips, not bulk data: one over MAX_MANIFEST_MB is refused
    before it is read (a visitor's upload of millions of rows would cost minutes and the log)."""
    try:
        size_mb = Path(manifest).stat().st_size / 2**20
    except (OSError, ValueError):  # missing (the reader says so), or a name no file can have
        return
    if size_mb > MAX_MANIFEST_MB:
        raise UserError(f"{Path(manifest).name} is {size_mb:.0f} MB; a validation manifest may be at most "
                        f"{MAX_MANIFEST_MB} MB.")


def choose_utterances(manifest, count: int, shuffle: bool, served: ServedFolders | None = None):
    """Up to `count` usable clips of `manifest` (seeded shuffle) and the report of those skipped;
    with `served`, a clip outside the served folders is skipped unopened."""
    report = SkipReport()
    utterances = read_manifest(manifest, report=report, allow=served and served.allows)
    if shuffle:
        utterances = random.Random(0).sample(utterances, len(utterances))
    return utterances[:max(1, int(count))], report


def skipped_examples(report: SkipReport, manifest) -> str:
    """The first few skipped clips and why, paths named relative to the manifest's folder (an
    uploaded manifest's server folder is no business of the visitor's)."""
    given = Path(manifest).absolute().parent
    folders = {str(given) + os.sep, str(given.resolve()) + os.sep}  # the clips' keys are resolved
    examples = report.examples[:3]
    for folder in folders:
        examples = [example.replace(folder, "") for example in examples]
    return "; ".join(examples)


def summary_markdown(counts: ErrorCounts, rows: list, report: SkipReport, manifest) -> str:
    audio_s = sum(row["audio_s"] for row in rows)
    compute_s = sum(row["elapsed_s"] for row in rows)
    text = (f"**WER {100 * counts.wer:.1f} %** · **CER {100 * counts.cer:.1f} %** over "
            f"{len(rows)} clips ({counts.words} words, {audio_s:.1f} s of audio, "
            f"{compute_s / max(audio_s, 1e-9):.3f}× real time)")
    if report.total:
        text += f"\n\n{WARN}{report.summary()}: " + skipped_examples(report, manifest)
    return text


@shows_errors(lambda message: ([], [], message, []))
def validate(manifest, count: float = DEFAULT_SAMPLES, shuffle: bool = False,
             decoding: str = DEFAULT_DECODING, beam_size: float = DEFAULT_BEAM, model_dir: str | None = None,
             progress=gr.Progress(), served: ServedFolders | None = None):
    """Manifest (JSON lines) -> (table, word diff of every sample, aggregate WER/CER, samples).
    With `served`, the manifest and its clips must lie in the served folders."""
    if not manifest:
        raise UserError("Choose a validation manifest or upload a .jsonl file.")
    check_served(served, manifest, "The manifest")
    check_manifest_size(manifest)
    try:
        utterances, report = choose_utterances(manifest, count, shuffle, served)
    except FileNotFoundError:
        raise UserError(f"{manifest}: manifest not found.") from None
    except ValueError:  # not UTF-8: the reader's message names the server path, this one doesn't
        raise UserError(f"{Path(manifest).name} is not a JSON-lines text file (UTF-8).") from None
    if not utterances:
        raise UserError(f"{Path(manifest).name} has no usable clips ({report.summary()}: "
                        f"{skipped_examples(report, manifest)}).")
    recognizer = get_recognizer(model_dir, beam_width(decoding, beam_size))
    rows, counts = score_utterances(recognizer, utterances, report,
                                    lambda items: progress.tqdm(items, desc="scoring"))
    if not rows:  # never "WER 0.0 % over 0 clips"
        raise UserError(f"None of the clips of {Path(manifest).name} could be scored "
                        f"({report.summary()}: {skipped_examples(report, manifest)}).")
    table = [[i, row["audio_s"], row["ref"], row["hyp"], row["wer"], row["cer"]]
             for i, row in enumerate(rows, 1)]
    diffs = []
    for i, row in enumerate(rows, 1):
        diffs += [(f"{i}. ", None), *diff_highlights(row["ref"], row["hyp"]), ("\n", None)]
    return table, diffs, summary_markdown(counts, rows, report, manifest), rows


def pcm16(wave: np.ndarray) -> np.ndarray:
    """Float samples as 16-bit ones, clipped to full scale (what gr.Audio plays, what a session
    keeps of a take)."""
    return (np.clip(wave, -1, 1) * PCM16_FULL_SCALE).astype(np.int16)


@shows_errors(lambda message: (None, [(message, None)]))
def show_sample(samples: list | None, number: float = 1):
    """One scored sample (1-based) -> (its audio as (rate, int16), its word diff)."""
    if not samples:
        return None, []
    index = min(max(int(number or 1), 1), len(samples)) - 1
    row = samples[index]
    wave = read_audio(row["key"], 16000).numpy()
    audio = (16000, pcm16(wave))
    return audio, [(f"{index + 1}. ", None), *diff_highlights(row["ref"], row["hyp"])]


def pick_sample_row(event: gr.SelectData) -> int:
    """A click in the results table -> the sample number of that row."""
    return int(event.index[0]) + 1


def use_uploaded_manifest(path):
    """An uploaded .jsonl -> its server path, which becomes the chosen manifest."""
    return str(path) if path else None


# ------------------------------------------------------------------------------ model picker


def refresh_models(model_dir, runs_dir=None):
    """Rescan the runs folder -> the model dropdown (keeping the current choice)."""
    return gr.update(choices=model_choices(runs_dir, model_dir), value=model_dir)


def _model_outputs(model_dir, runs_dir, status=None):
    """(state, model dropdown, status, page header, manifest dropdown) once `model_dir` is chosen."""
    manifests = manifest_choices(runs_dir, model_dir)
    header = describe_model(model_dir)
    return (model_dir, gr.update(choices=model_choices(runs_dir, model_dir), value=model_dir),
            status or header, header,
            gr.update(choices=manifests, value=manifests[0][1] if manifests else None))


def choose_model(model_dir, current=None, runs_dir=None, served: ServedFolders | None = None):
    """A model directory -> (per-user model state, dropdown, status, header, manifest dropdown);
    a directory that can't be loaded (or, with `served`, lies elsewhere) leaves the current model
    in place and says why."""
    try:
        check_served(served, model_dir, "The model directory")
        with contextlib.suppress(FileNotFoundError):  # the copy a kill left beside it counts too
            check_served(served, resolve_model_dir(model_dir), "The model directory")
        if served is not None and Path(model_dir).resolve().is_relative_to(uploads_folder().resolve()):
            raise UserError("A model directory cannot be made of uploads; choose one from the list "
                            "or download one from the Hub.")
        get_recognizer(model_dir)
    except UserError as exc:
        return _model_outputs(current, runs_dir, WARN + str(exc))
    except Exception as exc:  # noqa: BLE001 - a broken checkpoint must not break the page
        log.exception("loading %s failed", model_dir)
        return _model_outputs(current, runs_dir, f"{WARN}{model_dir} could not be loaded "
                                                 f"({type(exc).__name__}: {exc}).")
    return _model_outputs(model_dir, runs_dir)


def hub_cache() -> Path:
    """The app's own Hub cache (never the machine's: the app trims it, see HUB_CACHE_MB)."""
    return Path(os.environ.get(HUB_CACHE_ENV) or Path.home() / ".cache" / "srcore" / "app-hub")


def mark_hub_model_used(model_dir: Path) -> None:
    """A Hub model in use counts as recently used, so that trimming the cache takes others first."""
    cache = hub_cache()
    if model_dir.resolve().is_relative_to(cache.resolve()):  # srcore.hub is only imported for those
        with contextlib.suppress(ImportError, OSError):
            from srcore.hub import mark_used
            mark_used(cache, model_dir)


def download_hub_model(repo_id, revision=None, current_model=None, runs_dir=None):
    """A Hugging Face Hub model id -> downloaded once, then chosen like any model directory."""
    repo_id, revision = (repo_id or "").strip(), (revision or "").strip() or None
    if not repo_id:
        return _model_outputs(current_model, runs_dir, WARN + "Type a Hub model id, e.g. `user/model`.")
    if not HUB_ID.match(repo_id):  # never a server path: those are chosen from the list
        return _model_outputs(current_model, runs_dir,
                              f"{WARN}{repo_id[:80]!r} is not a Hub model id (USER/NAME).")
    try:
        from srcore.hub import download, trim_cache  # lazily: only when someone asks for the Hub
    except ImportError:
        return _model_outputs(current_model, runs_dir,
                              WARN + "Hub downloads are not available in this build (srcore.hub).")
    try:
        # anonymously (never the server's own Hub login), and only repos that are srcore models
        model_dir = str(download(repo_id, revision=revision, token=False, srcore_only=True,
                                 cache_dir=hub_cache()))
    except Exception as exc:  # noqa: BLE001 - network, auth, not found: all become a message
        log.exception("downloading %s failed", repo_id)
        return _model_outputs(current_model, runs_dir,
                              f"{WARN}Could not download {repo_id}: {type(exc).__name__}: {exc}")
    try:
        for repo in trim_cache(hub_cache(), HUB_CACHE_MB, keep=model_dir):
            log.info("Hub cache over %d MB: removed %s", HUB_CACHE_MB, repo.name)
    except OSError:  # the download stands; the cache is trimmed after the next one
        log.warning("trimming the Hub cache %s failed", hub_cache(), exc_info=True)
    return choose_model(model_dir, current_model, runs_dir)


# ------------------------------------------------------------------------------ the page


def build_transcribe_tab(model_state):
    with gr.Row():
        with gr.Column():
            audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                             label=f"Audio: record or upload (wav, flac, ogg, mp3; up to "
                                   f"{MAX_AUDIO_MIN:.0f} min, {MAX_UPLOAD_MB} MB)",
                             elem_id="audio-input")
            with gr.Row():
                decoding = gr.Radio([DEFAULT_DECODING, GREEDY, BEAM], value=DEFAULT_DECODING, label="Decoding")
                beam_size = gr.Slider(2, 64, value=DEFAULT_BEAM, step=1, label="Beam width")
            show_picture = gr.Checkbox(value=True, label="Show what the model heard")
            button = gr.Button("Transcribe", variant="primary", elem_id="transcribe-button")
        with gr.Column():
            text = gr.Textbox(label="Transcript", lines=4, buttons=["copy"], elem_id="transcript")
            info = gr.Markdown(label="Details", elem_id="transcribe-info")
    picture = gr.Plot(label="What the model heard")
    button.click(transcribe, [audio, decoding, beam_size, model_state, show_picture],
                 [text, info, picture], api_name="transcribe",
                 concurrency_limit=TRANSCRIBE_CONCURRENCY, concurrency_id="model")
    with gr.Accordion("Live transcription (microphone)", open=False):
        gr.Markdown(f"Speak: the transcript is refreshed every {LIVE_EVERY_S:.0f} s; the last "
                    f"{LIVE_WINDOW_S:.0f} s are re-read each time (the models look both ways), "
                    f"older words are settled. Up to {MAX_AUDIO_MIN:.0f} min.")
        live_state = gr.State(new_live_state())
        mic = gr.Audio(sources=["microphone"], streaming=True, type="numpy", label="Microphone")
        live_text = gr.Textbox(label="Live transcript", lines=3, elem_id="live-transcript")
    # The recording's state is reset when it stops (the transcript stays on the page): an event
    # at its start raced the first streamed chunks and, now and then, no chunk was ever answered.
    mic.stop_recording(new_live_state, None, live_state, api_name="reset_live")
    mic.stream(live_transcribe, [mic, live_state, model_state], [live_state, live_text],
               api_name="live_stream", api_visibility="private", stream_every=LIVE_EVERY_S,
               time_limit=int(MAX_AUDIO_S), concurrency_limit=LIVE_STREAMS, concurrency_id="live")
    # The same for API clients, a piece (a file) per call; the session keeps the recording.
    piece = gr.Audio(type="filepath", visible=False)
    send_piece = gr.Button(visible=False)
    send_piece.click(live_transcribe_file, [piece, live_state, model_state], [live_state, live_text],
                     api_name="live_transcribe", concurrency_limit=TRANSCRIBE_CONCURRENCY,
                     concurrency_id="model")


def build_validation_tab(model_state, runs_dir, model_dir, data_dirs=()):
    manifests = manifest_choices(runs_dir, model_dir)
    with gr.Row():
        manifest = gr.Dropdown(manifests, value=manifests[0][1] if manifests else None,
                               allow_custom_value=True, label="Validation manifest", scale=3)
        upload = gr.File(file_types=[".jsonl", ".json"], label="…or upload a .jsonl manifest "
                         "(audio keys must be paths on this server)", scale=2)
    with gr.Row():
        count = gr.Slider(1, MAX_SAMPLES, value=DEFAULT_SAMPLES, step=1, label="Samples")
        shuffle = gr.Checkbox(value=False, label="Random samples (seed 0)")
        decoding = gr.Radio([DEFAULT_DECODING, GREEDY, BEAM], value=DEFAULT_DECODING, label="Decoding")
        beam_size = gr.Slider(2, 64, value=DEFAULT_BEAM, step=1, label="Beam width")
    button = gr.Button("Score samples", variant="primary")
    summary = gr.Markdown(label="Totals")
    table = gr.Dataframe(headers=["#", "seconds", "ground truth", "prediction", "WER", "CER"],
                         datatype=["number", "number", "str", "str", "number", "number"],
                         interactive=False, wrap=True, label="Samples (click a row to listen)",
                         column_widths=["5%", "8%", "36%", "35%", "8%", "8%"],
                         elem_id="samples-table")
    samples = gr.State([])
    with gr.Row():
        number = gr.Number(value=1, precision=0, minimum=1, label="Sample #", scale=1)
        player = gr.Audio(label="Sample audio", interactive=False, scale=3)
    sample_diff = gr.HighlightedText(label="This sample: ground truth vs prediction",
                                     color_map=DIFF_COLOURS, show_legend=True, elem_id="sample-diff")
    diffs = gr.HighlightedText(label="Word-level diff, (REF->HYP)", color_map=DIFF_COLOURS,
                               show_legend=True)
    upload.upload(use_uploaded_manifest, upload, manifest, api_name="use_uploaded_manifest")

    def validate_served(manifest, count, shuffle, decoding, beam_size, model_dir,
                        progress=gr.Progress()):
        """validate, reading only the served folders (as they are now: new runs count)."""
        return validate(manifest, count, shuffle, decoding, beam_size, model_dir, progress,
                        served_folders(model_dir, runs_dir, data_dirs))

    button.click(validate_served, [manifest, count, shuffle, decoding, beam_size, model_state],
                 [table, diffs, summary, samples], api_name="validate",
                 concurrency_limit=TRANSCRIBE_CONCURRENCY, concurrency_id="model"
                 ).then(show_sample, [samples, number], [player, sample_diff], api_name=False)
    table.select(pick_sample_row, None, number, api_name="pick_sample_row",
                 api_visibility="undocumented")
    number.change(show_sample, [samples, number], [player, sample_diff], api_name="show_sample")
    return manifest


def build_model_tab(runs_dir, model_dir):
    gr.Markdown("Choose the shipped model, a training run's checkpoint, or a Hugging Face Hub model "
                "(downloaded when you click). Your choice only affects your session.")
    with gr.Row():
        picker = gr.Dropdown(model_choices(runs_dir, model_dir), value=model_dir,
                             allow_custom_value=True, label="Model", scale=4)
        refresh = gr.Button("Rescan runs", scale=1)
    with gr.Row():
        hub_id = gr.Textbox(label="Hub model id", placeholder="user/model", scale=3)
        revision = gr.Textbox(label="Revision (optional)", placeholder="main", scale=1)
        download = gr.Button("Download and use", scale=1)
    status = gr.Markdown(describe_model(model_dir))
    return picker, refresh, hub_id, revision, download, status


# ------------------------------------------------------------------------------ teach it your voice
#
# A visitor's takes live in their session (gr.State, at the model's rate, at most MAX_TAKE_S each);
# adapting writes them to a session folder, fine-tunes there and keeps the adapted model in it; the
# folder is deleted with the session (the State's delete_callback), after SESSION_FOLDER_MAX_S or
# when the server exits (SessionFolders).

PROMPTS = adaptation.PROMPTS


def prompt_index(number) -> int:
    """The 0-based prompt a (1-based, possibly empty or out of range) prompt number means."""
    return min(max(int(number or 1), 1), len(PROMPTS)) - 1


def prompt_markdown(number) -> str:
    index = prompt_index(number)
    return f"### Prompt {index + 1} of {len(PROMPTS)}\n\n> **{PROMPTS[index]}**"


def takes_rows(takes: dict) -> list[list]:
    return [[i + 1, text, f"{takes[i].size / TAKE_RATE:.1f} s" if i in takes else ""]
            for i, text in enumerate(PROMPTS)]


@shows_errors(lambda message: (gr.update(), gr.update(), gr.update(), message))
def keep_take(audio_path, number, takes: dict | None):
    """A recorded or uploaded take of prompt `number` -> (takes, table, next prompt number, status).
    Recording a prompt again replaces its take."""
    takes = dict(takes or {})
    index = prompt_index(number)
    name, wave = read_upload(audio_path, TAKE_RATE, MAX_TAKE_S,
                             f"A take is one prompt read aloud, at most {MAX_TAKE_S:.0f} s.")
    if wave.numel() < MIN_AUDIO_S * TAKE_RATE or is_silent(wave):
        raise UserError(f"{name} is silent or too short: read the prompt aloud and record again.")
    takes[index] = stored_take(wave)
    following = next((i for i in range(index + 1, len(PROMPTS)) if i not in takes),
                     next((i for i in range(len(PROMPTS)) if i not in takes), index))
    status = f"Kept a {wave.numel() / TAKE_RATE:.1f} s take of prompt {index + 1}; " \
             f"{len(takes)} of {len(PROMPTS)} recorded."
    return takes, takes_rows(takes), following + 1, status


def stored_take(wave: torch.Tensor) -> np.ndarray:
    """A take as the session keeps it: 16-bit samples, half the memory of floats (a microphone
    take holds no more than that)."""
    return pcm16(wave.numpy())


class SessionFolders:
    """The folders this server made for visitors' takes and adapted models (only its user can
    read them). One goes with its session (the State's delete_callback); gradio drops sessions
    past SESSIONS_KEPT without that callback, so a folder older than SESSION_FOLDER_MAX_S is
    removed when the next one is made, and all of them when the server exits."""
    PREFIX = "srcore-voice-"

    def __init__(self, max_age_s: float = SESSION_FOLDER_MAX_S):
        self.max_age_s, self.made = max_age_s, {}  # folder -> when it was made (monotonic)
        atexit.register(self.remove_all)

    def new(self) -> str:
        self.remove_older_than(self.max_age_s)
        folder = tempfile.mkdtemp(prefix=self.PREFIX)
        self.made[folder] = time.monotonic()
        return folder

    def remove(self, folder) -> None:
        """Remove a session folder of this app's (any other path is left alone)."""
        if folder and Path(folder).name.startswith(self.PREFIX):
            shutil.rmtree(folder, ignore_errors=True)
            self.made.pop(str(folder), None)

    def is_open(self, folder) -> bool:
        return str(folder) in self.made

    def remove_if_closed(self, folder) -> None:
        """For work that wrote into a session folder: if the session ended meanwhile (its folder
        removed, and maybe made again by that writing), nothing of it stays."""
        if not self.is_open(folder):
            self.remove(folder)

    def remove_older_than(self, seconds: float) -> None:
        now = time.monotonic()
        for folder in [f for f, made in self.made.items() if now - made > seconds]:
            self.remove(folder)

    def remove_all(self) -> None:
        for folder in list(self.made):
            self.remove(folder)


SESSION_FOLDERS = SessionFolders()  # this server process's; the voice tab's handlers use it


def new_session_folder() -> str:
    return SESSION_FOLDERS.new()


def remove_session_folder(folder) -> None:
    SESSION_FOLDERS.remove(folder)


def write_takes(takes: dict, folder: Path) -> list[Utterance]:
    """The takes as clips in `folder` and their utterances, in prompt order."""
    folder.mkdir(parents=True, exist_ok=True)
    utterances = []
    for index in sorted(takes):
        path = folder / f"prompt_{index + 1:02d}.wav"
        write_audio(path, takes[index].astype(np.float32) / PCM16_FULL_SCALE, TAKE_RATE)
        utterances.append(Utterance(str(path), PROMPTS[index], takes[index].size / TAKE_RATE,
                                    "you"))
    return utterances


def loss_figure(losses: list[float]) -> go.Figure:
    figure = go.Figure(go.Scatter(x=list(range(1, len(losses) + 1)), y=losses, mode="lines"))
    figure.update_layout(height=220, margin=dict(l=40, r=10, t=10, b=30),
                         xaxis_title="step", yaxis_title="loss")
    return figure


def adapt_in_background(model_dir: str, utterances: list, out: Path, cfg: AdaptConfig):
    """Run the adaptation in a thread; yields ("step", (step, steps, loss, elapsed, budget)) as it
    goes and finally ("done", AdaptResult) or ("error", exception)."""
    events: queue.Queue = queue.Queue()

    def work():
        try:
            last = ("done", adaptation.adapt(model_dir, utterances, out, cfg,
                                             on_step=lambda *step: events.put(("step", step))))
        except Exception as exc:  # noqa: BLE001 - handed to the page as a message
            log.exception("adaptation failed")
            last = ("error", exc)
        SESSION_FOLDERS.remove_if_closed(out.parent)  # the visitor may have left while it ran
        events.put(last)

    threading.Thread(target=work, daemon=True, name="adapt").start()
    while True:
        kind, payload = events.get()
        yield kind, payload
        if kind != "step":
            return


def default_adapt_config(minutes: float = ADAPT_MINUTES) -> AdaptConfig:
    return AdaptConfig(minutes=minutes, held_out=ADAPT_HELD_OUT)


def adapt_voice(takes: dict | None, model_dir: str | None, folder: str | None,
                cfg: AdaptConfig | None = None, progress=gr.Progress()):
    """Fine-tune the visitor's model on their takes. Yields (status, loss plot, before/after rows,
    model zip, model state, session folder, model switch, {"adapted": dir, "original": dir}) as it
    goes; the adapted model becomes this visitor's (the switch names the two, never their paths)."""
    cfg = cfg or default_adapt_config()
    takes = dict(takes or {})
    folder = folder if folder and Path(folder).is_dir() else new_session_folder()
    unchanged = (gr.update(), [], None, model_dir, folder, gr.update(), gr.update())
    needed = cfg.held_out + MIN_TRAINING_TAKES
    if len(takes) < needed:
        yield (WARN + f"Record at least {needed} prompts first ({len(takes)} so far); "
               f"{cfg.held_out} of them are kept aside to measure the change.", *unchanged)
        return
    base = model_dir or str(DEFAULT_MODEL_DIR)
    if not is_model_dir(base):
        yield WARN + missing_model_message(base), *unchanged
        return
    if read_config(base)["model"].get("features", {}).get("sample_rate", 16000) != TAKE_RATE:
        yield WARN + "This model does not read 16 kHz audio; choose another to adapt.", *unchanged
        return
    session = Path(folder)
    shutil.rmtree(session / "takes", ignore_errors=True)
    utterances = write_takes(takes, session / "takes")
    out = session / "adapted-model"
    losses, last_shown = [], 0.0
    progress(0, desc="starting")
    for kind, payload in adapt_in_background(base, utterances, out, cfg):
        if kind == "step":
            step, steps, loss, elapsed, budget = payload
            losses.append(loss)
            progress(max(step / steps, elapsed / budget), desc=f"step {step}, loss {loss:.2f}")
            if time.monotonic() - last_shown > 1.0:
                last_shown = time.monotonic()
                yield (f"Learning your voice: step {step}, loss {loss:.2f}, {elapsed:.0f} of "
                       f"at most {budget:.0f} s.", loss_figure(losses), [], None, model_dir, folder,
                       gr.update(), gr.update())
        elif kind == "error":
            yield WARN + f"Adaptation failed ({type(payload).__name__}: {payload}).", *unchanged
            return
        else:
            result = payload
    shutil.rmtree(session / "takes", ignore_errors=True)  # the model keeps what it learnt
    archive = shutil.make_archive(str(session / "adapted-model"), "zip", out)
    rows = [[row["ref"], row["before"], row["after"]] for row in result.held_out]
    yield (f"**Adapted** in {result.seconds:.0f} s ({result.steps} steps on {result.clips} takes; "
           f"vocal tract warp {result.speaker_warp:g}). "
           f"On your {result.before['n']} held-out prompts: WER {100 * result.before['wer']:.0f} % "
           f"before, **{100 * result.after['wer']:.0f} %** after. Your transcriptions now use the "
           "adapted model (this session only); download it below.",
           loss_figure(losses), rows, archive, str(out), folder,
           gr.update(choices=[("your adapted model", "adapted"), (model_label(base), "original")],
                     value="adapted", visible=True), {"adapted": str(out), "original": base})


def build_voice_tab(model_state, allowed: bool, cfg: AdaptConfig):
    if not allowed:
        gr.Markdown("Teaching the model your voice is switched off on this server (it is off on "
                    "a public Space unless the app is started with `--allow-adapt`). Run the app "
                    "on your own machine to use it, or use `python -m srcore.adapt`.")
        return
    gr.Markdown(f"Read the prompts aloud, one take each (record again to replace one). With "
                f"{MIN_TAKES} or more, **Adapt** fine-tunes the model to your voice for at most "
                f"{cfg.minutes:g} min, keeping {cfg.held_out} takes aside to show the difference. "
                "Your recordings and your adapted model stay in your session only and are "
                f"deleted when you leave (at the latest after {SESSION_FOLDER_MAX_S // 3600} "
                "hours). One adaptation runs at a time; others wait in line.")
    takes = gr.State({}, time_to_live=TAKES_TTL_S)
    folder = gr.State(None, delete_callback=remove_session_folder)
    with gr.Row():
        with gr.Column(scale=3):
            number = gr.Slider(1, len(PROMPTS), value=1, step=1, label="Prompt")
            prompt = gr.Markdown(prompt_markdown(1), elem_id="voice-prompt")
            take = gr.Audio(sources=["microphone", "upload"], type="filepath",
                            label=f"Your take (at most {MAX_TAKE_S:.0f} s)", elem_id="voice-take")
            keep = gr.Button("Keep this take", elem_id="keep-take")
            status = gr.Markdown(elem_id="voice-status")
        with gr.Column(scale=2):
            table = gr.Dataframe(takes_rows({}), headers=["#", "prompt", "take"], interactive=False,
                                 wrap=True, label="Your takes", elem_id="voice-takes")
    adapt_button = gr.Button("Adapt the model to my voice", variant="primary", elem_id="adapt-button")
    loss = gr.Plot(label="Training loss")
    results = gr.Dataframe(headers=["held-out prompt", "before", "after"], interactive=False,
                           wrap=True, label="Before and after, on prompts it did not learn from",
                           elem_id="voice-results")
    archive = gr.File(label="Your adapted model (a model directory, zipped)")
    switch = gr.Radio([], label="Transcribe with", visible=False, elem_id="voice-model-switch")
    voice_models = gr.State({})
    number.change(prompt_markdown, number, prompt, api_name="voice_prompt")
    keep.click(keep_take, [take, number, takes], [takes, table, number, status], api_name="keep_take"
               ).then(lambda: None, None, take, api_name=False)
    adapt_button.click(functools.partial(adapt_voice, cfg=cfg), [takes, model_state, folder],
                       [status, loss, results, archive, model_state, folder, switch, voice_models],
                       api_name="adapt_voice", concurrency_limit=1, concurrency_id="adapt")
    switch.input(lambda chosen, models, current: models.get(chosen, current),
                 [switch, voice_models, model_state], model_state, api_name="use_voice_model")


def adapt_allowed_by_default() -> bool:
    """Teaching the model a voice is on, except on a public Hugging Face Space."""
    return not os.environ.get(SPACE_ENV)


def build_demo(model_dir=None, runs_dir=DEFAULT_RUNS_DIR, data_dirs=(), allow_adapt: bool | None = None,
               adapt_config: AdaptConfig | None = None) -> gr.Blocks:
    """The whole app for `model_dir` (default: the shipped model) and the runs under `runs_dir`;
    visitors may read files in those, the project, uploads and `data_dirs` only. `allow_adapt`
    (default: not on a Space) turns on "Teach it your voice" with `adapt_config` (default: a
    ADAPT_MINUTES cap, ADAPT_HELD_OUT takes held out)."""
    allow_adapt = adapt_allowed_by_default() if allow_adapt is None else allow_adapt
    model_dir = str(model_dir or DEFAULT_MODEL_DIR)
    runs_dir = str(runs_dir) if runs_dir else None
    with gr.Blocks(title="srcore speech recognition", analytics_enabled=False,
                   delete_cache=(CACHE_SWEEP_S, CACHE_AGE_S)) as demo:
        gr.Markdown("# Speech recognition")
        header = gr.Markdown(describe_model(model_dir), elem_id="model-status")
        model_state = gr.State(model_dir)
        with gr.Tab("Transcribe"):
            build_transcribe_tab(model_state)
        with gr.Tab("Validation samples"):
            manifest = build_validation_tab(model_state, runs_dir, model_dir, data_dirs)
        with gr.Tab("Teach it your voice"):
            build_voice_tab(model_state, allow_adapt, adapt_config or default_adapt_config())
        with gr.Tab("Model"):
            picker, refresh, hub_id, revision, download, status = build_model_tab(
                runs_dir, model_dir)
        outputs = [model_state, picker, status, header, manifest]
        picker.input(lambda chosen, current: choose_model(
                         chosen, current, runs_dir, served_folders(current, runs_dir, data_dirs)),
                     [picker, model_state], outputs, api_name="choose_model")
        refresh.click(lambda current: refresh_models(current, runs_dir), model_state, picker,
                      api_name="refresh_models")
        download.click(lambda repo, rev, current: download_hub_model(repo, rev, current, runs_dir),
                       [hub_id, revision, model_state], outputs, api_name="download_hub_model")
    demo.queue(default_concurrency_limit=TRANSCRIBE_CONCURRENCY)
    return demo


def launch(demo: gr.Blocks, port: int | None = None, share: bool = False, **kwargs):
    """Start the server with the app's upload and session limits; returns what gr.Blocks.launch
    returns."""
    return demo.launch(server_port=port, share=share, max_file_size=MAX_UPLOAD_MB * 2**20,
                       state_session_capacity=SESSIONS_KEPT, **kwargs)


def exit_on_sigterm() -> None:
    """Make SIGTERM (what a container or a Space sends to stop the server) an ordinary exit, so
    the exit handlers run and no visitor's session folder stays behind."""
    def stop(signum, _frame):
        SESSION_FOLDERS.remove_all()  # now: SystemExit waits for a running adaptation's thread
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, stop)


def server_port() -> int:
    return int(os.environ.get("PORT") or os.environ.get("GRADIO_SERVER_PORT") or 7860)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help=f"model directory (default: {DEFAULT_MODEL_DIR})")
    parser.add_argument("--runs", default=str(DEFAULT_RUNS_DIR), help="runs folder for the model picker")
    parser.add_argument("--share", action="store_true", help="also serve on a public gradio.live link")
    parser.add_argument("--data", action="append", default=[],
                        help="a folder of manifests and audio visitors may score (repeatable)")
    parser.add_argument("--allow-adapt", action=argparse.BooleanOptionalAction, default=None,
                        help="the \"Teach it your voice\" tab (default: on, but off on a Hugging Face Space)")
    parser.add_argument("--adapt-minutes", type=float, default=ADAPT_MINUTES,
                        help=f"time cap of one adaptation (default {ADAPT_MINUTES:g})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    custom = (args.model is not None or args.runs != str(DEFAULT_RUNS_DIR) or args.data
              or args.allow_adapt is not None or args.adapt_minutes != ADAPT_MINUTES)
    page = build_demo(args.model, args.runs, args.data, args.allow_adapt,
                      default_adapt_config(args.adapt_minutes)) if custom else demo
    model_dir = args.model or DEFAULT_MODEL_DIR
    if is_model_dir(model_dir):
        get_recognizer(model_dir)  # load before the first visitor arrives
    else:
        log.warning("%s", missing_model_message(model_dir))
    exit_on_sigterm()
    launch(page, server_port(), args.share)


demo = build_demo()

if __name__ == "__main__":
    main()
