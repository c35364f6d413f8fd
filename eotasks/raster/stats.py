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
        "min": float(v.min()),
        "max": float(v.max()),
        "average": mean,
        "median": float(median),
        "std": float(np.sqrt(variance)),
        "variance": variance,
        "q1": float(q1),
        "q3": float(q3),
        "p10": float(p10),
        "p90": float(p90),
    }


def grouped_summaries(
    values: np.ndarray, weights: np.ndarray | None, groups: np.ndarray | None, n_groups: int, qs: list[float]
) -> dict[str, np.ndarray]:
    """Weighted statistics of many groups at once (one array per statistic, indexed by group; NaN
    where a group has no weight), in a few numpy passes, so thousands of fields cost little.

    ``count`` = sum(w); ``average`` = sum(w x) / sum(w); ``variance`` the weighted population
    variance; ``min``/``max`` over w > 0. Quantiles in ``qs`` (0..1) come back as ``q0``, ``q1`` ...,
    by the definition exactextract uses (Wikipedia's "weighted percentile", linear interpolation):
    with a group's values sorted ascending, weights w_i and cumulative weights C_i, value i sits at
    s_0 = 0, s_i = i w_i + (n - 1) C_(i-1), and quantile q is the value at q (n - 1) C_n, interpolated
    between neighbours. With equal weights this is numpy's linear percentile. Ties keep their order
    in the input (as a stable sort would leave them). ``weights`` and ``groups`` None: one group,
    every weight 1."""
    v = np.asarray(values, np.float64)
    if weights is None or groups is None:
        if n_groups != 1:
            raise ValueError("without groups there is one group")
        if v.size:
            return _equal_weights_one_group(v, float(v.size), qs)
        weights, groups = np.ones(0), np.zeros(0, np.int64)
    w = np.asarray(weights, np.float64)
    g = np.asarray(groups, np.int64)
    keep = w > 0
    if not keep.all():
        v, w, g = v[keep], w[keep], g[keep]
    if n_groups == 1 and v.size and (w == w[0]).all():
        return _equal_weights_one_group(v, float(w.sum()), qs)
    total = np.bincount(g, w, n_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(g, w * v, n_groups) / total
        variance = np.bincount(g, w * (v - mean[g]) ** 2, n_groups) / total
    order = _order_by_group_value_position(v, g)
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    v, w = v[order], w[order]  # grouped (group order), each group ascending

    def per_element(per_group: np.ndarray) -> np.ndarray:  # a group's value on each of its elements
        return np.repeat(per_group, counts)

    present = counts > 0
    vmin = np.full(n_groups, np.nan)
    vmax = np.full(n_groups, np.nan)
    if v.size:
        vmin[present] = np.minimum.reduceat(v, starts[present])
        vmax[present] = np.maximum.reduceat(v, starts[present])
    out = {"count": total, "average": mean, "variance": variance, "min": vmin, "max": vmax}
    # Weighted quantiles: s_i = i w_i + (n - 1) C_(i-1) within each group, target q (n - 1) C_n.
    # s is non-decreasing within a group and spans [0, (n - 1) C_n]; each group shifted above the
    # previous one lets one global search serve every group (a one-element group's only s is 0).
    span = (counts - 1) * total
    shift = np.cumsum(np.where(present, span + 1.0, 0.0)) - np.where(present, span + 1.0, 0.0)
    cum = np.cumsum(w)
    before = np.concatenate([[0.0], cum])[starts]  # cumulative weight before each group
    position = np.arange(v.size) - per_element(starts)
    s = position * w + per_element(counts - 1) * (cum - per_element(before) - w)
    key = s + per_element(shift)
    groups_present = np.nonzero(present)[0]
    firsts, ends = starts[groups_present], starts[groups_present] + counts[groups_present]
    for k, q in enumerate(qs):
        result = np.full(n_groups, np.nan)
        if groups_present.size:
            target = q * span[groups_present]
            right = np.searchsorted(key, target + shift[groups_present], side="right")
            right = np.maximum(right, firsts + 1)  # s_0 = 0 <= target: never left of the group
            at_end = right >= ends
            ri = np.minimum(right, ends - 1)
            li = np.maximum(ri - 1, firsts)
            with np.errstate(invalid="ignore", divide="ignore"):
                interp = v[li] + (target - s[li]) * (v[ri] - v[li]) / (s[ri] - s[li])
            result[groups_present] = np.where(at_end, v[ends - 1], interp)
        out[f"q{k}"] = result
    return out


def _equal_weights_one_group(v: np.ndarray, total: float, qs: list[float]) -> dict[str, np.ndarray]:
    """The same statistics for one group whose weights are all equal (one AOI under the centre
    rule): the weights cancel, and the quantile definition is numpy's linear percentile, which a
    partition finds in linear time instead of a sort."""
    mean = float(v.mean())
    out = {
        "count": np.array([total]),
        "average": np.array([mean]),
        "variance": np.array([float(np.mean((v - mean) ** 2))]),
        "min": np.array([float(v.min())]),
        "max": np.array([float(v.max())]),
    }
    for k, q in enumerate(np.percentile(v, [100.0 * q for q in qs]) if qs else []):
        out[f"q{k}"] = np.array([float(q)])
    return out


def _order_by_group_value_position(v: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The order that sorts by group, then value, ties in input order: what a stable lexsort gives,
    three times faster. Two unstable (SIMD) sorts and no Python loop, so it also runs in parallel
    with other threads: the values' dense rank, then one sort of a unique integer key
    (group, rank, position)."""
    n = v.size
    if n == 0:
        return np.zeros(0, np.int64)
    by_value = np.argsort(v)
    sorted_v = v[by_value]
    rank = np.empty(n, np.int64)
    rank[by_value] = np.concatenate([[0], np.cumsum(sorted_v[1:] != sorted_v[:-1])])
    ranks = int(rank[by_value[-1]]) + 1
    if (int(g.max()) + 1) * ranks * n >= 2**63:  # the key would overflow: the plain (slower) way
        return np.lexsort((v, g))
    return np.argsort((g * ranks + rank) * n + np.arange(n))


def grouped_histograms(
    values: np.ndarray, weights: np.ndarray, groups: np.ndarray, n_groups: int, edges: list[float]
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
