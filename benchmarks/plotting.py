"""Charts for the benchmarks' ``--plot FILE.png`` (matplotlib, from the ``bench`` extra).

Two shapes cover every benchmark: :func:`line_chart` (a metric against a size, one line per
client) and :func:`bar_chart` (a metric per case, one bar per client). Each metric gets its own
panel, side by side; ``note`` is a caption under them (what to read, how it was measured).
Numbers on the axes are plain (``2,100``, not ``2.1 x 10^3``); a log axis is ticked at the
measured sizes. The PNG is written to a temporary file and renamed, so a failed run leaves no
half-written picture.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping, Sequence

__all__ = ["bar_chart", "line_chart"]

Series = Mapping[str, Mapping[str, Sequence[float]]]  # client -> metric -> one value per x


def line_chart(
    path: str,
    title: str,
    x_label: str,
    x: Sequence[float],
    series: Series,
    *,
    log_x: bool = False,
    log_y: bool = False,
    note: str | None = None,
) -> None:
    """One panel per metric, one line per client, against ``x``. A NaN value is a point not
    measured: the line skips it."""
    from matplotlib.ticker import FixedLocator, NullFormatter

    figure, axes = _panels(series)
    for axis, metric in zip(axes, _metrics(series), strict=True):
        for client, metrics in series.items():
            axis.plot(x, metrics[metric], marker="o", label=client)
        axis.set_xlabel(x_label)
        axis.set_ylabel(metric)
        if log_x:
            axis.set_xscale("log")
            axis.xaxis.set_major_locator(FixedLocator(list(x)))
            axis.xaxis.set_minor_formatter(NullFormatter())
        if log_y:
            axis.set_yscale("log")
        _plain_numbers(axis.xaxis, axis.yaxis)
        axis.grid(True, which="major", alpha=0.3)
        axis.legend()
    _save(figure, title, path, note)


def bar_chart(
    path: str, title: str, cases: Sequence[str], series: Series, *, note: str | None = None
) -> None:
    """One panel per metric, one group of bars per case, one bar per client; each bar is
    labelled with its value."""
    figure, axes = _panels(series)
    width = 0.8 / max(len(series), 1)
    for axis, metric in zip(axes, _metrics(series), strict=True):
        for index, (client, metrics) in enumerate(series.items()):
            positions = [i + index * width for i in range(len(cases))]
            bars = axis.bar(positions, metrics[metric], width=width, label=client)
            axis.bar_label(bars, fmt="{:,.0f}", fontsize=7, padding=1)
        axis.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(cases))])
        axis.set_xticklabels(cases)
        axis.set_ylabel(metric)
        _plain_numbers(axis.yaxis)
        axis.grid(True, axis="y", alpha=0.3)
        axis.set_ylim(top=axis.get_ylim()[1] * 1.3)  # room for the legend above the bars
        axis.legend(ncol=2, loc="upper left", fontsize=9)
    _save(figure, title, path, note)


def _metrics(series: Series) -> list[str]:
    first = next(iter(series.values()), {})
    return list(first)


def _plain_numbers(*axes: object) -> None:
    """Tick labels such as ``2,100`` and ``0.05`` (a log axis would say ``2.1 x 10^3``)."""
    from matplotlib.ticker import FuncFormatter

    for axis in axes:
        axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.10g}"))  # type: ignore[attr-defined]


def _panels(series: Series) -> tuple[object, list[object]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    count = max(len(_metrics(series)), 1)
    figure, axes = plt.subplots(1, count, figsize=(6.4 * count, 5), squeeze=False)
    return figure, list(axes[0])


def _save(figure: object, title: str, path: str, note: str | None) -> None:
    import matplotlib.pyplot as plt

    figure.suptitle(title, fontsize=13)  # type: ignore[attr-defined]
    if note:
        figure.text(0.5, 0.015, note, ha="center", va="bottom", fontsize=9)  # type: ignore[attr-defined]
    figure.tight_layout(rect=(0, 0.07 if note else 0, 1, 1))  # type: ignore[attr-defined]
    folder, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.part.png")  # umask's mode
    try:
        figure.savefig(temporary, dpi=110)  # type: ignore[attr-defined]
        os.replace(temporary, path)
    finally:
        plt.close(figure)  # type: ignore[arg-type]
        if os.path.exists(temporary):
            os.unlink(temporary)
