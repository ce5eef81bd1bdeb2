#!/usr/bin/env bash
# Set up and run the whole test suite on a fresh Debian machine (README's test command).
#
# 1. Debian packages, when missing: portaudio19-dev (PyAudio's build), pulseaudio and
#    pulseaudio-utils (a null sink for the real playback tests), chromium (the browser test of
#    the live demo).
# 2. .venv with voicebridge and every extra the tests exercise: audio, test (pytest, linters, the
#    official SDK, ICU segmentation, piper and its test voice, Playwright, LangChain/AutoGen
#    stream shapes), local-llm (a prebuilt llama.cpp wheel: no compiler), bench (charts).
# 3. ruff, ruff format --check, mypy; then pytest, slow tests included (arguments go to pytest).
# 4. The agent-framework plugins in their own venv (scripts/integrations.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_packages=(portaudio19-dev pulseaudio pulseaudio-utils chromium)
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
.venv/bin/python -m pip install -q -e '.[audio,test,local-llm,bench]'

.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
./scripts/integrations.sh -p no:cacheprovider
