"""The framework plugins' tests run in the venv that ``scripts/integrations.sh`` makes (the
frameworks are extras). In any other venv a module whose framework is not installed is not
collected; ``VOICEBRIDGE_INTEGRATIONS=required`` (set by that script) turns a missing framework
into an import error instead."""

from __future__ import annotations

import importlib.util
import os

_FRAMEWORKS_OF = {
    "test_livekit.py": ("livekit.agents",),
    "test_pipecat.py": ("pipecat",),
    "test_openai_agents.py": ("agents.voice",),
    "test_examples_frameworks.py": ("livekit.agents", "pipecat", "agents.voice"),
}


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # the parent package is missing
        return False


collect_ignore = (
    []
    if os.environ.get("VOICEBRIDGE_INTEGRATIONS") == "required"
    else [test for test, modules in _FRAMEWORKS_OF.items() if not all(map(_installed, modules))]
)
