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


def grouped_summaries(values: np.ndarray, weights: np.ndarray, groups: np.ndarray, n_groups: int, qs: list[float]
                      ) -> dict[str, np.ndarray]:
    """Weighted statistics of many groups at once (one array per statistic, indexed by group; NaN
    where a group has no weight), in a few numpy passes, so thousands of fields cost little.

    ``count`` = sum(w); ``average`` = sum(w x) / sum(w); ``variance`` the weighted population
    variance; ``min``/``max`` over w > 0. Quantiles in ``qs`` (0..1) come back as ``q0``, ``q1`` ...,
    by the definition exactextract uses (Wikipedia's "weighted percentile", linear interpolation):
    with a group's values sorted ascending, weights w_i and cumulative weights C_i, value i sits at
    s_0 = 0, s_i = i w_i + (n - 1) C_(i-1), and quantile q is the value at q (n - 1) C_n, interpolated
    between neighbours. With equal weights this is numpy's linear percentile. Ties keep their order
    in the input (stable sort)."""
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    g = np.asarray(groups, np.int64)
    keep = w > 0
    v, w, g = v[keep], w[keep], g[keep]
    total = np.bincount(g, w, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, w * v, n_groups) / total
        variance = np.bincount(g, w * (v - mean[g]) ** 2, n_groups) / total
    # By group, then value, ties in input order: a radix sort by group, then each group's own (small)
    # sort, which is several times cheaper than one lexsort of everything.
    order = np.argsort(g.astype(np.int32 if n_groups < 2**31 else np.int64), kind="stable")
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    grouped_v = v[order]
    for a, c in zip(starts[counts > 1].tolist(), counts[counts > 1].tolist()):
        order[a:a + c] = order[a:a + c][np.argsort(grouped_v[a:a + c], kind="stable")]
    v, w, g = v[order], w[order], g[order]
    present = counts > 0
    vmin = np.full(n_groups, np.nan)
    vmax = np.full(n_groups, np.nan)
    if v.size:
        vmin[present] = np.minimum.reduceat(v, starts[present])
        vmax[present] = np.maximum.reduceat(v, starts[present])
    out = {"count": total, "average": mean, "variance": variance, "min": vmin, "max": vmax}
    # Weighted quantiles: s_i = i w_i + (n - 1) C_(i-1) within each group, target q (n - 1) C_n.
    cum = np.cumsum(w)
    base = np.concatenate([[0.0], cum])[starts]  # cumulative weight before each group
    inclusive = cum - base[g]
    position = np.arange(v.size) - starts[g]
    n = counts[g]
    s = position * w + (n - 1) * (inclusive - w)
    span = (counts - 1) * total
    single = present & (counts == 1)
    multi = np.nonzero(present & (counts > 1))[0]
    if multi.size:
        # s is non-decreasing within a group; shifting each group above the previous one lets one
        # global search serve every group (the elements are already grouped, in group order).
        shift_of_group = np.zeros(n_groups)
        shift_of_group[multi] = np.cumsum(np.concatenate([[0.0], span[multi][:-1] + 1.0]))
        in_multi = (counts > 1)[g]
        idx_sel = np.nonzero(in_multi)[0]
        key = s[idx_sel] + shift_of_group[g[idx_sel]]
        ends = np.cumsum(counts[multi])  # end of each multi group within idx_sel
        firsts = ends - counts[multi]
    for k, q in enumerate(qs):
        result = np.full(n_groups, np.nan)
        result[single] = v[starts[single]]
        if multi.size:
            target = q * span[multi]
            right = np.searchsorted(key, target + shift_of_group[multi], side="right")
            right = np.maximum(right, firsts + 1)  # s_0 = 0 <= target: never left of the group
            at_end = right >= ends
            right_c = np.minimum(right, ends - 1)
            li, ri = idx_sel[right_c - 1], idx_sel[right_c]
            with np.errstate(invalid="ignore", divide="ignore"):
                interp = v[li] + (target - s[li]) * (v[ri] - v[li]) / (s[ri] - s[li])
            result[multi] = np.where(at_end, v[idx_sel[ends - 1]], interp)
        out[f"q{k}"] = result
    return out


def grouped_histograms(values: np.ndarray, weights: np.ndarray, groups: np.ndarray, n_groups: int, edges: list[float]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(counts (groups x bins), underflow, overflow) of every group: sums of weights per bin
    [e_i, e_i+1), the last bin closed; below e_0 is underflow, above e_n overflow, so the three add
    up to the group's count."""
    e = np.asarray(edges, np.float64)
    v = np.asarray(values, np.float64)
    w = np.asarray(weights, np.float64)
    g = np.asarray(groups, np.int64)
    bins = e.size - 1
    index = np.searchsorted(e, v, side="right") - 1
    index[v == e[-1]] = bins - 1  # the last bin is closed
    inside = (index >= 0) & (index < bins)
    counts = np.bincount(g[inside] * bins + index[inside], w[inside], n_groups * bins).reshape(n_groups, bins)
    under = np.bincount(g[v < e[0]], w[v < e[0]], n_groups)
    over = np.bincount(g[v > e[-1]], w[v > e[-1]], n_groups)
    return counts, under, over
