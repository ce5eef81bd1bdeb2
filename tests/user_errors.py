"""Helpers for the user-error tests: a child Python without some modules, and the one-line check.

``env_without`` is a fake, named as one: a ``sitecustomize`` on PYTHONPATH sets
``sys.modules[name] = None`` in the child, which is what ``import`` and ``find_spec`` see for a
module that is not installed (an extra left out, PyAudio missing).
"""

from __future__ import annotations

import os
import socket
import subprocess
from pathlib import Path


def env_without(folder: Path, env: dict[str, str], *modules: str) -> dict[str, str]:
    """``env`` for a child in which ``modules`` are not installed (``folder`` holds the hook)."""
    folder.mkdir(parents=True, exist_ok=True)
    hides = "".join(f"sys.modules[{name!r}] = None\n" for name in modules)
    (folder / "sitecustomize.py").write_text(f"import sys\n{hides}", encoding="utf-8")
    paths = [str(folder), *filter(None, [env.get("PYTHONPATH")])]
    return {**env, "PYTHONPATH": os.pathsep.join(paths)}


def one_error_line(result: subprocess.CompletedProcess[str], status: int) -> str:
    """The last stderr line, after checking the exit status, that no traceback was printed and
    that the error line is there once (status lines before it are allowed)."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    assert result.stderr.count(lines[-1]) == 1, result.stderr
    return lines[-1]


def closed_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port
