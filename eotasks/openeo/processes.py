"""The processes that work on numbers, booleans, strings and arrays, by their official definitions.

Each works on a scalar (Python's, with ``None`` as null) and, unchanged, on numpy arrays (float64,
NaN as null), so a callback over a data cube runs once over all its pixels. The data cube processes
are in ``eotasks.openeo.cube``; both register here, in ``PROCESSES``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from eotasks.openeo.errors import process_error
from eotasks.openeo.values import Labeled, as_float_array, is_array


@dataclass(frozen=True)
class Process:
    fn: Callable[..., Any]
    needs_env: bool = False  # gets the evaluation's environment (catalogue, files) as ``env``


PROCESSES: dict[str, Process] = {}


def process(name: str, *, needs_env: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        PROCESSES[name] = Process(fn, needs_env)
        return fn

    return register


# --- elementwise ----------------------------------------------------------------------------------


def _as_array(value: Any) -> Any:
    if isinstance(value, Labeled):
        value = value.values
    if isinstance(value, np.ndarray):
        return value.astype(np.float64, copy=False)
    if value is None:
        return np.nan
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    return value


def _scalar(value: Any) -> Any:
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def elementwise(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn`` of numpy values on scalars (null in, null out) or arrays (NaN is null throughout)."""
    if any(is_array(a) for a in args):
        labels = next((a.labels for a in args if isinstance(a, Labeled)), None)
        with np.errstate(all="ignore"):
            out = fn(*[_as_array(a) for a in args])
        out = np.asarray(out, np.float64)
        return Labeled(out, labels) if labels is not None else out
    if any(a is None for a in args):
        return None
    with np.errstate(all="ignore"):
        return _scalar(fn(*[np.float64(a) if isinstance(a, (int, float)) and not isinstance(a, bool) else a for a in args]))


def _number(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args: elementwise(fn, *args)


def _integral(value: Any) -> Any:
    """An integer result as an int (``floor(1.5)`` is 1, not 1.0), where it is finite."""
    if isinstance(value, float) and math.isfinite(value) and value == int(value):
        return int(value)
    return value


# Arithmetic of two numbers (x, y): numpy's, null in, null out.
for _name, _op in {"add": np.add, "subtract": np.subtract, "multiply": np.multiply, "divide": np.divide}.items():
    PROCESSES[_name] = Process(lambda x, y, _f=_op: elementwise(_f, x, y))


@process("mod")
def mod(x: Any, y: Any) -> Any:
    """The sign of the divisor (a floored modulo, numpy's); a finite ``x`` modulo an infinite ``y``
    is ``x`` (the definition's cases); a scalar modulo zero raises DivisionByZero."""
    if not (is_array(x) or is_array(y)) and y == 0 and x is not None:
        raise process_error("DivisionByZero", "Division by zero is not supported.")

    def fn(a: Any, b: Any) -> Any:
        return np.where(np.isinf(b) & np.isfinite(a), a, np.mod(a, b))

    return elementwise(fn, x, y)


@process("power")
def power(base: Any, p: Any) -> Any:
    return elementwise(np.power, base, p)


@process("absolute")
def absolute(x: Any) -> Any:
    return _integral(elementwise(np.abs, x)) if isinstance(x, int) and not isinstance(x, bool) else elementwise(np.abs, x)


@process("sgn")
def sgn(x: Any) -> Any:
    return _integral(elementwise(np.sign, x))


@process("sqrt")
def sqrt(x: Any) -> Any:
    return elementwise(np.sqrt, x)


@process("exp")
def exp(p: Any) -> Any:
    return elementwise(np.exp, p)


@process("ln")
def ln(x: Any) -> Any:
    return elementwise(np.log, x)


@process("log")
def log(x: Any, base: Any) -> Any:
    return elementwise(lambda a, b: np.log(a) / np.log(b), x, base)


@process("ceil")
def ceil(x: Any) -> Any:
    return _integral(elementwise(np.ceil, x))


@process("floor")
def floor(x: Any) -> Any:
    return _integral(elementwise(np.floor, x))


@process("int")
def int_(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None  # the definition's test cases: NaN has no integer part
    return _integral(elementwise(np.trunc, x))


@process("round")
def round_(x: Any, p: int = 0) -> Any:
    # Half to even, as the definition says ("round half to even", IEEE 754).
    out = elementwise(lambda a: np.round(a, int(p)), x)
    return _integral(out) if p <= 0 else out


@process("clip")
def clip(x: Any, min: Any, max: Any) -> Any:
    if min > max:
        raise process_error("MinMaxSwapped", "The minimum value should be lower than or equal to the maximum value.")
    return elementwise(lambda a: np.minimum(np.maximum(a, min), max), x)


@process("linear_scale_range")
def linear_scale_range(x: Any, inputMin: Any, inputMax: Any, outputMin: Any = 0, outputMax: Any = 1) -> Any:  # noqa: N803
    low, high = sorted((inputMin, inputMax))
    return elementwise(
        # Values outside the input range are clipped to it first (the definition).
        lambda a: (np.clip(a, low, high) - inputMin) / (inputMax - inputMin) * (outputMax - outputMin) + outputMin,
        x,
    )


@process("normalized_difference")
def normalized_difference(x: Any, y: Any) -> Any:
    return elementwise(lambda a, b: (a - b) / (a + b), x, y)


for _name, _fn in {
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "arcsin": np.arcsin,
    "arccos": np.arccos,
    "arctan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "arsinh": np.arcsinh,
    "arcosh": np.arccosh,
    "artanh": np.arctanh,
}.items():
    PROCESSES[_name] = Process(lambda x, _f=_fn: elementwise(_f, x))


@process("arctan2")
def arctan2(y: Any, x: Any) -> Any:
    return elementwise(np.arctan2, y, x)


@process("e")
def e() -> float:
    return math.e


@process("pi")
def pi() -> float:
    return math.pi


@process("nan")
def nan() -> float:
    return math.nan


# --- comparisons ----------------------------------------------------------------------------------


def _numeric(value: Any) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or is_array(value)


def _compare(op: Callable[[Any, Any], Any], x: Any, y: Any) -> Any:
    if is_array(x) or is_array(y):

        def fn(a: Any, b: Any) -> Any:
            out = op(a, b).astype(np.float64)
            return np.where(np.isnan(a) | np.isnan(b), np.nan, out)

        return elementwise(fn, x, y)
    if x is None or y is None:
        return None
    if not (_numeric(x) and _numeric(y)):
        return False  # gt, lt ...: only numbers (and temporal strings, not supported here) compare
    return bool(op(x, y))


for _name, _op in {"gt": np.greater, "gte": np.greater_equal, "lt": np.less, "lte": np.less_equal}.items():
    PROCESSES[_name] = Process(lambda x, y, _f=_op: _compare(_f, x, y))


@process("eq")
def eq(x: Any, y: Any, delta: Any = None, case_sensitive: bool = True) -> Any:
    if is_array(x) or is_array(y):
        if delta is not None:
            return _compare(lambda a, b: np.abs(a - b) <= delta, x, y)
        return _compare(np.equal, x, y)
    if x is None or y is None:
        return None
    if isinstance(x, str) and isinstance(y, str):
        return x == y if case_sensitive else x.lower() == y.lower()
    if isinstance(x, bool) or isinstance(y, bool):
        return isinstance(x, bool) and isinstance(y, bool) and x == y
    if _numeric(x) and _numeric(y):
        return bool(abs(x - y) <= delta) if delta is not None else bool(x == y)
    return False


@process("neq")
def neq(x: Any, y: Any, delta: Any = None, case_sensitive: bool = True) -> Any:
    out = eq(x, y, delta, case_sensitive)
    if out is None:
        return None
    if isinstance(out, (np.ndarray, Labeled)):
        return elementwise(lambda a: np.where(np.isnan(a), np.nan, 1.0 - a), out)
    return not out


@process("between")
def between(x: Any, min: Any, max: Any, exclude_max: bool = False) -> Any:
    if is_array(x):
        upper = np.less if exclude_max else np.less_equal
        return elementwise(lambda a: np.where(np.isnan(a), np.nan, ((a >= min) & upper(a, max)).astype(np.float64)), x)
    if x is None:
        return None
    if not _numeric(x):
        return False
    return bool(min <= x < max) if exclude_max else bool(min <= x <= max)


# --- logic ----------------------------------------------------------------------------------------


def _truth(a: Any) -> Any:
    return np.where(np.isnan(a), np.nan, (a != 0).astype(np.float64))


@process("not")
def not_(x: Any) -> Any:
    if is_array(x):
        return elementwise(lambda a: np.where(np.isnan(a), np.nan, (a == 0).astype(np.float64)), x)
    return None if x is None else not x


def _kleene(x: Any, y: Any, dominant: bool) -> Any:
    """Three-valued ``and`` (dominant false) and ``or`` (dominant true): the dominant value wins
    over null, null over the other."""
    win = 1.0 if dominant else 0.0
    if is_array(x) or is_array(y):

        def fn(a: Any, b: Any) -> Any:
            a, b = _truth(np.asarray(a, float)), _truth(np.asarray(b, float))
            return np.where((a == win) | (b == win), win, np.where(np.isnan(a) | np.isnan(b), np.nan, 1.0 - win))

        return elementwise(fn, x, y)
    if x is dominant or y is dominant:
        return dominant
    if x is None or y is None:
        return None
    return bool(x) and bool(y) if not dominant else bool(x) or bool(y)


@process("and")
def and_(x: Any, y: Any) -> Any:
    return _kleene(x, y, dominant=False)


@process("or")
def or_(x: Any, y: Any) -> Any:
    return _kleene(x, y, dominant=True)


@process("xor")
def xor(x: Any, y: Any) -> Any:
    if is_array(x) or is_array(y):

        def fn(a: Any, b: Any) -> Any:
            a, b = _truth(np.asarray(a, float)), _truth(np.asarray(b, float))
            return np.where(np.isnan(a) | np.isnan(b), np.nan, (a != b).astype(np.float64))

        return elementwise(fn, x, y)
    if x is None or y is None:
        return None
    return bool(x) != bool(y)


@process("if")
def if_(value: Any, accept: Any, reject: Any = None) -> Any:
    if is_array(value):
        cond = _as_array(value)
        acc, rej = _as_array(accept), _as_array(reject)
        return np.where(cond == 1, acc, rej).astype(np.float64)
    return accept if value is True else reject


@process("is_nodata")
def is_nodata(x: Any) -> Any:
    if is_array(x):
        return np.isnan(_as_array(x)).astype(np.float64)
    return x is None


@process("is_nan")
def is_nan(x: Any) -> Any:
    if is_array(x):
        return np.isnan(_as_array(x)).astype(np.float64)
    if x is None:
        return True  # the definition: true for no-data values too
    return not _numeric(x) or math.isnan(x)


@process("is_valid")
def is_valid(x: Any) -> Any:
    if is_array(x):
        return np.isfinite(_as_array(x)).astype(np.float64)
    if x is None:
        return False
    if isinstance(x, float):
        return math.isfinite(x)
    return True


@process("is_infinite")
def is_infinite(x: Any) -> Any:
    if is_array(x):
        return np.isinf(_as_array(x)).astype(np.float64)
    return bool(_numeric(x) and math.isinf(x)) if x is not None else False


# --- reducers -------------------------------------------------------------------------------------


def _reduce(data: Any, ignore_nodata: bool, fn: Callable[[np.ndarray], Any], min_count: int = 1) -> Any:
    """``fn`` over axis 0 of ``data``: a list (null ignored or propagated, NaN a number) or, in a
    callback over a cube, an array (NaN is null). Fewer than ``min_count`` values give null."""
    values, null = as_float_array(data)
    if not is_array(data):
        if null.any() and not ignore_nodata:
            return None
        values = values[~null]
        if values.size < min_count:
            return None
        with np.errstate(all="ignore"):
            return _scalar(fn(values))
    with np.errstate(all="ignore"):
        if ignore_nodata:
            result = fn(np.ma.masked_array(values, null))
            out = np.ma.filled(np.ma.asarray(result).astype(np.float64), np.nan)
            return np.where((~null).sum(axis=0) >= min_count, out, np.nan)
        return np.asarray(fn(values), np.float64)


def _masked(fn_name: str, **kwargs: Any) -> Callable[[Any], Any]:
    """numpy's reduction ``fn_name`` over axis 0, on plain and masked arrays alike."""

    def fn(a: Any) -> Any:
        if isinstance(a, np.ma.MaskedArray):
            return getattr(np.ma, fn_name)(a, axis=0, **kwargs)
        return getattr(np, fn_name)(a, axis=0, **kwargs)

    return fn


# The reducers that are one numpy reduction over axis 0: (numpy's name, its options, fewest values).
REDUCTIONS: dict[str, tuple[str, dict[str, Any], int]] = {
    "mean": ("mean", {}, 1),
    "min": ("min", {}, 1),
    "max": ("max", {}, 1),
    "sum": ("sum", {}, 1),
    "product": ("prod", {}, 1),
    "sd": ("std", {"ddof": 1}, 2),  # the sample standard deviation and variance (n - 1)
    "variance": ("var", {"ddof": 1}, 2),
}
for _name, (_numpy, _options, _fewest) in REDUCTIONS.items():
    PROCESSES[_name] = Process(
        lambda data, ignore_nodata=True, _f=_masked(_numpy, **_options), _n=_fewest: _reduce(data, ignore_nodata, _f, _n)
    )


@process("median")
def median(data: Any, ignore_nodata: bool = True) -> Any:
    def fn(a: Any) -> Any:
        if isinstance(a, np.ma.MaskedArray):
            return np.nanmedian(np.ma.filled(a, np.nan), axis=0)
        return np.median(a, axis=0)

    return _reduce(data, ignore_nodata, fn)


@process("count")
def count(data: Any, condition: Any = None, context: Any = None) -> Any:
    """Valid elements by default (not null, and finite), every element with ``condition: true``,
    else those for which the callback ``condition`` is true."""
    values, null = as_float_array(data)
    if condition is True:
        keep = np.ones(values.shape, bool)
    elif condition is None:
        items = _items(data) if not is_array(data) else None
        if items is not None:  # a list: strings, booleans and numbers are valid unless NaN or infinite
            return sum(1 for v in items if v is not None and not (isinstance(v, float) and not math.isfinite(v)))
        keep = np.isfinite(values) & ~null
    else:
        keep = _as_array(condition(x=values, context=context)) == 1
    total = np.asarray(keep).sum(axis=0)
    return int(total) if not is_array(data) else total.astype(np.float64)


def _items(data: Any) -> list[Any]:
    return list(data.values if isinstance(data, Labeled) else data)


@process("first")
def first(data: Any, ignore_nodata: bool = True) -> Any:
    return _first(data, ignore_nodata, reverse=False)


@process("last")
def last(data: Any, ignore_nodata: bool = True) -> Any:
    return _first(data, ignore_nodata, reverse=True)


def _first(data: Any, ignore_nodata: bool, reverse: bool) -> Any:
    if not is_array(data):
        items = _items(data)[::-1] if reverse else _items(data)
        if not items:
            return None
        if not ignore_nodata:
            return items[0]
        return next((v for v in items if v is not None), None)
    values, null = as_float_array(data)
    if reverse:
        values, null = values[::-1], null[::-1]
    if not ignore_nodata:
        return values[0]
    index = np.argmax(~null, axis=0)
    out = np.take_along_axis(values, index[None], axis=0)[0]
    return np.where((~null).any(axis=0), out, np.nan)


def _quantile_sorted(values: np.ndarray, p: float) -> float:
    """Type 7 (numpy's linear): the value at (n - 1) p, interpolated, with no interpolation where
    both neighbours are equal (so infinities give infinities, not NaN)."""
    h = (values.size - 1) * p
    lo, hi = math.floor(h), math.ceil(h)
    a, b = values[lo], values[hi]
    if lo == hi or a == b or math.isinf(a):
        return float(a)
    if math.isinf(b):
        return float(b)
    return float(a + (h - lo) * (b - a))


@process("quantiles")
def quantiles(data: Any, probabilities: Any = None, q: Any = None, ignore_nodata: bool = True) -> Any:
    if isinstance(probabilities, int) and not isinstance(probabilities, bool):
        probabilities, q = None, probabilities  # the definition's older form: a count of intervals
    if probabilities is not None and q is not None:
        raise process_error(
            "QuantilesParameterConflict",
            "The process `quantiles` only allows that either the `probabilities` or the `q` parameter is set.",
        )
    if probabilities is None and q is None:
        raise process_error(
            "QuantilesParameterMissing", "The process `quantiles` requires either the `probabilities` or `q` parameter to be set."
        )
    probs = list(probabilities) if probabilities is not None else [i / q for i in range(1, int(q))]
    values, null = as_float_array(data)
    if not is_array(data):
        if null.any() and not ignore_nodata:
            return [None] * len(probs)
        values = np.sort(values[~null])
        if values.size == 0:
            return [None] * len(probs)
        if np.isnan(values).any():  # NaN is a number without an order: every quantile is NaN
            return [math.nan] * len(probs)
        return [_quantile_sorted(values, p) for p in probs]
    with np.errstate(all="ignore"):
        out = np.nanquantile(values, probs, axis=0) if ignore_nodata else np.quantile(values, probs, axis=0)
    return Labeled(np.asarray(out, np.float64), None)


@process("extrema")
def extrema(data: Any, ignore_nodata: bool = True) -> Any:
    return [PROCESSES["min"].fn(data, ignore_nodata), PROCESSES["max"].fn(data, ignore_nodata)]


def _quantified(data: Any, ignore_nodata: bool, dominant: bool) -> Any:
    """``all`` (dominant false) and ``any`` (dominant true): one element of the dominant value
    decides; else null where nodata counts (or there is nothing else), else the other value."""
    win = 1.0 if dominant else 0.0
    if not is_array(data):
        items = _items(data)
        present = [v for v in items if v is not None]
        if not items or (not present and ignore_nodata):
            return None
        if dominant in present:
            return dominant
        if len(present) < len(items) and not ignore_nodata:
            return None
        return not dominant
    values, null = as_float_array(data)
    decided = (((values != 0) if dominant else (values == 0)) & ~null).any(axis=0)
    out = np.where(decided, win, 1.0 - win)
    if ignore_nodata:
        return np.where(null.all(axis=0), np.nan, out)
    return np.where(~decided & null.any(axis=0), np.nan, out)


@process("all")
def all_(data: Any, ignore_nodata: bool = True) -> Any:
    return _quantified(data, ignore_nodata, dominant=False)


@process("any")
def any_(data: Any, ignore_nodata: bool = True) -> Any:
    return _quantified(data, ignore_nodata, dominant=True)


# --- arrays ---------------------------------------------------------------------------------------


@process("array_element")
def array_element(data: Any, index: Any = None, label: Any = None, return_nodata: bool = False) -> Any:
    if index is not None and label is not None:
        raise process_error(
            "ArrayElementParameterConflict",
            "The process `array_element` only allows that either the `index` or the `labels` parameter is set.",
        )
    if index is None and label is None:
        raise process_error(
            "ArrayElementParameterMissing",
            "The process `array_element` requires either the `index` or `labels` parameter to be set.",
        )
    if label is not None:
        labels = data.labels if isinstance(data, Labeled) else None
        if labels is None:
            raise process_error(
                "ArrayNotLabeled", "The array is not a labeled array, but the `label` parameter is set. Use the `index` instead."
            )
        if label not in labels:
            if return_nodata:
                return None
            raise process_error(
                "ArrayElementNotAvailable", f"The array has no element with the specified index or label: {label}."
            )
        index = labels.index(label)
    values = data.values if isinstance(data, Labeled) else data
    if not 0 <= index < len(values):
        if return_nodata:
            return None if not is_array(data) else np.full(np.asarray(values).shape[1:], np.nan)
        raise process_error("ArrayElementNotAvailable", f"The array has no element with the specified index or label: {index}.")
    element = values[index]
    return element


@process("array_create")
def array_create(data: Any = None, repeat: int = 1) -> Any:
    return list(data or []) * int(repeat)


@process("array_concat")
def array_concat(array1: Any, array2: Any) -> Any:
    if isinstance(array1, Labeled) and isinstance(array2, Labeled) and array1.labels and array2.labels:
        if set(array1.labels) & set(array2.labels):
            raise process_error(
                "LabelExists", "At least one label exists in both arrays and the conflict must be resolved before."
            )
        return Labeled(_items(array1) + _items(array2), array1.labels + array2.labels)
    return _items(array1) + _items(array2)


@process("array_contains")
def array_contains(data: Any, value: Any) -> Any:
    if value is None:
        return False
    return any(
        (v == value and type(v) is type(value)) or (_numeric(v) and _numeric(value) and v == value)
        for v in _items(data)
        if v is not None
    )


@process("array_find")
def array_find(data: Any, value: Any, reverse: bool = False) -> Any:
    if value is None:
        return None
    items = _items(data)
    order = range(len(items) - 1, -1, -1) if reverse else range(len(items))
    if isinstance(value, (list, dict)):
        return None  # only numbers, booleans and strings are found (the definition)
    for i in order:
        v = items[i]
        if isinstance(v, (list, dict)) or v is None:
            continue
        if v == value and isinstance(v, bool) == isinstance(value, bool) and isinstance(v, str) == isinstance(value, str):
            return i
    return None


# --- text -----------------------------------------------------------------------------------------


@process("text_begins")
def text_begins(data: Any, pattern: str, case_sensitive: bool = True) -> Any:
    if data is None:
        return None
    return data.startswith(pattern) if case_sensitive else data.lower().startswith(pattern.lower())


@process("text_ends")
def text_ends(data: Any, pattern: str, case_sensitive: bool = True) -> Any:
    if data is None:
        return None
    return data.endswith(pattern) if case_sensitive else data.lower().endswith(pattern.lower())


@process("text_contains")
def text_contains(data: Any, pattern: str, case_sensitive: bool = True) -> Any:
    if data is None:
        return None
    return pattern in data if case_sensitive else pattern.lower() in data.lower()


@process("text_concat")
def text_concat(data: Any, separator: Any = "") -> str:
    def text(v: Any) -> str:
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v.is_integer():
            return str(int(v))
        return str(v)

    return text(separator).join(text(v) for v in _items(data))
