"""Every benchmark script runs in its smoke mode (``--quick``), so none of them rots.

They assert nothing themselves: this checks that each completes, prints its table, and (where
it draws) writes a PNG.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p.name
    for p in (REPO / "benchmarks").glob("*.py")
    if p.name not in ("bridge_common.py", "plotting.py")
)
DRAWS = {"bridge_scale.py", "first_audio.py", "fragmenter_bench.py"}


def test_every_script_is_listed_here() -> None:
    assert SCRIPTS, "no benchmark scripts found"


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke_mode(script: str, tmp_path: Path) -> None:
    command = [sys.executable, str(REPO / "benchmarks" / script), "--quick"]
    picture = tmp_path / "chart.png"
    if script in DRAWS:
        command += ["--plot", str(picture)]
    if script == "audio_callback_bench.py" and not os.environ.get("PULSE_SERVER"):
        command.append("--stand-in")  # no sound device here: the stand-in device
    result = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=560, check=False
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "|" in result.stdout or "p99" in result.stdout, "no table printed"
    if script in DRAWS:
        assert picture.stat().st_size > 10_000, "the chart is empty"
