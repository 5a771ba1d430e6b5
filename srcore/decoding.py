"""CTC decoding: greedy by default, beam search with torchaudio's flashlight decoder on request."""
import torch

from .text import BLANK, CHARS

_BEAM_TOKENS = [c if c != " " else "|" for c in CHARS] + ["<blank>"]


def greedy_decode(log_probs: torch.Tensor, length: int | None = None) -> str:
    """Best path of one utterance (frames, classes): collapse repeats, drop blanks."""
    best = log_probs[:length].argmax(-1).tolist()
    chars, previous = [], None
    for token in best:
        if token != previous and token != BLANK:
            chars.append(CHARS[token])
        previous = token
    return " ".join("".join(chars).split())


class BeamDecoder:
    """Lexicon-free (or lexicon + KenLM) beam search over characters."""

    def __init__(self, beam_size: int = 16, lexicon: str | None = None, lm: str | None = None,
                 lm_weight: float = 0.5, word_score: float = 0.0):
        from torchaudio.models.decoder import ctc_decoder
        self.decoder = ctc_decoder(lexicon=lexicon, tokens=_BEAM_TOKENS, lm=lm, beam_size=beam_size,
                                   blank_token="<blank>", sil_token="|", unk_word="<unk>",
                                   lm_weight=lm_weight, word_score=word_score)

    def __call__(self, log_probs: torch.Tensor, length: int | None = None) -> str:
        emissions = log_probs[:length].unsqueeze(0).float().cpu().contiguous()
        best = self.decoder(emissions)[0][0]
        if best.words:
            return " ".join(best.words)
        text = "".join(_BEAM_TOKENS[t] for t in best.tokens.tolist() if t != BLANK)
        return " ".join(text.replace("|", " ").split())


def make_decoder(beam: int = 0, lexicon: str | None = None, lm: str | None = None):
    """Greedy when beam <= 1, else a BeamDecoder; both map (frames, classes) -> text."""
    return greedy_decode if beam <= 1 and not lm else BeamDecoder(max(beam, 2), lexicon, lm)
