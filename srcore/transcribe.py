"""Speech to text with a trained model directory.

    python -m srcore.transcribe [--model DIR] [--beam N] FILE...

prints one transcript per file, or (--format json, srt, vtt) word timings and subtitles, to stdout
or as files in --output-dir. As a library: `Recognizer.load(DIR)` once, then
`recognizer.transcribe_file(path)` or `recognizer.transcribe(samples, rate)` from any thread.
Only the speech is decoded (srcore.vad: silence and room noise around and between the words are
left out, each stretch of speech is normalised on its own; `--keep-silence` decodes everything).
Long speech is cut into chunks of at most CHUNK_S seconds at the quietest moment near each cut.
"""
import argparse
import json
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from .atomic import output_folder, write_text_atomic
from .audio import AudioError, is_silent, read_audio, to_model_rate
from .checkpoint import load_model, resolve_model_dir
from .decoding import UNLIKELY, decode_with_path, describe_decoder, greedy_decode, load_decoding, make_decoder
from .features import LogMel
from .model import ModelConfig
from .text import BLANK, CHAR_TO_ID
from .timestamps import Word, segments, to_srt, to_vtt, word_timings
from .vad import speech_regions

DEFAULT_MODEL_DIR = Path(__file__).resolve().parent.parent / "checkpoints" / "default"
CHUNK_S = 20.0  # longest piece the model sees at once
CUT_SEARCH_S = 4.0  # a cut moves back to the quietest 10 ms within this many seconds
MIN_TAIL_S = 1.0  # no cut leaves less than this after it (a sliver is too short to read)
MAX_AUDIO_S = 30 * 60.0  # longer input is refused, not silently truncated
MIN_AUDIO_S = 0.1
FORMATS = {"text": ".txt", "json": ".json", "srt": ".srt", "vtt": ".vtt"}  # --format -> file suffix


@dataclass
class Transcript:
    text: str
    audio_s: float
    elapsed_s: float
    log_probs: torch.Tensor  # (frames, classes), the model's per-frame log-probabilities
    frame_s: float  # seconds per output frame
    path: list[int]  # the decoder's token at each frame

    @property
    def rtf(self) -> float:
        return self.elapsed_s / max(self.audio_s, 1e-9)

    @property
    def words(self) -> list[Word]:
        """The transcript's words with their start and end in seconds."""
        return word_timings(self.path, self.frame_s)


def chunk_bounds(wave: torch.Tensor, sample_rate: int, chunk_s: float = CHUNK_S) -> list[tuple]:
    """(start, end) sample ranges covering `wave`, each at most chunk_s long, cut in quiet spots
    and never leaving less than MIN_TAIL_S after the last cut."""
    chunk, search, hop = int(chunk_s * sample_rate), int(CUT_SEARCH_S * sample_rate), sample_rate // 100
    min_tail = int(MIN_TAIL_S * sample_rate)
    bounds, start = [], 0
    while wave.numel() - start > chunk:
        window_end = min(start + chunk, wave.numel() - min_tail)
        window = wave[window_end - search:window_end]
        energy = window[: window.numel() // hop * hop].reshape(-1, hop).pow(2).mean(dim=1)
        cut = window_end - search + int(energy.argmin()) * hop
        bounds.append((start, cut))
        start = cut
    bounds.append((start, wave.numel()))
    return bounds


class Recognizer:
    """A loaded model with its feature extractor and decoder; safe to share between threads."""

    def __init__(self, model: torch.nn.Module, config: ModelConfig, model_dir: Path,
                 beam: int = 0, lexicon: str | None = None, lm: str | None = None, greedy: bool = False,
                 keep_silence: bool = False):
        """Decoding: the model directory's own (its word LM with tuned weights, when it has one)
        unless `greedy`, or a beam width / lexicon / LM file asks for another. `keep_silence`: the
        model reads the whole input, not only its speech regions."""
        self.model, self.config, self.model_dir = model.eval(), config, model_dir
        self.keep_silence = keep_silence
        self.logmel = LogMel(config.features)
        if beam > 1 or lexicon or lm:
            self.decode = make_decoder(beam, lexicon, lm)
        else:
            self.decode = greedy_decode if greedy else load_decoding(model_dir)
        self.decoding = describe_decoder(self.decode)
        self.beam = beam
        self._lock = threading.Lock()  # the beam decoder is not re-entrant
        self.frame_s = config.features.hop_length * config.stride / config.features.sample_rate

    @classmethod
    def load(cls, model_dir=None, beam: int = 0, lexicon: str | None = None, lm: str | None = None,
             device: str = "cpu", greedy: bool = False, keep_silence: bool = False) -> "Recognizer":
        model_dir = resolve_model_dir(model_dir or DEFAULT_MODEL_DIR)
        model, config = load_model(model_dir, device)
        return cls(model, config, model_dir, beam, lexicon, lm, greedy, keep_silence)

    @property
    def sample_rate(self) -> int:
        return self.config.features.sample_rate

    @torch.inference_mode()
    def log_probs(self, wave: torch.Tensor) -> torch.Tensor:
        """Per-frame log-probabilities (frames, classes) of a mono waveform at the model's rate.

        The model reads the speech regions; every other frame is a certain blank, and the middle
        frame of each pause between regions a certain word boundary (a space), so a word never
        runs on across a pause and the frames keep the input's timeline."""
        regions = [(0, wave.numel())] if self.keep_silence else speech_regions(wave, self.sample_rate)
        if regions == [(0, wave.numel())]:
            return self._model_log_probs(wave)
        feature_frames = wave.numel() // self.config.features.hop_length + 1  # the log-mel's count
        frames = int(self.model.output_lengths(torch.tensor([feature_frames]))[0])
        out = torch.full((frames, self.config.num_classes), UNLIKELY)
        out[:, BLANK] = 0.0
        previous_end = None
        for start, end in regions:
            first = min(round(start / self.sample_rate / self.frame_s), frames - 1)
            if previous_end is not None:
                boundary = (previous_end + first) // 2
                out[boundary] = UNLIKELY
                out[boundary, CHAR_TO_ID[" "]] = 0.0
            piece = self._model_log_probs(wave[start:end])[: frames - first]
            out[first:first + piece.shape[0]] = piece
            previous_end = first + piece.shape[0]
        return out

    def _model_log_probs(self, wave: torch.Tensor) -> torch.Tensor:
        """The model's log-probabilities of the whole of `wave`, read in chunks of at most CHUNK_S."""
        pieces = []
        device = next(self.model.parameters()).device
        for start, end in chunk_bounds(wave, self.sample_rate):
            feats = self.logmel(wave[start:end]).unsqueeze(0).to(device)
            out, lengths = self.model(feats, torch.tensor([feats.shape[-1]]))
            pieces.append(out[0, : int(lengths[0])].float().cpu())
        return torch.cat(pieces)

    def check_length(self, wave: torch.Tensor) -> float:
        """The waveform's seconds; AudioError when it is too short to read or too long."""
        audio_s = wave.numel() / self.sample_rate
        if audio_s < MIN_AUDIO_S:
            raise AudioError(f"audio is too short ({audio_s:.2f} s; at least {MIN_AUDIO_S} s)")
        if audio_s > MAX_AUDIO_S:
            raise AudioError(f"audio is too long ({audio_s / 60:.1f} min; at most "
                             f"{MAX_AUDIO_S / 60:.0f} min)")
        return audio_s

    def transcribe_wave(self, wave: torch.Tensor) -> Transcript:
        """Transcribe a mono float waveform already at the model's sample rate."""
        audio_s = self.check_length(wave)
        started = time.perf_counter()
        log_probs = self.log_probs(wave)
        with self._lock:
            text, path = decode_with_path(self.decode, log_probs, log_probs.shape[0])
        return Transcript(text, audio_s, time.perf_counter() - started, log_probs, self.frame_s, path)

    def transcribe(self, samples, sample_rate: int) -> Transcript:
        """Transcribe samples at any rate: numpy or tensor, (samples,) or (samples, channels)."""
        return self.transcribe_wave(to_model_rate(samples, sample_rate, self.sample_rate))

    def read_clip(self, path, max_seconds: float = MAX_AUDIO_S) -> torch.Tensor:
        """A file's waveform at the model's rate; AudioError naming the file when it cannot be
        read, is silent, too short, or longer than `max_seconds` (its header says so first)."""
        wave = read_audio(path, self.sample_rate, max_seconds)
        if is_silent(wave):
            raise AudioError(f"{Path(path).name}: the audio is silent, nothing to transcribe")
        try:
            self.check_length(wave)
        except AudioError as exc:
            raise AudioError(f"{path}: {exc}") from None
        return wave

    def transcribe_file(self, path, max_seconds: float = MAX_AUDIO_S) -> Transcript:
        return self.transcribe_wave(self.read_clip(path, max_seconds))


def beam_width(text: str) -> int:
    """--beam's value: a width of 2 or more, or 0 for the model's own decoding."""
    width = int(text)
    if width != 0 and width < 2:
        raise argparse.ArgumentTypeError(f"{width}: a beam is 2 or more wide (--greedy is best path; "
                                         "0 the model's own decoding)")
    return width


def add_recognizer_arguments(parser: argparse.ArgumentParser) -> None:
    """The model and decoding options shared by the transcribe and evaluate commands."""
    parser.add_argument("--model", default=None, help=f"model directory (default: {DEFAULT_MODEL_DIR})")
    parser.add_argument("--greedy", action="store_true",
                        help="best-path decoding, without the model's word LM")
    parser.add_argument("--beam", type=beam_width, default=0,
                        help="beam width of a lexicon-free character beam search (default: the model's "
                             "own decoding: its word LM when it has one, else greedy)")
    parser.add_argument("--lexicon", help="lexicon file for beam search (words to spellings)")
    parser.add_argument("--lm", help="KenLM binary/ARPA language model (or an LM folder) for beam search")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--keep-silence", action="store_true",
                        help="decode the whole input, silence and noise around the speech included "
                             "(default: only the speech regions, see srcore.vad)")


def recognizer_from_args(args: argparse.Namespace) -> Recognizer:
    """Set the thread count and load the model the options name; exit with a message if it can't."""
    if args.greedy and (args.beam > 1 or args.lexicon or args.lm):
        sys.exit("error: --greedy is best-path decoding; it cannot go with --beam, --lexicon or --lm")
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return Recognizer.load(args.model, args.beam, args.lexicon, args.lm, greedy=args.greedy,
                               keep_silence=args.keep_silence)
    except (FileNotFoundError, ValueError) as exc:
        sys.exit(f"error: {exc}")


def render(result: Transcript, fmt: str, path: str = "") -> str:
    """A transcript as --format asks: its text, JSON with word timings and subtitles, SRT or VTT."""
    if fmt == "text":
        return result.text + "\n"
    words = result.words
    if fmt == "srt":
        return to_srt(segments(words))
    if fmt == "vtt":
        return to_vtt(segments(words))
    return json.dumps({"file": path, "text": result.text, "audio_s": round(result.audio_s, 3),
                       "words": [[w.word, round(w.start, 2), round(w.end, 2)] for w in words],
                       "segments": [[round(s.start, 2), round(s.end, 2), s.text]
                                    for s in segments(words)]}) + "\n"


def output_path(path: str, fmt: str, output_dir: Path) -> Path:
    """Where --output-dir puts the transcript of `path`: output_dir/<its name><format's suffix>."""
    return output_dir / (Path(path).stem + FORMATS[fmt])


def write_output(result: Transcript, fmt: str, path: str, output_dir: Path) -> Path:
    """Write the transcript of `path` to its output_path, whole or not at all."""
    return write_text_atomic(output_path(path, fmt, output_dir), render(result, fmt, path))


def check_output_dir(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse --output-dir targets that two inputs share, or that exist (a reference transcript
    beside its audio is a .txt too) unless --overwrite, before anything is transcribed."""
    try:
        output_folder(args.output_dir)
    except ValueError as exc:
        parser.error(str(exc))
    targets = [output_path(f, args.format, args.output_dir) for f in args.files]
    if len(set(targets)) < len(targets):
        parser.error("with --output-dir every input needs its own name (two would write the same file)")
    existing = [str(t) for t in targets if t.exists()]
    if existing and not args.overwrite:
        parser.error(f"{existing[0]} exists" + (f" (and {len(existing) - 1} more)" if len(existing) > 1 else "")
                     + "; --overwrite replaces, or choose another --output-dir")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.transcribe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, mp3)")
    parser.add_argument("--format", choices=tuple(FORMATS), default="text",
                        help="text; json (a line per file: text, [word, start s, end s] per word, "
                             "subtitle segments); srt or vtt subtitles")
    parser.add_argument("--output-dir", type=Path,
                        help="write one file per input (its name, the format's suffix) here "
                             "instead of printing")
    parser.add_argument("--overwrite", action="store_true",
                        help="with --output-dir, replace files that are already there")
    add_recognizer_arguments(parser)
    args = parser.parse_args(argv)
    if args.format in ("srt", "vtt") and len(args.files) > 1 and not args.output_dir:
        parser.error(f"--format {args.format} with several files needs --output-dir")
    if args.output_dir:
        check_output_dir(parser, args)
    recognizer = recognizer_from_args(args)
    failed = 0
    for path in args.files:
        try:
            result = recognizer.transcribe_file(path)
        except AudioError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.output_dir:
            print(write_output(result, args.format, path, args.output_dir), flush=True)
        elif args.format == "text" and len(args.files) > 1:
            print(f"{path}\t{result.text}", flush=True)
        else:
            print(render(result, args.format, path), end="", flush=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
