"""Transcript normalisation and the character map shared by every model.

The map is the original notebook's: apostrophe = 0, space = 1, a..z = 2..27, CTC blank = 28.
"""
import re
import unicodedata
from dataclasses import dataclass

CHARS = ["'", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
BLANK = 28
NUM_CLASSES = len(CHARS) + 1  # 29
CHAR_TO_ID = {c: i for i, c in enumerate(CHARS)}

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
# Latin letters that no accent stripping turns into the alphabet's (NFKD leaves them whole)
_LETTERS = str.maketrans({"\u00df": "ss", "\u00e6": "ae", "\u0153": "oe", "\u00f8": "o", "\u0111": "d",
                          "\u00f0": "d", "\u00fe": "th", "\u0142": "l", "\u0131": "i"})
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals "}
_CURRENCIES = {"$": ("dollar", "dollars", "cent", "cents"), "\u00a3": ("pound", "pounds", "penny", "pence"),
               "\u20ac": ("euro", "euros", "cent", "cents")}
_ORDINAL_ENDINGS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                    "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}


def number_to_words(n: int) -> str:
    """Spell a non-negative integer in English words: 42 -> 'forty two'."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    for value, name in _SCALES:
        if n >= value:
            head = number_to_words(n // value) + " " + name
            return head if n % value == 0 else head + " " + number_to_words(n % value)
    raise AssertionError("unreachable")


def ordinal_words(n: int) -> str:
    """21 -> 'twenty first', 100 -> 'one hundredth'."""
    *head, last = number_to_words(n).split()
    if last in _ORDINAL_ENDINGS:
        last = _ORDINAL_ENDINGS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def year_words(n: int) -> str:
    """A year as said: 1990 -> 'nineteen ninety', 1905 -> 'nineteen oh five', 2000 -> 'two
    thousand', 2008 -> 'two thousand eight', 2024 -> 'twenty twenty four'."""
    if n % 1000 < 10 or not 1000 < n < 10000:
        return number_to_words(n)
    high, low = divmod(n, 100)
    if low == 0:
        return number_to_words(high) + " hundred"
    return number_to_words(high) + (" oh " if low < 10 else " ") + number_to_words(low)


def _plural(words: str) -> str:
    """'nineteen ninety' -> 'nineteen nineties' (decades: 'the 1990s')."""
    head, _, last = words.rpartition(" ")
    last = last[:-1] + "ies" if last.endswith("y") else last + "s"
    return f"{head} {last}".strip()


def _cardinal_or_digits(digits: str) -> str:
    if len(digits) > 12 or (len(digits) > 1 and digits.startswith("0")):
        return " ".join(_ONES[int(d)] for d in digits)  # codes, phone numbers
    return number_to_words(int(digits))


def _money(match: re.Match) -> str:
    unit, units, sub, subs = _CURRENCIES[match.group("cur")]
    whole, cents = int(match.group("whole").replace(",", "")), match.group("cents")
    scale = match.group("scale")
    if scale:  # "$5 million" -> "five million dollars"
        amount = number_to_words(whole) + (" point " + _digits(cents) if cents else "")
        return f" {amount} {scale} {units} "
    words = [f"{number_to_words(whole)} {unit if whole == 1 else units}"] if whole or not cents else []
    if cents and int(cents):
        c = int(cents.ljust(2, "0")[:2])
        words.append(f"{number_to_words(c)} {sub if c == 1 else subs}")
    return " " + " and ".join(words) + " "


def _digits(digits: str) -> str:
    return " ".join(_ONES[int(d)] for d in digits)


def _decade(match: re.Match) -> str:
    digits = match.group(1)
    value = int(digits)
    return " " + _plural(year_words(value) if len(digits) == 4 else number_to_words(value)) + " "


def _time(match: re.Match) -> str:
    hours, minutes = int(match.group(1)), int(match.group(2))
    if minutes == 0:
        return f" {number_to_words(hours)} o'clock "
    return f" {number_to_words(hours)} {'oh ' if minutes < 10 else ''}{number_to_words(minutes)} "


_NUMBER_RULES = [  # order matters: the most specific patterns first
    (re.compile(r"(?P<cur>[$\u00a3\u20ac])\s?(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d+))?"
                r"(?:\s?(?P<scale>thousand|million|billion|trillion)\b)?"), _money),
    (re.compile(r"\b\d{1,3}(?:,\d{3})+\b"), lambda m: " " + number_to_words(int(m.group(0).replace(",", ""))) + " "),
    (re.compile(r"\b(\d{1,2}):(\d{2})\b"), _time),
    (re.compile(r"\b(\d+)(?:st|nd|rd|th)\b"), lambda m: " " + ordinal_words(int(m.group(1))) + " "),
    (re.compile(r"\b(\d{4}|\d0)'?s\b"), _decade),
    (re.compile(r"\b(1[1-9]\d\d|20\d\d)\b(?![.,]\d)"), lambda m: " " + year_words(int(m.group(1))) + " "),
    (re.compile(r"(\d+)\.(\d+)"), lambda m: f" {_cardinal_or_digits(m.group(1))} point {_digits(m.group(2))} "),
    (re.compile(r"\d+"), lambda m: " " + _cardinal_or_digits(m.group(0)) + " "),
]


def spell_numbers(text: str) -> str:
    """Digits as people say them: amounts, times, ordinals, decades, years, decimals, cardinals.
    Expects lower-case text; leaves everything else as it is."""
    for pattern, spell in _NUMBER_RULES:
        text = pattern.sub(spell, text)
    return text


def normalize_text(text: str) -> str:
    """Lower-case, spell digits, drop punctuation; the result only holds CHARS (never raises)."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().translate(_LETTERS).replace("\u2019", "'").replace("`", "'")
    text = spell_numbers(text)
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not contractions
    return " ".join(text.split())


TOKENS_FILE = "tokens.txt"
_TOKEN_NAMES = {" ": "<space>"}  # how tokens.txt writes symbols that a line cannot show


@dataclass(frozen=True)
class Tokenizer:
    """Characters <-> class ids; the CTC blank is its own class. Saved in a model directory as
    tokens.txt, one `symbol id` per line (icefall's format)."""
    chars: tuple = tuple(CHARS)
    blank: int = BLANK

    @property
    def num_classes(self) -> int:
        return len(self.chars) + 1

    def encode(self, text: str) -> list[int]:
        """Normalised text to class ids; characters outside the set are dropped."""
        ids = {c: i for i, c in enumerate(self.chars)}
        return [ids[c] for c in normalize_text(text) if c in ids]

    def decode(self, ids) -> str:
        """Class ids to text, ignoring blanks (no CTC collapsing)."""
        return "".join(self.chars[i] for i in ids if 0 <= i < len(self.chars) and i != self.blank)

    def to_text(self) -> str:
        lines = [f"{_TOKEN_NAMES.get(c, c)} {i}" for i, c in enumerate(self.chars)]
        return "\n".join(lines + [f"<blank> {self.blank}"]) + "\n"

    @classmethod
    def from_text(cls, text: str, source: str = TOKENS_FILE) -> "Tokenizer":
        names = {v: k for k, v in _TOKEN_NAMES.items()}
        symbols = {}
        for number, line in enumerate(text.splitlines(), 1):
            symbol, _, index = line.rpartition(" ")
            if not symbol or not index.isdigit():
                raise ValueError(f"{source}:{number}: expected 'symbol id', got {line!r}")
            symbols[int(index)] = names.get(symbol, symbol)
        blank = next((i for i, s in symbols.items() if s == "<blank>"), None)
        if blank is None or sorted(symbols) != list(range(len(symbols))):
            raise ValueError(f"{source}: ids must run 0..N-1 and include <blank>")
        chars = tuple(symbols[i] for i in range(len(symbols)) if i != blank)
        return cls(chars, blank)


DEFAULT_TOKENIZER = Tokenizer()
encode = DEFAULT_TOKENIZER.encode  # the default alphabet's, for callers with no model at hand
decode_ids = DEFAULT_TOKENIZER.decode
