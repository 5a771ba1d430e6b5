"""English text for the synthetic corpus: what the voices say.

`TextGenerator(rng, sentences=(), sentence_share=0)` draws sentences of TEXT_KIND_WEIGHTS' kinds
from the templates, lexicon and word list in srcore/assets (commands, questions, statements, digit
strings, numbers, times, random words, spelled words), or with `sentence_share` a line of
`sentences` (natural prose, `python -m srcore.lm text`). `text_split` gives every text one split,
so training and validation never share a sentence; `draw_text` draws a text of a given split.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import re
from functools import lru_cache
from pathlib import Path

import numpy as np

from .text import normalize_text, number_to_words

ASSETS = Path(__file__).parent / "assets"
VALID_TEXT_BUCKETS = 10        # 1 bucket in 10 of the normalised-text hash is validation text
MIN_VALID_WORDS = 3            # shorter texts (single digits, "stop") stay in training

# Sentence kinds and how often each is drawn.
TEXT_KIND_WEIGHTS = {
    "command": 0.18, "question": 0.12, "statement": 0.18, "read": 0.10,
    "digits": 0.20, "numbers": 0.06, "words": 0.14, "spelling": 0.02,
}
DIGIT_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
P_OH_FOR_ZERO = 0.2            # "oh" instead of "zero" inside a digit string
DEFAULT_SENTENCE_SHARE = 0.5  # of the clips, when a --sentences file is given
P_NUMERALS = 0.1               # write a small number as digits ("42"); the loader normalises it
WORD_SAMPLING_POWER = 0.5      # flattens the Zipf distribution for the random-word sentences
ORDINALS = ["first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth",
            "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth", "sixteenth",
            "seventeenth", "eighteenth", "nineteenth", "twentieth"]
TIME_PHRASES = ["noon", "midnight", "half past {h}", "a quarter past {h}", "a quarter to {h}",
                "{h} o'clock", "{h} {m}", "{h} {m}", "{h} {m} a m", "{h} {m} p m", "{h} p m",
                "{h} in the morning", "{h} in the evening", "{h} thirty", "{h} fifteen"]
PLURAL_EXCEPTIONS = {"child": "children", "man": "men", "woman": "women", "mouse": "mice",
                     "sheep": "sheep", "fish": "fish", "deer": "deer", "leaf": "leaves",
                     "knife": "knives", "person": "people", "foot": "feet", "tooth": "teeth"}


@lru_cache(maxsize=1)
def _lexicon() -> dict:
    return json.loads((ASSETS / "lexicon.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _templates() -> dict:
    """{kind: [template, ...]} from templates.txt ('[kind]' headers, '#' comments)."""
    kinds, kind = {}, None
    for line in (ASSETS / "templates.txt").read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            kind = line[1:-1]
            kinds[kind] = []
        elif kind is not None:
            kinds[kind].append(line)
    return kinds


@lru_cache(maxsize=1)
def _word_list() -> tuple[list[str], np.ndarray]:
    """Frequency-ordered English words and their sampling probabilities."""
    words, zipf = [], []
    for line in (ASSETS / "words.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            word, value = line.split("\t")
            words.append(word)
            zipf.append(float(value))
    weights = np.power(10.0, np.array(zipf) * WORD_SAMPLING_POWER)
    return words, weights / weights.sum()


@lru_cache(maxsize=1)
def _spelling_words() -> list[str]:
    return [w for w in _word_list()[0][:3000] if 3 <= len(w) <= 7 and "'" not in w]


def pluralize(noun: str) -> str:
    """English plural of a (possibly multi-word) noun: 'city' -> 'cities', 'bus' -> 'buses'."""
    head, _, last = noun.rpartition(" ")
    if last in PLURAL_EXCEPTIONS:
        plural = PLURAL_EXCEPTIONS[last]
    elif re.search(r"[^aeiou]y$", last):
        plural = last[:-1] + "ies"
    elif re.search(r"(s|x|z|ch|sh)$", last):
        plural = last + "es"
    else:
        plural = last + "s"
    return f"{head} {plural}" if head else plural


def _fix_articles(text: str) -> str:
    return re.sub(r"\b([Aa]) (?=[aeiouAEIOU])", r"\1n ", text)


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


class TextGenerator:
    """Random English sentences of several kinds, reproducible from a numpy Generator; with
    `sentences` (e.g. `python -m srcore.lm text`), a `sentence_share` of them is natural prose."""

    def __init__(self, rng: np.random.Generator, sentences=(), sentence_share: float = 0.0):
        if not 0 <= sentence_share <= 1:
            raise ValueError(f"sentence share {sentence_share}: a share of the clips is between 0 and 1")
        self.rng = rng
        self.sentences = list(sentences)
        self.sentence_share = sentence_share if self.sentences else 0.0
        self.lexicon = _lexicon()
        self.templates = _templates()
        self.kinds = list(TEXT_KIND_WEIGHTS)
        self.kind_p = np.array(list(TEXT_KIND_WEIGHTS.values())) / sum(TEXT_KIND_WEIGHTS.values())

    def _pick(self, items):
        return items[int(self.rng.integers(len(items)))]

    def sentence(self, kind: str | None = None) -> str:
        if kind is None and self.sentence_share and self.rng.random() < self.sentence_share:
            return self._pick(self.sentences)
        return self.generated(kind)

    def generated(self, kind: str | None = None) -> str:
        """A sentence of the generated kinds (never a line of `sentences`)."""
        kind = kind or self.kinds[int(self.rng.choice(len(self.kinds), p=self.kind_p))]
        if kind in self.templates:
            return self.fill(self._pick(self.templates[kind]))
        return getattr(self, f"_{kind}")()

    def fill(self, template: str) -> str:
        """Replace every {slot} by a random filler; fix 'a' -> 'an'."""
        text = re.sub(r"\{(\w+)\}", lambda m: self.slot(m.group(1)), template)
        return _capitalise(_fix_articles(text))

    def slot(self, name: str) -> str:
        generated = getattr(self, f"_slot_{name}", None)
        if generated is not None:
            return generated()
        return self._pick(self.lexicon[name])

    # generated slots -----------------------------------------------------------------------
    def _num_words(self, low: int, high: int) -> str:
        n = int(self.rng.integers(low, high + 1))
        return str(n) if n < 100 and self.rng.random() < P_NUMERALS else number_to_words(n)

    def _slot_num(self) -> str:
        return self._num_words(2, 99 if self.rng.random() < 0.8 else 2000)

    def _slot_small(self) -> str:
        return self._num_words(1, 12)

    def _slot_digits(self) -> str:
        return self._digit_string(int(self.rng.integers(3, 8)))

    def _slot_phone(self) -> str:
        groups = [3, 3, 4] if self.rng.random() < 0.6 else [3, 4]
        return ", ".join(self._digit_string(n) for n in groups)

    def _slot_time(self) -> str:
        phrase = self._pick(TIME_PHRASES)
        minute = self._pick(["oh five", "ten", "fifteen", "twenty", "thirty", "forty five",
                             "fifty", number_to_words(int(self.rng.integers(21, 60)))])
        return phrase.format(h=number_to_words(int(self.rng.integers(1, 13))), m=minute)

    def _slot_ordinal(self) -> str:
        n = int(self.rng.integers(1, 32))
        if n <= 20:
            return ORDINALS[n - 1]
        tens = "twenty" if n < 30 else "thirty"
        return tens if n % 10 == 0 else f"{tens} {ORDINALS[n % 10 - 1]}"

    def _slot_year(self) -> str:
        year = int(self.rng.integers(1900, 2040))
        if 2000 <= year < 2010:
            return number_to_words(year)
        century, rest = divmod(year, 100)
        tail = "hundred" if rest == 0 else (f"oh {number_to_words(rest)}" if rest < 10
                                            else number_to_words(rest))
        return f"{number_to_words(century)} {tail}"

    def _slot_duration(self) -> str:
        if self.rng.random() < 0.1:
            return self._pick(["half an hour", "an hour and a half", "ninety seconds",
                               "a minute", "an hour", "a couple of days"])
        n = int(self.rng.integers(1, 61 if self.rng.random() < 0.5 else 13))
        unit = self._pick(self.lexicon["unit"])
        return f"one {unit[:-1]}" if n == 1 else f"{self._num_words(n, n)} {unit}"

    def _slot_temp(self) -> str:
        return f"{self._num_words(10, 99)} degrees"

    def _slot_percent(self) -> str:
        return f"{self._num_words(1, 100)} percent"

    def _slot_money(self) -> str:
        currency = self._pick(["dollars", "dollars", "pounds", "euros"])
        text = f"{number_to_words(int(self.rng.integers(2, 500)))} {currency}"
        if self.rng.random() < 0.4:
            text += f" and {number_to_words(int(self.rng.integers(1, 100)))} cents"
        return text

    def _slot_word(self) -> str:
        words, p = _word_list()
        return words[int(self.rng.choice(len(words), p=p))]

    def _slot_nouns(self) -> str:
        return pluralize(self._pick(self.lexicon["noun"]))

    # whole-sentence kinds -------------------------------------------------------------------
    def _digit_string(self, n: int) -> str:
        digits = self.rng.integers(0, 10, size=n)
        oh = n > 1 and self.rng.random() < P_OH_FOR_ZERO
        return " ".join("oh" if d == 0 and oh else DIGIT_WORDS[d] for d in digits)

    def _digits(self) -> str:
        """Spoken digit strings: single digits, short and long strings, grouped numbers."""
        r = self.rng.random()
        if r < 0.3:
            return _capitalise(DIGIT_WORDS[int(self.rng.integers(10))])
        if r < 0.6:
            return _capitalise(self._digit_string(int(self.rng.integers(2, 5))))
        if r < 0.85:
            return _capitalise(self._digit_string(int(self.rng.integers(5, 11))))
        return _capitalise(self._slot_phone())

    def _numbers(self) -> str:
        """A number on its own: cardinal, year, ordinal, money, time."""
        maker = self._pick([self._slot_num, self._slot_year, self._slot_ordinal, self._slot_money,
                            self._slot_time, lambda: number_to_words(int(self.rng.integers(0, 10**6)))])
        return _capitalise(maker())

    def _words(self) -> str:
        """A run of frequent English words (broad vocabulary, little grammar)."""
        n = int(self.rng.integers(2, 13))
        return _capitalise(" ".join(self._slot_word() for _ in range(n))) + "."

    def _spelling(self) -> str:
        return " ".join(self._pick(_spelling_words()).upper())


MAX_DRAWS = 1000  # draws of draw_text before it leaves out the given sentences


def text_split(text: str) -> str:
    """'valid' or 'train': a hash of the normalised text decides, so the splits never share a
    sentence; texts under MIN_VALID_WORDS words are always 'train'."""
    norm = normalize_text(text)
    if len(norm.split()) < MIN_VALID_WORDS:
        return "train"
    bucket = int(hashlib.md5(norm.encode()).hexdigest(), 16) % VALID_TEXT_BUCKETS
    return "valid" if bucket == 0 else "train"


def draw_text(generator: TextGenerator, split: str) -> str:
    """A random sentence that belongs to `split` (rejection sampling on text_split); after
    MAX_DRAWS misses (sentences of which none falls in `split`, read at a share of 1) one of the
    generated kinds only."""
    for attempt in itertools.count():
        text = generator.sentence() if attempt < MAX_DRAWS else generator.generated()
        if text_split(text) == split and normalize_text(text):
            return text
