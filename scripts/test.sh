#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh Debian machine (README's test command).
# Installs Debian's portaudio19-dev (PyAudio's build), pulseaudio and pulseaudio-utils (a null sink
# for the real playback test) when missing, makes .venv, installs voicebridge with its audio, test
# and local-llm extras (building llama-cpp-python takes about 8-9 minutes on 2 cores the first time;
# pip's wheel cache keeps it), then runs lint, types and pytest (slow tests included).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(portaudio19-dev pulseaudio pulseaudio-utils)
missing=()
for package in "${apt_packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[audio,test,local-llm]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
