"""Where the speech is in a recording: an energy detector that finds the regions worth decoding.

The model learned from tightly cut clips. Seconds of silence or room noise before, after or
between the words hurt it twice: each mel bin is normalised over the whole input, so a long quiet
stretch drags the statistics, and the model guesses words in what it has never seen. A visitor's
microphone take always has such stretches. `speech_regions` keeps what lies within
SPEECH_RANGE_DB of the recording's loudest 10 ms, with MARGIN_S of context each side; pauses
longer than MIN_PAUSE_S split the speech into regions that the recognizer transcribes one by one
(see srcore.transcribe), each normalised on its own.
"""
import torch

FRAME_S = 0.010  # hop of the energy frames
WINDOW_S = 0.025  # their length
SPEECH_RANGE_DB = 40.0  # a frame within this many dB of the loudest one is speech
MARGIN_S = 0.2  # context kept each side of the speech (soft onsets, trailing fricatives)
MIN_PAUSE_S = 1.0  # a quieter stretch at least this long (margins included) splits the regions


def frame_energies_db(wave: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """Energy (dB, DC removed) of each WINDOW_S frame, every FRAME_S; one frame for a shorter wave."""
    hop, window = round(FRAME_S * sample_rate), round(WINDOW_S * sample_rate)
    if wave.numel() < window:
        frames = wave.reshape(1, -1)
    else:
        frames = wave.unfold(0, window, hop)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return 10 * torch.log10(frames.pow(2).mean(dim=1) + 1e-12)


def speech_regions(wave: torch.Tensor, sample_rate: int, speech_range_db: float = SPEECH_RANGE_DB,
                   margin_s: float = MARGIN_S, min_pause_s: float = MIN_PAUSE_S) -> list[tuple[int, int]]:
    """(start, end) sample ranges of `wave` that hold its speech, in order, with margin_s of context
    each side; regions closer than min_pause_s are one. The whole wave when nothing stands out
    (silence, or noise without a louder part)."""
    if wave.numel() == 0:
        return [(0, 0)]
    energies = frame_energies_db(wave, sample_rate)
    speech = (energies > energies.max() - speech_range_db).nonzero().flatten().tolist()
    hop, window = round(FRAME_S * sample_rate), round(WINDOW_S * sample_rate)
    margin = round(margin_s * sample_rate)
    regions: list[list[int]] = []
    for frame in speech:
        start = max(0, frame * hop - margin)
        end = min(wave.numel(), frame * hop + window + margin)
        if regions and start - regions[-1][1] < round(min_pause_s * sample_rate) - 2 * margin:
            regions[-1][1] = max(regions[-1][1], end)
        else:
            regions.append([start, end])
    return [(start, end) for start, end in regions] or [(0, wave.numel())]


def speech_span(wave: torch.Tensor, sample_rate: int) -> tuple[int, int]:
    """(start, end) samples from the first speech region's start to the last one's end: the
    recording without the silence before and after the words."""
    regions = speech_regions(wave, sample_rate)
    return regions[0][0], regions[-1][1]
