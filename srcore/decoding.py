"""CTC decoding: greedy, or beam search (flashlight-text) with a lexicon and a word n-gram LM.

Every decoder maps (log_probs (frames, classes), length) -> text.

- `greedy_decode`: best path, collapse repeats, drop blanks.
- `decode_with_path(decoder, ...)`: (text, the token chosen at each frame), for word timings.
- `BeamDecoder(beam_size, lexicon, lm, lm_weight, word_score, beam_threshold, prior_scale,
  token_prior)`: with `lm` an LM
  folder (below) it is lexicon-constrained beam search with the n-gram LM; with a lexicon and/or a
  KenLM file (ARPA or binary) it is the same with those files; with neither it is lexicon-free beam
  search over characters. The LM, lexicon and trie are loaded once per process and shared
  (`load_lm_resources`); a BeamDecoder itself is not re-entrant: one call at a time.
- `make_decoder(beam, lexicon, lm, **options)`: greedy when beam <= 1 and no LM, else a BeamDecoder.
- `load_decoding(model_dir)`: the decoder a model directory asks for (one call for transcribe,
  evaluate and the app): its LM with its tuned weights when it has one, else greedy.

Layout of a model directory with an LM (`python -m srcore.lm build` and `tune` write these files):

    MODEL_DIR/config.json, model.safetensors, tokens.txt   the acoustic model
    MODEL_DIR/lm/lm.arpa        word n-gram LM (ARPA, interpolated modified Kneser-Ney)
    MODEL_DIR/lm/lexicon.txt    `word w o r d |` per line: the words the decoder may output
    MODEL_DIR/lm/lm.json        sources, licences, sizes, the build command
    MODEL_DIR/decoding.json     {"decoder": "lexicon+lm", "lm": "lm", "beam_size": 64,
                                 "beam_threshold": 25, "lm_weight": 2.5, "word_score": -1,
                                 "prior_scale": 0.4, "token_prior": [29 probabilities], ...}
                                (written by `python -m srcore.lm tune --write`; optional: without
                                it an lm/ folder is used with DEFAULT_LM_OPTIONS; "decoder":
                                "greedy" forces greedy decoding)

Prior correction (beam search only): a CTC model's per-frame posteriors carry its training data's
token frequencies (blank most of all), and with a strong LM weight that prior makes words go
missing. Before the search every frame's log-probabilities lose `prior_scale` x log
`token_prior`, the model's average per-frame posterior of each token on clips of its training
domain (`lm tune --prior-from`): posteriors become scaled likelihoods, as in hybrid ASR. The 29
values follow the model's classes (srcore.text.CHARS, then blank). Greedy decoding is left alone
(there the correction does not help).
"""
from __future__ import annotations

import contextlib
import os
import sys
import threading
import warnings
from collections import OrderedDict
from pathlib import Path

import torch

from .atomic import read_json_object
from .text import BLANK, CHARS

_BEAM_TOKENS = [c if c != " " else "|" for c in CHARS] + ["<blank>"]
SIL_TOKEN, UNK = "|", "<unk>"
DECODING_FILE, LM_DIR = "decoding.json", "lm"
ARPA_FILE, LEXICON_FILE, INFO_FILE = "lm.arpa", "lexicon.txt", "lm.json"  # an LM folder (srcore.lm build)
UNLIKELY = -30.0  # log-probability of a token that a frame must not take
SPACE = CHARS.index(" ")
# Prefix beam search (no word LM) keeps a state per prefix it tried, which grows with the frames
# it reads: long input is searched a window at a time (about 12 s), cut at a word boundary.
PREFIX_WINDOW_FRAMES, PREFIX_CUT_SEARCH = 400, 100
DEFAULT_LM_OPTIONS = {"beam_size": 64, "beam_threshold": 25.0, "lm_weight": 2.0, "word_score": 0.0,
                      "prior_scale": 0.0}


def best_path(log_probs: torch.Tensor, length: int | None = None) -> list[int]:
    """The most likely token of each frame of one utterance (frames, classes)."""
    return log_probs[:length].argmax(-1).tolist()


def collapse(path) -> str:
    """The text of a per-frame token path: repeats collapsed, blanks (and ids outside the
    alphabet) dropped, spaces squeezed."""
    chars, previous = [], None
    for token in path:
        if token != previous and 0 <= token < len(CHARS):
            chars.append(CHARS[token])
        previous = token
    return " ".join("".join(chars).split())


def greedy_decode(log_probs: torch.Tensor, length: int | None = None) -> str:
    """Best path of one utterance (frames, classes): collapse repeats, drop blanks."""
    return collapse(best_path(log_probs, length))


def decode_with_path(decoder, log_probs: torch.Tensor, length: int | None = None) -> tuple[str, list[int]]:
    """(text, the per-frame token path behind it) from any decoder of this module; the path
    gives word timings (srcore.timestamps)."""
    if isinstance(decoder, BeamDecoder):
        return decoder.decode_path(log_probs, length)
    path = best_path(log_probs, length)
    return (collapse(path) if decoder is greedy_decode else decoder(log_probs, length)), path


@contextlib.contextmanager
def native_stderr_silenced():
    """Silence what C++ code writes to file descriptor 2 (Python's own errors are unaffected once
    it is restored)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class LMResources:
    """What a decoder loads once: token and word dictionaries, the KenLM model, the lexicon trie."""

    def __init__(self, lexicon: str | None = None, lm: str | None = None):
        import time

        from flashlight.lib.text.decoder import SmearingMode, Trie, ZeroLM
        from flashlight.lib.text.dictionary import Dictionary, create_word_dict, load_words
        started = time.perf_counter()
        self.tokens = Dictionary(_BEAM_TOKENS)
        self.blank = self.tokens.get_index("<blank>")
        self.silence = self.tokens.get_index(SIL_TOKEN)
        self.lexicon_path, self.lm_path = lexicon, lm
        self.words = self.trie = None
        if lexicon:
            with _names_file(lexicon, "a lexicon"):
                spellings = load_words(str(lexicon))
            self.words = create_word_dict(spellings)
            if not self.words.contains(UNK):
                self.words.add_entry(UNK)
        if lm:
            if self.words is None:
                raise ValueError("a word LM needs a lexicon (lexicon-free decoding with a word "
                                 "LM is not supported)")
            from flashlight.lib.text.decoder.kenlm import KenLM
            with _names_file(lm, "a KenLM language model"), native_stderr_silenced():
                self.lm = KenLM(str(lm), self.words)  # KenLM prints a progress bar and a tip
        else:
            self.lm = ZeroLM()
        if lexicon:
            if not any(spellings.values()):  # flashlight lists <unk> (with no spelling) in every lexicon
                raise ValueError(f"{lexicon}: no words (a lexicon has a `word w o r d |` line per word)")
            self.trie = Trie(self.tokens.index_size(), self.silence)
            start = self.lm.start(False)
            with _names_file(lexicon, "a lexicon of this model's characters"):
                for word, variants in spellings.items():
                    index = self.words.get_index(word)
                    _, score = self.lm.score(start, index)
                    for spelling in variants:
                        self.trie.insert([self.tokens.get_index(t) for t in spelling], index, score)
            self.trie.smear(SmearingMode.MAX)
            self.unk = self.words.get_index(UNK)
        self.load_s = time.perf_counter() - started


@contextlib.contextmanager
def _names_file(path, what: str):
    """Turn a native reader's failure on `path` into a ValueError that names the file."""
    try:
        yield
    except (RuntimeError, ValueError, OSError) as exc:
        raise ValueError(f"{path}: not readable as {what} ({exc})") from None


RESOURCES_KEPT = 4  # LMs kept loaded for new decoders; a decoder holds its own until it goes
_RESOURCES: OrderedDict = OrderedDict()
_RESOURCES_LOCK = threading.Lock()


def load_lm_resources(lexicon: str | None, lm: str | None) -> LMResources:
    """LMResources for these files, loaded once per process (keyed by path, size and mtime); the
    RESOURCES_KEPT last used stay cached."""
    def stamp(path):
        if not path:
            return None
        st = Path(path).stat()
        return str(Path(path).resolve()), st.st_size, st.st_mtime_ns
    key = (stamp(lexicon), stamp(lm))
    with _RESOURCES_LOCK:
        if key not in _RESOURCES:
            _RESOURCES[key] = LMResources(lexicon, lm)
            while len(_RESOURCES) > RESOURCES_KEPT:
                _RESOURCES.popitem(last=False)
        _RESOURCES.move_to_end(key)
        return _RESOURCES[key]


def prior_correction(prior_scale: float, token_prior) -> torch.Tensor | None:
    """What each frame's log-probabilities lose before beam search: prior_scale x log token_prior
    (token_prior: the model's average per-frame posterior of each of its tokens); None when
    the scale is 0. ValueError for a prior that cannot be one."""
    if not prior_scale:
        return None
    if token_prior is None:
        raise ValueError(f"prior_scale {prior_scale:g} needs a token_prior (python -m srcore.lm "
                         "tune --prior-from MANIFEST estimates one)")
    try:
        prior = torch.as_tensor(token_prior, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"token_prior: expected a list of {len(_BEAM_TOKENS)} numbers") from None
    if prior.shape != (len(_BEAM_TOKENS),):
        raise ValueError(f"token_prior: expected {len(_BEAM_TOKENS)} probabilities, one per token, "
                         f"got {list(prior.shape)}")
    if not bool((prior > 0).all()):  # NaN fails this too
        bad = int((~(prior > 0)).nonzero()[0])
        raise ValueError(f"token_prior[{bad}] ({_BEAM_TOKENS[bad]!r}) is {float(prior[bad]):g}: "
                         "every token's probability must be above 0")
    return prior_scale * prior.log()


def lm_files(lm_dir) -> tuple[str, str]:
    """(lexicon, arpa) of an LM folder; FileNotFoundError if either is missing."""
    lm_dir = Path(lm_dir)
    lexicon, arpa = lm_dir / LEXICON_FILE, lm_dir / ARPA_FILE
    for path in (lexicon, arpa):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing (build it with python -m srcore.lm build)")
    return str(lexicon), str(arpa)


def prefix_states():
    """A flashlight LM that scores nothing but gives every prefix a state of its own. Beam
    search merges hypotheses that share a state: with one state for all (flashlight's ZeroLM) it
    merges different texts and is greedy decoding; with a state per prefix it merges exactly the
    alignments of one text, which is CTC prefix beam search."""
    from flashlight.lib.text.decoder import LM, LMState

    class PrefixStates(LM):
        def start(self, start_with_nothing):
            return LMState()

        def score(self, state, token):
            return state.child(token), 0.0

        def finish(self, state):
            return state, 0.0

    return PrefixStates()


class BeamDecoder:
    """Beam search over characters: lexicon-constrained with a word LM, or lexicon-free."""

    def __init__(self, beam_size: int = 16, lexicon: str | None = None, lm: str | None = None,
                 lm_weight: float = 0.5, word_score: float = 0.0, beam_threshold: float = 25.0,
                 sil_score: float = 0.0, beam_size_token: int | None = None,
                 prior_scale: float = 0.0, token_prior=None):
        from flashlight.lib.text.decoder import (
            CriterionType,
            LexiconDecoder,
            LexiconDecoderOptions,
            LexiconFreeDecoder,
            LexiconFreeDecoderOptions,
        )
        if lm and Path(lm).is_dir():  # an LM folder: its lexicon and ARPA
            lexicon, lm = lm_files(lm)
        self.correction = prior_correction(prior_scale, token_prior)
        self.resources = r = load_lm_resources(lexicon, lm)
        self.options = {"beam_size": beam_size, "beam_threshold": beam_threshold,
                        "lm_weight": lm_weight if lm else 0.0, "word_score": word_score,
                        "prior_scale": prior_scale, "lexicon": bool(lexicon), "lm": bool(lm)}
        token_beam = beam_size_token or r.tokens.index_size()
        # without a word LM, a state per prefix (per word history with a lexicon) keeps different
        # texts apart; the decoder holds a C++ pointer to it, so this object keeps it alive
        self._prefix_lm = None if lm else prefix_states()
        if r.trie is not None:
            options = LexiconDecoderOptions(
                beam_size=beam_size, beam_size_token=token_beam, beam_threshold=beam_threshold,
                lm_weight=lm_weight, word_score=word_score, unk_score=float("-inf"),
                sil_score=sil_score, log_add=False, criterion_type=CriterionType.CTC)
            self.decoder = LexiconDecoder(options, r.trie, r.lm if lm else self._prefix_lm, r.silence, r.blank,
                                          r.unk, [], False)
        else:  # CTC prefix beam search: the alignments of one text add up (log_add)
            options = LexiconFreeDecoderOptions(
                beam_size=beam_size, beam_size_token=token_beam, beam_threshold=beam_threshold,
                lm_weight=0.0, sil_score=sil_score, log_add=True, criterion_type=CriterionType.CTC)
            self.decoder = LexiconFreeDecoder(options, self._prefix_lm, r.silence, r.blank, [])

    def describe(self) -> str:
        o = self.options
        prior = f", prior_scale {o['prior_scale']:g}" if o["prior_scale"] else ""
        if o["lm"]:
            return (f"beam search {o['beam_size']}, lexicon + LM (lm_weight {o['lm_weight']:g}, "
                    f"word_score {o['word_score']:g}{prior})")
        return f"beam search {o['beam_size']}" + (", lexicon" if o["lexicon"] else "") + prior

    def __call__(self, log_probs: torch.Tensor, length: int | None = None) -> str:
        return self.decode_path(log_probs, length)[0]

    def decode_path(self, log_probs: torch.Tensor, length: int | None = None) -> tuple[str, list[int]]:
        """(text, the best hypothesis's token at each frame)."""
        emissions = log_probs[:length].detach().float().cpu()
        if self.correction is not None:
            emissions = emissions - self.correction
        if emissions.shape[0] == 0:
            return "", []
        if self.resources.trie is not None:
            return self._decode(emissions)
        # the prefix states grow with the frames searched: long input is read a window at a time
        pieces = [self._decode(emissions[start:end]) for start, end in prefix_windows(emissions)]
        return " ".join(text for text, _ in pieces if text), [t for _, path in pieces for t in path]

    def _decode(self, emissions: torch.Tensor) -> tuple[str, list[int]]:
        frames = emissions.shape[0]
        if self.resources.trie is not None:
            # one extra frame of certain word boundary: a word still being spelled at the end is
            # finished (lexicon spellings end with "|"), others just repeat or skip it
            end = torch.full((1, emissions.shape[1]), UNLIKELY)
            end[0, self.resources.silence] = 0.0
            emissions = torch.cat([emissions, end])
        emissions = emissions.contiguous()
        results = self.decoder.decode(emissions.data_ptr(), emissions.shape[0], emissions.shape[1])
        if not results:
            return "", [BLANK] * frames
        best = results[0]
        path = list(best.tokens)[1:frames + 1]  # flashlight pads the path with a frame each side
        if self.resources.trie is not None:
            words = [self.resources.words.get_entry(w) for w in best.words if w >= 0]
            return " ".join(w for w in words if w != UNK), path
        return collapse(best.tokens), path


def prefix_windows(emissions: torch.Tensor) -> list[tuple[int, int]]:
    """(start, end) frame ranges of at most PREFIX_WINDOW_FRAMES covering `emissions`, each ending
    at the likeliest word boundary (space) within its last PREFIX_CUT_SEARCH frames."""
    bounds, start, frames = [], 0, emissions.shape[0]
    while frames - start > PREFIX_WINDOW_FRAMES:
        search = start + PREFIX_WINDOW_FRAMES - PREFIX_CUT_SEARCH
        cut = search + int(emissions[search:start + PREFIX_WINDOW_FRAMES, SPACE].argmax()) + 1
        bounds.append((start, cut))
        start = cut
    bounds.append((start, frames))
    return bounds


def make_decoder(beam: int = 0, lexicon: str | None = None, lm: str | None = None, **options):
    """Greedy when beam <= 1 and no LM, else a BeamDecoder (`lm` may be an LM folder); `options`:
    lm_weight, word_score, beam_threshold, sil_score, prior_scale with token_prior. Both map
    (frames, classes) -> text."""
    if beam <= 1 and not lm and not lexicon:
        return greedy_decode
    defaults = DEFAULT_LM_OPTIONS if lm else {}
    beam = beam if beam > 1 else defaults.get("beam_size", 16)
    kwargs = {k: v for k, v in defaults.items() if k != "beam_size"}
    kwargs.update(options)
    return BeamDecoder(beam, lexicon, lm, **kwargs)


def decoding_settings(model_dir) -> dict:
    """What a model directory asks for: decoding.json merged over the defaults, with "lm" the
    LM folder's path and "token_prior" (or None), or {"decoder": "greedy"} when it has no
    (complete) LM. ValueError naming the file when its prior correction cannot be applied."""
    model_dir = Path(model_dir)
    path = model_dir / DECODING_FILE
    settings = read_json_object(path, "decoding settings") if path.is_file() else {}
    if settings.get("decoder") == "greedy":
        return {"decoder": "greedy"}
    lm_dir = lm_folder(model_dir, settings.get("lm", LM_DIR), path)
    if not ((lm_dir / LEXICON_FILE).is_file() and (lm_dir / ARPA_FILE).is_file()):
        if "lm" in settings:
            warnings.warn(f"{path} names the LM folder {lm_dir}, which lacks {LEXICON_FILE} or "
                          f"{ARPA_FILE}: decoding greedy", stacklevel=2)
        return {"decoder": "greedy"}
    merged = {**DEFAULT_LM_OPTIONS, **{k: settings[k] for k in DEFAULT_LM_OPTIONS if k in settings}}
    try:
        prior_correction(float(merged["prior_scale"]), settings.get("token_prior"))  # only checks
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    return {"decoder": "lexicon+lm", "lm": str(lm_dir), **merged, "token_prior": settings.get("token_prior")}


def lm_folder(model_dir: Path, name, settings_path: Path) -> Path:
    """The LM folder decoding.json names, which must lie inside the model directory (a
    downloaded model must not make the decoder read the server's other files)."""
    if not isinstance(name, str):
        raise ValueError(f"{settings_path}: \"lm\" must be a folder name inside the model directory")
    folder = (model_dir / name).resolve()
    if not folder.is_relative_to(model_dir.resolve()):
        raise ValueError(f"{settings_path}: the LM folder {name!r} is outside the model directory")
    return folder


def load_decoding(model_dir, greedy: bool = False):
    """The default decoder of a model directory: the LM decoder with its tuned weights when the
    directory has lm/ (see the module docstring), else (or with greedy=True) `greedy_decode`."""
    settings = {"decoder": "greedy"} if greedy else decoding_settings(model_dir)
    if settings["decoder"] == "greedy":
        return greedy_decode
    return BeamDecoder(beam_size=int(settings["beam_size"]), lm=settings["lm"],
                       lm_weight=float(settings["lm_weight"]), word_score=float(settings["word_score"]),
                       beam_threshold=float(settings["beam_threshold"]),
                       prior_scale=float(settings["prior_scale"]), token_prior=settings["token_prior"])


def describe_decoder(decoder) -> str:
    """A short human description ("greedy", "beam search 32, lexicon + LM (...)")."""
    return decoder.describe() if hasattr(decoder, "describe") else "greedy"
