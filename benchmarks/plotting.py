"""Charts for the benchmarks' ``--plot FILE.png`` (matplotlib, from the ``bench`` extra).

Two shapes cover every benchmark: :func:`line_chart` (a metric against a size, one line per
client) and :func:`bar_chart` (a metric per case, one bar per client). Each metric gets its own
panel, side by side. The PNG is written to a temporary file and renamed, so a failed run leaves
no half-written picture.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence

__all__ = ["bar_chart", "line_chart"]

Series = Mapping[str, Mapping[str, Sequence[float]]]  # client -> metric -> one value per x


def line_chart(
    path: str, title: str, x_label: str, x: Sequence[float], series: Series, *, log_x: bool = False
) -> None:
    """One panel per metric, one line per client, against ``x``."""
    figure, axes = _panels(series)
    for axis, metric in zip(axes, _metrics(series), strict=True):
        for client, metrics in series.items():
            axis.plot(x, metrics[metric], marker="o", label=client)
        axis.set_xlabel(x_label)
        axis.set_ylabel(metric)
        if log_x:
            axis.set_xscale("log")
        axis.grid(True, alpha=0.3)
        axis.legend()
    _save(figure, title, path)


def bar_chart(path: str, title: str, cases: Sequence[str], series: Series) -> None:
    """One panel per metric, one group of bars per case, one bar per client."""
    figure, axes = _panels(series)
    width = 0.8 / max(len(series), 1)
    for axis, metric in zip(axes, _metrics(series), strict=True):
        for index, (client, metrics) in enumerate(series.items()):
            positions = [i + index * width for i in range(len(cases))]
            axis.bar(positions, metrics[metric], width=width, label=client)
        axis.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(cases))])
        axis.set_xticklabels(cases, rotation=20, ha="right")
        axis.set_ylabel(metric)
        axis.grid(True, axis="y", alpha=0.3)
        axis.legend()
    _save(figure, title, path)


def _metrics(series: Series) -> list[str]:
    first = next(iter(series.values()), {})
    return list(first)


def _panels(series: Series) -> tuple[object, list[object]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(len(_metrics(series)), 1)
    figure, axes = plt.subplots(1, count, figsize=(6 * count, 4.5), squeeze=False)
    return figure, list(axes[0])


def _save(figure: object, title: str, path: str) -> None:
    import matplotlib.pyplot as plt

    figure.suptitle(title)  # type: ignore[attr-defined]
    figure.tight_layout()  # type: ignore[attr-defined]
    folder = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=110)  # type: ignore[attr-defined]
        os.replace(temporary, path)
    finally:
        plt.close(figure)  # type: ignore[arg-type]
        if os.path.exists(temporary):
            os.unlink(temporary)
