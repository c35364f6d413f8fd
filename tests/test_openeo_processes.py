"""openEO processes against their official definitions: every example in each served definition,
and the input/output cases of ``processes/tests`` (JSON5) from the openEO specifications beside the
clone, run through the same validation and evaluation as a process graph of one node."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eotasks.openeo import specs
from eotasks.openeo.errors import OpenEOError
from eotasks.openeo.graph import Catalogue, Evaluator, validate
from eotasks.openeo.processes import PROCESSES
from eotasks.openeo.values import Labeled, to_python

TESTS = Path(__file__).resolve().parents[2] / "shared" / "openeo" / "processes" / "tests"


def wrap_callbacks(process_id: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Examples write a callback as its bare graph; a process graph wraps it in ``process_graph``."""
    out = {}
    for name, value in arguments.items():
        if specs.callback_parameters(process_id, name) is not None and isinstance(value, dict) and "process_graph" not in value:
            value = {"process_graph": value}
        out[name] = value
    return out


def decode(value: Any) -> Any:
    """The test files' encodings: ``{"type": "nodata"}`` is null, a labeled array a ``Labeled``."""
    if isinstance(value, dict):
        if value.get("type") == "nodata":
            return None
        if value.get("type") == "labeled-array":
            return Labeled([decode(d["value"]) for d in value["data"]], tuple(d["key"] for d in value["data"]))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def unlabeled(value: Any) -> Any:
    if isinstance(value, Labeled):
        return list(value.values)
    if isinstance(value, dict):
        return {k: unlabeled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unlabeled(v) for v in value]
    return value


def run(process_id: str, arguments: dict[str, Any]) -> Any:
    arguments = decode(wrap_callbacks(process_id, arguments))
    # A labeled array cannot be written in a graph: validated as the plain array it is in JSON.
    validate({"node": {"process_id": process_id, "arguments": unlabeled(arguments), "result": True}}, Catalogue())
    graph = {"node": {"process_id": process_id, "arguments": arguments, "result": True}}
    return to_python(Evaluator(env=None).evaluate(graph))


def same(got: Any, want: Any, delta: float | None) -> bool:
    if isinstance(want, list):
        return isinstance(got, list) and len(got) == len(want) and all(same(g, w, delta) for g, w in zip(got, want, strict=True))
    if isinstance(want, bool) or want is None or isinstance(want, str):
        return got is want or (got == want and type(got) is type(want))
    if isinstance(want, (int, float)):
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            return False
        if math.isnan(want):
            return math.isnan(got)
        if math.isinf(want):
            return got == want
        return abs(got - want) <= (delta if delta is not None else 1e-10)
    return got == want


def cases_of_definitions() -> list[Any]:
    out = []
    for process_id in sorted(PROCESSES):
        for i, example in enumerate(specs.definition(process_id).get("examples", [])):
            if "arguments" in example and "returns" in example:
                out.append(pytest.param(process_id, example, id=f"{process_id}-{i}"))
    return out


# Where an official example contradicts its own definition, the example is read as the definition says.
EXAMPLE_ERRATA = {
    # count's example calls the condition's parameter `element`; the definition calls it `x`.
    ("count", "element"): "x",
}


@pytest.mark.parametrize(("process_id", "example"), cases_of_definitions())
def test_the_examples_of_each_served_definition(process_id, example):
    arguments = example["arguments"]
    for (pid, old), new in EXAMPLE_ERRATA.items():
        if pid == process_id:
            arguments = decode_rename(arguments, old, new)
    got = run(process_id, arguments)
    assert same(got, example["returns"], None), (got, example["returns"])


def decode_rename(value: Any, old: str, new: str) -> Any:
    if isinstance(value, dict):
        if value == {"from_parameter": old}:
            return {"from_parameter": new}
        return {k: decode_rename(v, old, new) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_rename(v, old, new) for v in value]
    return value


def uses_datacube(value: Any) -> bool:
    if isinstance(value, dict):
        return value.get("type") == "datacube" or "$ref" in value or any(uses_datacube(v) for v in value.values())
    if isinstance(value, list):
        return any(uses_datacube(v) for v in value)
    return False


NO_TESTS = [pytest.param(None, None, None, marks=pytest.mark.skip(reason="no openEO specifications beside the clone"))]


def official_cases() -> Iterator[tuple[str, int, dict[str, Any]]]:
    """(process id, index, case) of every case in processes/tests for the processes that run here."""
    import json5

    for process_id in sorted(PROCESSES):
        path = TESTS / f"{process_id}.json5"
        if path.is_file():
            for i, case in enumerate(json5.loads(path.read_text())["tests"]):
                yield process_id, i, case


def cases_of_test_files() -> list[Any]:
    if not TESTS.is_dir():
        return NO_TESTS
    return [
        pytest.param(process_id, case, i, id=f"{process_id}-{i}")
        for process_id, i, case in official_cases()
        if not (uses_datacube(case) or case.get("experimental"))  # data cubes: tests/test_openeo_cube.py
    ]


# Cases of processes/tests that contradict their process's definition, and how.
CASE_ERRATA = {
    ("array_find", 6): "value 3 is the labeled array's element 0, not 1",
    ("array_element", 3): "asks for label 'BO2' (letter O) of an array labeled B01, B02, B03",
    ("lte", 15): "Infinity <= Infinity is true by IEEE 754, which the definition follows (eq says they are equal)",
    ("product", 10): "1 x -Infinity x 3 x Infinity is -Infinity by IEEE 754, not NaN",
}


@pytest.mark.parametrize(("process_id", "case", "index"), cases_of_test_files())
def test_the_official_test_cases(process_id, case, index):
    if (process_id, index) in CASE_ERRATA:
        pytest.skip(f"erratum: {CASE_ERRATA[process_id, index]}")
    throws = case.get("throws")
    arguments = case["arguments"]
    if process_id == "count":  # the test files, like count's example, name the condition's parameter `element`
        arguments = decode_rename(arguments, "element", "x")
    try:
        got = run(process_id, arguments)
    except OpenEOError as exc:
        # Input the schema refuses is rejected before any evaluation (processes/tests/README.md).
        assert throws is True or throws == exc.code or (throws and exc.code == "ProcessParameterInvalid"), (exc.code, exc.message)
        return
    if "returns" not in case:
        pytest.fail(f"should have raised {throws}, gave {got!r}")
    assert same(got, unlabeled(decode(case["returns"])), case.get("delta")), (got, case["returns"])
