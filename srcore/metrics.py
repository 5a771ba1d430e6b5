"""Word and character error rates (jiwer) and icefall-style error listings."""
from dataclasses import astuple, dataclass

import jiwer


@dataclass
class ErrorCounts:
    word_errors: int = 0
    words: int = 0
    char_errors: int = 0
    chars: int = 0
    substitutions: int = 0  # word_errors by kind (error_counts fills them)
    deletions: int = 0
    insertions: int = 0

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def kinds(self) -> dict:
        """Substitutions, deletions and insertions as fractions of the reference words."""
        words = max(self.words, 1)
        return {"sub": self.substitutions / words, "del": self.deletions / words,
                "ins": self.insertions / words}

    @property
    def wer(self) -> float:
        return self.word_errors / max(self.words, 1)

    @property
    def cer(self) -> float:
        return self.char_errors / max(self.chars, 1)


def error_counts(ref: str, hyp: str) -> ErrorCounts:
    """Edit-distance counts of one utterance, whitespace squeezed first (as words are counted):
    against an empty reference every hypothesis word is an insertion."""
    ref, hyp = " ".join(ref.split()), " ".join(hyp.split())
    if not ref:
        return ErrorCounts(len(hyp.split()), 0, len(hyp), 0, insertions=len(hyp.split()))
    words = jiwer.process_words(ref, hyp)
    chars = jiwer.process_characters(ref, hyp)
    return ErrorCounts(words.substitutions + words.deletions + words.insertions,
                       len(ref.split()),
                       chars.substitutions + chars.deletions + chars.insertions, len(ref),
                       words.substitutions, words.deletions, words.insertions)


def corpus_counts(refs, hyps) -> ErrorCounts:
    total = ErrorCounts()
    for ref, hyp in zip(refs, hyps):
        total = total + error_counts(ref, hyp)
    return total


def word_diff(ref: str, hyp: str) -> list[tuple[str, str | None]]:
    """Word-level alignment as (text, tag) pairs: tag None for a match, 'sub', 'del' or 'ins';
    substitutions read `(REF->HYP)`."""
    if not ref.split() and not hyp.split():
        return []
    if not ref.split():
        return [(w, "ins") for w in hyp.split()]
    out = jiwer.process_words(ref, hyp)
    r, h = out.references[0], out.hypotheses[0]
    pieces = []
    for chunk in out.alignments[0]:
        if chunk.type == "equal":
            pieces.append((" ".join(r[chunk.ref_start_idx:chunk.ref_end_idx]), None))
        elif chunk.type == "substitute":
            for rw, hw in zip(r[chunk.ref_start_idx:chunk.ref_end_idx],
                              h[chunk.hyp_start_idx:chunk.hyp_end_idx]):
                pieces.append((f"({rw}->{hw})", "sub"))
        elif chunk.type == "delete":
            pieces.extend((f"({w}->*)", "del") for w in r[chunk.ref_start_idx:chunk.ref_end_idx])
        else:
            pieces.extend((f"(*->{w})", "ins") for w in h[chunk.hyp_start_idx:chunk.hyp_end_idx])
    return pieces


def format_diff(ref: str, hyp: str) -> str:
    """One-line icefall-style error report: `the (cat->hat) sat`."""
    return " ".join(text for text, _ in word_diff(ref, hyp))
