"""The benchmarks' ``--plot FILE.png`` in smoke mode (issue 16): each run prints its table and
writes a whole PNG, and leaves no temporary file. Needs the ``bench`` extra (matplotlib,
stream2sentence)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
ENV = {k: v for k, v in os.environ.items() if not k.startswith("DASHSCOPE_")}


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from a PNG's header, after checking that it is one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", data[:16]
    assert data.endswith(b"IEND\xaeB`\x82")  # written whole
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize(
    "command",
    [
        ["first_audio.py", "--quick"],
        ["bridge_scale.py", "--quick"],
        # The table half of fragmenter_bench's --quick arrives with the text branch; until then
        # the smoke calls the --plot function itself, in quick mode (a few seconds).
        ["-c", "import sys, fragmenter_bench as f; f.plot_cost(sys.argv[1], quick=True)"],
    ],
    ids=["first_audio", "bridge_scale", "fragmenter_bench"],
)
def test_plot_writes_a_whole_png_beside_the_table(tmp_path: Path, command: list[str]) -> None:
    chart = tmp_path / "chart.png"
    plot = [str(chart)] if command[0] == "-c" else ["--plot", str(chart)]
    result = subprocess.run(
        [sys.executable, *command, *plot],
        cwd=BENCHMARKS, env=ENV, capture_output=True, text=True, timeout=110,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "|---" in result.stdout  # the table the chart draws
    width, height = png_size(chart)
    assert width >= 600 and height >= 400
    assert [p.name for p in tmp_path.iterdir()] == ["chart.png"]
