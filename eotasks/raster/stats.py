"""The ten statistics of SPEC §3 over the valid pixels of an AOI."""

from __future__ import annotations

import numpy as np

STAT_KEYS = ("min", "max", "average", "median", "std", "variance", "q1", "q3", "p10", "p90")


def summarize(values: np.ndarray) -> dict[str, float]:
    """Population variance and std; percentiles by linear interpolation (numpy's default)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise ValueError("no valid pixels")
    p10, q1, median, q3, p90 = np.percentile(v, [10, 25, 50, 75, 90])
    mean = float(v.mean())
    variance = float(np.mean((v - mean) ** 2))
    return {
        "min": float(v.min()), "max": float(v.max()), "average": mean, "median": float(median),
        "std": float(np.sqrt(variance)), "variance": variance,
        "q1": float(q1), "q3": float(q3), "p10": float(p10), "p90": float(p90),
    }


def weighted_quantiles(values: np.ndarray, weights: np.ndarray, qs: list[float]) -> list[float]:
    """Weighted quantiles (q in [0, 1]) by the definition exactextract uses (Wikipedia's "weighted
    percentile", linear interpolation): with values sorted ascending, weights w_i and cumulative
    weights C_i, each value sits at s_0 = 0, s_i = i w_i + (n - 1) C_(i-1); quantile q is the value at
    q (n - 1) C_n, interpolated linearly between neighbours. With equal weights this is numpy's
    default (linear) percentile."""
    order = np.argsort(values, kind="stable")
    x, w = values[order], weights[order]
    n = x.size
    if n == 1:
        return [float(x[0])] * len(qs)
    cum = np.cumsum(w)
    s = np.empty(n)
    s[0] = 0.0
    s[1:] = np.arange(1, n) * w[1:] + (n - 1) * cum[:-1]
    total = (n - 1) * cum[-1]
    out = []
    for q in qs:
        target = q * total
        right = int(np.searchsorted(s, target, side="right"))
        if right >= n:
            out.append(float(x[-1]))
            continue
        left = right - 1
        out.append(float(x[left] + (target - s[left]) * (x[right] - x[left]) / (s[right] - s[left])))
    return out


def weighted_summary(values: np.ndarray, weights: np.ndarray, percentiles: list[float] | None = None) -> dict[str, object]:
    """SPEC's statistics with weights (coverage fractions): weighted mean, population variance and
    std, weighted quantiles (``weighted_quantiles``), min and max over weight > 0, and ``count`` the
    sum of the weights."""
    v = np.asarray(values, np.float64).ravel()
    w = np.asarray(weights, np.float64).ravel()
    keep = w > 0
    v, w = v[keep], w[keep]
    if v.size == 0:
        raise ValueError("no valid pixels")
    total = float(w.sum())
    mean = float((w * v).sum() / total)
    variance = float((w * (v - mean) ** 2).sum() / total)
    extra = [p / 100.0 for p in (percentiles or [])]
    p10, q1, median, q3, p90, *rest = weighted_quantiles(v, w, [0.10, 0.25, 0.50, 0.75, 0.90, *extra])
    out: dict[str, object] = {
        "min": float(v.min()), "max": float(v.max()), "average": mean, "median": median,
        "std": float(np.sqrt(variance)), "variance": variance, "q1": q1, "q3": q3, "p10": p10, "p90": p90, "count": total,
    }
    if percentiles:
        out["percentiles"] = {f"{p:g}": value for p, value in zip(percentiles, rest)}
    return out


def weighted_histogram(values: np.ndarray, weights: np.ndarray, edges: list[float]) -> dict[str, object]:
    """Counts (sums of weights) per bin: [e_i, e_i+1), the last bin closed; what falls below e_0
    is ``underflow``, above e_n ``overflow``. counts + underflow + overflow = count."""
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    e = np.asarray(edges, np.float64)
    counts, _ = np.histogram(v, bins=e, weights=w)
    under = float(w[v < e[0]].sum())
    over = float(w[v > e[-1]].sum())
    as_int = bool(np.all(w == 1.0))
    conv = (lambda x: int(round(x))) if as_int else float
    return {"edges": [float(x) for x in e], "counts": [conv(c) for c in counts], "underflow": conv(under), "overflow": conv(over)}
