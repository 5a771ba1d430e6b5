"""Transcript normalisation and the character map shared by every model.

The map is the original notebook's: apostrophe = 0, space = 1, a..z = 2..27, CTC blank = 28.
"""
import re
import unicodedata

CHARS = ["'", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
BLANK = 28
NUM_CLASSES = len(CHARS) + 1  # 29
CHAR_TO_ID = {c: i for i, c in enumerate(CHARS)}

_ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
         "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
         "nineteen"]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
_SCALES = [(10**9, "billion"), (10**6, "million"), (1000, "thousand"), (100, "hundred")]
_SYMBOLS = {"&": " and ", "%": " percent ", "+": " plus ", "@": " at ", "=": " equals ", "$": " dollars "}


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


def _spell_number(match: re.Match) -> str:
    digits = match.group(0)
    if len(digits) > 12 or (len(digits) > 1 and digits.startswith("0")):
        return " " + " ".join(_ONES[int(d)] for d in digits) + " "  # codes, phone numbers
    return " " + number_to_words(int(digits)) + " "


def normalize_text(text: str) -> str:
    """Lower-case, spell digits, drop punctuation; the result only holds CHARS (never raises)."""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c))
    text = text.lower().replace("\u2019", "'").replace("`", "'")
    for symbol, words in _SYMBOLS.items():
        text = text.replace(symbol, words)
    text = re.sub(r"(?<=\d),(?=\d{3})", "", text)  # 1,000 -> 1000
    text = re.sub(r"\d+", _spell_number, text)
    text = re.sub(r"[^a-z' ]+", " ", text)
    text = re.sub(r"(?<![a-z])'|'(?![a-z])", " ", text)  # quotes, not contractions
    return " ".join(text.split())


def encode(text: str) -> list[int]:
    """Normalised text to class ids (blank never appears)."""
    return [CHAR_TO_ID[c] for c in normalize_text(text)]


def decode_ids(ids) -> str:
    """Class ids to text, ignoring blanks (no CTC collapsing)."""
    return "".join(CHARS[i] for i in ids if 0 <= i < BLANK)
