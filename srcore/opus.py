"""The Opus codec through the system's libopus (ctypes), for augmentation: a clip encoded into raw
20 ms packets and decoded again, in memory, at a chosen bitrate and encoder complexity.

libsndfile's Ogg Opus (what `soundfile` writes) encodes at complexity 10, 30-50x real time on one
core; at complexity 5 libopus runs about nine times faster (bench/augment_speed.py). `load()` is
None where the library is missing (augmentation then falls back to libsndfile).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np

RATES = (8000, 12000, 16000, 24000, 48000)  # the rates an Opus encoder takes
FRAME_S = 0.02
MAX_PACKET_BYTES = 4000
APPLICATION_AUDIO = 2049  # what libsndfile's Ogg Opus uses too
SET_BITRATE, SET_COMPLEXITY, GET_LOOKAHEAD = 4002, 4010, 4027  # opus_defines.h requests


class OpusError(RuntimeError):
    pass


class LibOpus:
    """The few libopus calls the augmentation needs, with their C signatures declared once."""

    def __init__(self, lib: ctypes.CDLL):
        self.lib = lib
        for name in ("opus_encoder_create", "opus_decoder_create"):
            getattr(lib, name).restype = ctypes.c_void_p
        lib.opus_encode_float.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                          ctypes.c_char_p, ctypes.c_int32]
        lib.opus_decode_float.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int32,
                                          ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
        for name in ("opus_encoder_destroy", "opus_decoder_destroy"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]

    def _created(self, handle, error: ctypes.c_int, what: str):
        if not handle or error.value != 0:
            raise OpusError(f"libopus: could not create the {what} (error {error.value})")
        return handle

    def round_trip(self, samples: np.ndarray, rate: int, bitrate: int, complexity: int) -> np.ndarray:
        """`samples` (float32, mono, in [-1, 1]) encoded and decoded; the same length, aligned."""
        if rate not in RATES:
            raise OpusError(f"libopus: {rate} Hz is not an Opus rate ({RATES})")
        lib, error = self.lib, ctypes.c_int()
        encoder = self._created(lib.opus_encoder_create(rate, 1, APPLICATION_AUDIO, ctypes.byref(error)),
                                error, "encoder")
        try:
            decoder = self._created(lib.opus_decoder_create(rate, 1, ctypes.byref(error)), error, "decoder")
            try:
                return self._through(encoder, decoder, samples, rate, bitrate, complexity)
            finally:
                lib.opus_decoder_destroy(decoder)
        finally:
            lib.opus_encoder_destroy(encoder)

    def _through(self, encoder, decoder, samples, rate, bitrate, complexity) -> np.ndarray:
        lib, frame = self.lib, int(rate * FRAME_S)
        lib.opus_encoder_ctl(ctypes.c_void_p(encoder), SET_BITRATE, ctypes.c_int(bitrate))
        lib.opus_encoder_ctl(ctypes.c_void_p(encoder), SET_COMPLEXITY, ctypes.c_int(complexity))
        lookahead = ctypes.c_int()
        lib.opus_encoder_ctl(ctypes.c_void_p(encoder), GET_LOOKAHEAD, ctypes.byref(lookahead))
        n = samples.shape[-1]
        frames = -(-(n + lookahead.value) // frame)
        pcm = np.zeros(frames * frame, np.float32)
        pcm[:n] = samples
        out = np.zeros_like(pcm)
        packet = ctypes.create_string_buffer(MAX_PACKET_BYTES)
        for start in range(0, pcm.size, frame):
            size = lib.opus_encode_float(encoder, pcm[start:].ctypes.data, frame, packet, MAX_PACKET_BYTES)
            if size < 0:
                raise OpusError(f"libopus: encoding failed (error {size})")
            got = lib.opus_decode_float(decoder, packet, size, out[start:].ctypes.data, frame, 0)
            if got != frame:
                raise OpusError(f"libopus: decoding failed (error {got})")
        return out[lookahead.value:lookahead.value + n]


@cache
def load() -> LibOpus | None:
    """The system's libopus, or None where it is not installed."""
    name = ctypes.util.find_library("opus")
    if name is None:
        return None
    try:
        return LibOpus(ctypes.CDLL(name))
    except (OSError, AttributeError):
        return None
