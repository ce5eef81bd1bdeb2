#!/usr/bin/env bash
# The agent-framework plugins (voicebridge/integrations) tested inside the frameworks themselves.
# Makes .venv-integrations with the livekit, pipecat and openai-agents extras: the three
# frameworks share one venv, but not the main .venv (AutoGen, in the test extra, pins protobuf 5;
# pipecat needs protobuf 6). Type-checks the plugins against the real framework types, then runs
# tests/integrations (the examples included); extra arguments go to pytest. Needs no apt package.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-integrations
python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q -e '.[livekit,pipecat,openai-agents]' \
  'pytest>=8' 'pytest-timeout>=2.3' 'mypy>=1.11'

"$venv/bin/mypy"
# required: a framework that failed to install is an import error, not a module left out
VOICEBRIDGE_INTEGRATIONS=required "$venv/bin/python" -m pytest tests/integrations "$@"
