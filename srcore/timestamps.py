"""When each word was said, and subtitles from it.

A CTC model emits each character as a spike on about one frame, so the decoder's per-frame token
path (`decoding.decode_with_path`) says when each word's characters were heard: a word runs from
its first character's frame to the end of its last's. The times are as fine as a frame (30 ms for
the default model) and tend to sit early inside the sound of a word's first and last letters.

    words = word_timings(path, frame_s)        # [Word("hello", 0.42, 0.81), ...]
    to_srt(segments(words))                    # SubRip; to_vtt for WebVTT
"""
from __future__ import annotations

from dataclasses import dataclass

from .text import BLANK, CHARS

SPACE = CHARS.index(" ")
SEGMENT_GAP_S = 0.6      # a pause this long starts a new subtitle
SEGMENT_MAX_S = 7.0      # a subtitle stays on screen at most this long...
SEGMENT_MAX_CHARS = 84   # ...and holds at most two lines of 42 characters


@dataclass(frozen=True)
class Word:
    word: str
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def word_timings(path, frame_s: float, offset_s: float = 0.0) -> list[Word]:
    """The words of a per-frame token path with their times; " ".join of the words is the
    path's collapsed text (decoding.collapse)."""
    words, chars, start, end, previous = [], [], 0, 0, None

    def finish():
        if chars:
            words.append(Word("".join(chars), offset_s + start * frame_s, offset_s + end * frame_s))
            chars.clear()

    for frame, token in enumerate(path):
        if token == SPACE or not 0 <= token < len(CHARS):
            if token != BLANK:
                finish()
        else:
            if token != previous:
                if not chars:
                    start = frame
                chars.append(CHARS[token])
            end = frame + 1
        previous = token
    finish()
    return words


def segments(words: list[Word], gap_s: float = SEGMENT_GAP_S, max_s: float = SEGMENT_MAX_S,
             max_chars: int = SEGMENT_MAX_CHARS) -> list[Segment]:
    """Words grouped into subtitles: a new one at a pause of gap_s, or where the current one would
    last longer than max_s or hold more than max_chars characters."""
    groups: list[list[Word]] = []
    for word in words:
        current = groups[-1] if groups else None
        if (current is None or word.start - current[-1].end >= gap_s
                or word.end - current[0].start > max_s
                or len(" ".join(w.word for w in current)) + 1 + len(word.word) > max_chars):
            groups.append([word])
        else:
            current.append(word)
    return [Segment(g[0].start, g[-1].end, " ".join(w.word for w in g)) for g in groups]


def clock(seconds: float, decimal: str = ",") -> str:
    """HH:MM:SS,mmm (SubRip) or, with decimal=".", HH:MM:SS.mmm (WebVTT)."""
    ms = round(max(seconds, 0.0) * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal}{ms:03d}"


def to_srt(subtitles: list[Segment]) -> str:
    return "".join(f"{i}\n{clock(s.start)} --> {clock(s.end)}\n{s.text}\n\n"
                   for i, s in enumerate(subtitles, 1))


def to_vtt(subtitles: list[Segment]) -> str:
    return "WEBVTT\n\n" + "".join(f"{clock(s.start, '.')} --> {clock(s.end, '.')}\n{s.text}\n\n"
                                  for s in subtitles)
