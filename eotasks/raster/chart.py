"""A picture of a time series: per index, the average with the q1-q3 band, by date."""

from __future__ import annotations

import datetime as dt
import io
from typing import Any


def timeseries_png(answer: dict[str, Any], items: list[str]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = answer["result"]
    fig, axes = plt.subplots(len(items), 1, figsize=(8, 2.6 * len(items)), squeeze=False, sharex=True)
    for ax, item in zip(axes[:, 0], items):
        stats = [(dt.date.fromisoformat(r["date"]), r["indexes"][item] if "indexes" in r else r) for r in rows]
        dates = [d for d, _ in stats]
        ax.fill_between(dates, [s["q1"] for _, s in stats], [s["q3"] for _, s in stats], alpha=0.3, label="q1-q3")
        ax.plot(dates, [s["average"] for _, s in stats], marker="o", ms=3, label="average")
        ax.set_ylabel(item)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
    axes[0, 0].set_title(f"{len(rows)} scenes, {len(answer['errors'])} left out")
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
