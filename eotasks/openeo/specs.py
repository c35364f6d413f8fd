"""The official openEO process definitions, as the ``openeo-processes-dask`` package ships them
(``openeo_processes_dask/specs/openeo-processes/*.json``): served unchanged for the processes this
back-end runs, and read by the validator for parameters, callbacks and defaults."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any


@functools.cache
def all_definitions() -> dict[str, dict[str, Any]]:
    """Every official definition the package ships, by process id."""
    folder = resources.files("openeo_processes_dask.specs").joinpath("openeo-processes")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".json"):
            spec = json.loads(entry.read_text(encoding="utf-8"))
            out[spec["id"]] = spec
    return out


def definition(process_id: str) -> dict[str, Any]:
    return all_definitions()[process_id]


def parameters_of(process_id: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in definition(process_id).get("parameters", [])}


def _schemas(schema: Any) -> list[dict[str, Any]]:
    return [s for s in (schema if isinstance(schema, list) else [schema]) if isinstance(s, dict)]


def callback_parameters(process_id: str, name: str) -> list[str] | None:
    """The names of the parameters a callback argument (``subtype: process-graph``) receives, or
    None when the argument takes no callback."""
    spec = parameters_of(process_id).get(name)
    if spec is None:
        return None
    for schema in _schemas(spec.get("schema")):
        for inner in (schema, schema.get("additionalProperties")):  # load_collection's property filters
            if isinstance(inner, dict) and inner.get("subtype") == "process-graph":
                return [p["name"] for p in inner.get("parameters", [])]
    return None


def default_of(process_id: str, name: str) -> Any:
    return parameters_of(process_id)[name].get("default")
