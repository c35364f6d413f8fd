"""Process graphs: validated before any run, then evaluated.

Validation (``validate``) checks what the definitions say without touching data: the structure
(nodes, one result node per graph, references to nodes and parameters that exist, no cycle), that
every process is one this back-end runs, required and unknown arguments, literal arguments against
their JSON schema, callbacks recursively with their own parameters, and the collections and bands
of ``load_collection``. Each error is openEO's code with the node's id.

Evaluation (``Evaluator``) computes the result node, each node once, its arguments first; a
callback argument (``process_graph``) becomes a ``Callback`` the process calls with whole arrays
(vectorised). ``Evaluator.step`` is how the flow wraps each top-level node into a Prefect step.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from eotasks.openeo import specs
from eotasks.openeo.errors import OpenEOError
from eotasks.openeo.processes import PROCESSES

MAX_NODES = 500  # nodes of one graph, callbacks included: a bound on what validation walks


# --- structure ------------------------------------------------------------------------------------


def result_node(graph: Mapping[str, Any], where: str = "") -> str:
    ends = [node_id for node_id, node in graph.items() if isinstance(node, dict) and node.get("result") is True]
    if len(ends) != 1:
        raise OpenEOError(
            "ProcessGraphInvalid", f"Invalid process graph specified{where}: exactly one node must have `result: true`"
        )
    return ends[0]


def references(value: Any) -> Iterator[str]:
    """The node ids ``value`` (an argument) takes results from, not looking inside callbacks."""
    if isinstance(value, dict):
        if "from_node" in value and len(value) == 1:
            yield value["from_node"]
        elif "process_graph" not in value:
            for v in value.values():
                yield from references(v)
    elif isinstance(value, list):
        for v in value:
            yield from references(v)


def topological(graph: Mapping[str, Any]) -> list[str]:
    """The nodes in an order where each comes after the nodes it takes results from."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node_id: str) -> None:
        if state.get(node_id) == 2:
            return
        if state.get(node_id) == 1:
            raise OpenEOError("ProcessGraphInvalid", f"Invalid process graph specified: node {node_id!r} depends on itself")
        state[node_id] = 1
        for dep in references(graph[node_id].get("arguments", {})):
            visit(dep)
        state[node_id] = 2
        order.append(node_id)

    for node_id in graph:
        visit(node_id)
    return order


def _has_reference(value: Any) -> bool:
    if isinstance(value, dict):
        if ("from_node" in value or "from_parameter" in value) and len(value) == 1:
            return True
        if "process_graph" in value:
            return True
        return any(_has_reference(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_reference(v) for v in value)
    return False


@functools.cache
def _validator(process_id: str, name: str) -> Any:
    import jsonschema

    schema = specs.parameters_of(process_id)[name].get("schema", {})
    if isinstance(schema, list):
        schema = {"anyOf": schema}
    return jsonschema.Draft7Validator(schema)


# --- validation -----------------------------------------------------------------------------------


@dataclass
class Catalogue:
    """What validation checks ``load_collection`` against: collection id -> its band names."""

    bands: Mapping[str, list[str]] = field(default_factory=dict)


def validate(graph: Any, catalogue: Catalogue, parameters: frozenset[str] = frozenset()) -> None:
    """Raise the first problem of ``graph`` (a ``process_graph`` object) as an OpenEOError."""
    counter = [0]
    _validate(graph, catalogue, parameters, counter, "")


def _validate(graph: Any, catalogue: Catalogue, parameters: frozenset[str], counter: list[int], where: str) -> None:
    if not isinstance(graph, dict) or not graph:
        raise OpenEOError("ProcessGraphMissing", "Invalid process specified. It doesn't contain a process graph.")
    for node_id, node in graph.items():
        counter[0] += 1
        if counter[0] > MAX_NODES:
            raise OpenEOError("ProcessGraphComplexity", f"The process graph has more than {MAX_NODES} nodes")
        if not isinstance(node, dict) or not isinstance(node.get("process_id"), str):
            raise OpenEOError(
                "ProcessGraphInvalid", f"Invalid process graph specified: node {node_id!r} has no `process_id`", node_id=node_id
            )
    result_node(graph, where)
    topological(graph)  # no cycles
    for node_id, node in graph.items():
        _validate_node(graph, node_id, node, catalogue, parameters, counter)


def _validate_node(
    graph: Mapping[str, Any], node_id: str, node: dict, catalogue: Catalogue, parameters: frozenset[str], counter: list[int]
) -> None:
    process_id = node["process_id"]
    namespace = node.get("namespace")
    if process_id not in PROCESSES or namespace not in (None, "backend"):
        raise OpenEOError(
            "ProcessUnsupported",
            f"Process with identifier '{process_id}' is not available in namespace '{namespace or 'backend'}'.",
            node_id=node_id,
        )
    arguments = node.get("arguments", {})
    if not isinstance(arguments, dict):
        raise OpenEOError(
            "ProcessGraphInvalid", "Invalid process graph specified: `arguments` must be an object", node_id=node_id
        )
    declared = specs.parameters_of(process_id)
    for name in arguments:
        if name not in declared:
            raise OpenEOError(
                "ProcessParameterUnsupported", f"Process '{process_id}' does not support parameter '{name}'.", node_id=node_id
            )
    for name, spec in declared.items():
        if name not in arguments and not spec.get("optional", False):
            raise OpenEOError(
                "ProcessParameterRequired", f"Process '{process_id}' parameter '{name}' is required.", node_id=node_id
            )
    for name, value in arguments.items():
        _validate_argument(graph, node_id, process_id, name, value, catalogue, parameters, counter)
    if process_id == "load_collection":
        _validate_load(node_id, arguments, catalogue)


def _validate_argument(
    graph: Mapping[str, Any],
    node_id: str,
    process_id: str,
    name: str,
    value: Any,
    catalogue: Catalogue,
    parameters: frozenset[str],
    counter: list[int],
) -> None:
    def invalid(reason: str) -> OpenEOError:
        return OpenEOError(
            "ProcessParameterInvalid",
            f"The value passed for parameter '{name}' in process '{process_id}' is invalid: {reason}",
            node_id=node_id,
        )

    def walk(v: Any) -> None:
        if isinstance(v, dict):
            if "from_node" in v and len(v) == 1:
                if v["from_node"] not in graph:
                    raise invalid(f"there is no node {v['from_node']!r}")
                return
            if "from_parameter" in v and len(v) == 1:
                if v["from_parameter"] not in parameters:
                    raise invalid(f"there is no parameter {v['from_parameter']!r} here")
                return
            if "process_graph" in v:
                own = specs.callback_parameters(process_id, name)
                if own is None:
                    raise invalid("it takes no callback")
                _validate(v["process_graph"], catalogue, parameters | frozenset(own), counter, f" (callback of {name})")
                return
            for item in v.values():
                walk(item)
        elif isinstance(v, list):
            for item in v:
                walk(item)

    walk(value)
    if value is not None and not _has_reference(value):  # null is no data, which any number may be
        errors = sorted(_validator(process_id, name).iter_errors(value), key=lambda e: e.path)
        if errors:
            raise invalid(errors[0].message[:300])


def _validate_load(node_id: str, arguments: dict, catalogue: Catalogue) -> None:
    collection = arguments.get("id")
    if isinstance(collection, str) and collection not in catalogue.bands:
        raise OpenEOError("CollectionNotFound", f"Collection '{collection}' does not exist.", status=404, node_id=node_id)
    bands = arguments.get("bands")
    if isinstance(collection, str) and isinstance(bands, list):
        unknown = [b for b in bands if b not in catalogue.bands[collection]]
        if unknown:
            raise OpenEOError(
                "ProcessParameterInvalid",
                f"The value passed for parameter 'bands' in process 'load_collection' is invalid: "
                f"{', '.join(map(str, unknown))} not in collection {collection} "
                f"(its bands: {', '.join(catalogue.bands[collection])})",
                node_id=node_id,
            )


# --- evaluation -----------------------------------------------------------------------------------


class Callback:
    """A callback argument: called by its process with its parameters (whole arrays)."""

    def __init__(self, evaluator: Evaluator, graph: dict, outer: Mapping[str, Any]) -> None:
        self.evaluator, self.graph, self.outer = evaluator, graph, outer

    def __call__(self, **parameters: Any) -> Any:
        return self.evaluator.evaluate(self.graph, {**self.outer, **parameters}, top=False)

    @property
    def single_process(self) -> str | None:
        """The process id of a callback that is one process applied to its ``data`` (``mean`` ...)."""
        if len(self.graph) != 1:
            return None
        [node] = self.graph.values()
        args = node.get("arguments", {})
        if args.get("data") == {"from_parameter": "data"} and set(args) <= {"data", "ignore_nodata"}:
            return node["process_id"]
        return None


Step = Callable[[str, dict, Callable[[], Any]], Any]


class Evaluator:
    """Evaluates process graphs with ``env`` (the catalogue, the files being written). Top-level
    nodes go through ``step(node_id, node, compute)``: by default ``compute()``; the flow makes each
    a Prefect task."""

    def __init__(self, env: Any, step: Step | None = None) -> None:
        self.env = env
        self.step: Step = step or (lambda node_id, node, compute: compute())

    def evaluate(self, graph: dict, parameters: Mapping[str, Any] | None = None, top: bool = True) -> Any:
        parameters = dict(parameters or {})
        results: dict[str, Any] = {}
        for node_id in topological(graph):
            node = graph[node_id]

            def compute(node_id: str = node_id, node: dict = node) -> Any:
                args = {k: self._resolve(v, results, parameters) for k, v in node.get("arguments", {}).items()}
                return self.call(node_id, node["process_id"], args)

            results[node_id] = self.step(node_id, node, compute) if top else compute()
        return results[result_node(graph)]

    def call(self, node_id: str, process_id: str, args: dict[str, Any]) -> Any:
        process = PROCESSES[process_id]
        if process.needs_env:
            args["env"] = self.env
        try:
            return process.fn(**args)
        except OpenEOError as exc:
            raise exc.at_node(node_id) from None

    def _resolve(self, value: Any, results: dict[str, Any], parameters: Mapping[str, Any]) -> Any:
        if isinstance(value, dict):
            if "from_node" in value and len(value) == 1:
                return results[value["from_node"]]
            if "from_parameter" in value and len(value) == 1:
                return parameters.get(value["from_parameter"])
            if "process_graph" in value:
                return Callback(self, value["process_graph"], parameters)
            return {k: self._resolve(v, results, parameters) for k, v in value.items()}
        if isinstance(value, list):
            return [self._resolve(v, results, parameters) for v in value]
        return value


# --- what a run gets ------------------------------------------------------------------------------


def rebuilt(graph: dict[str, Any]) -> dict[str, Any]:
    """A validated graph as new plain data: per node only what evaluation reads (``process_id``,
    ``arguments``, ``result``), every value copied; a key Prefect would read as a template or a
    variable (``__prefect...``) anywhere is a 400."""

    def copy(value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if not isinstance(k, str) or k.startswith("__prefect"):
                    raise OpenEOError(
                        "ProcessGraphInvalid", f"Invalid process graph specified: the key {str(k)[:40]!r} is not allowed"
                    )
                out[k] = copy(v)
            return out
        if isinstance(value, list):
            return [copy(v) for v in value]
        if value is None or isinstance(value, (str, bool, int, float)):
            return value
        raise OpenEOError("ProcessGraphInvalid", "Invalid process graph specified: only JSON values are allowed")

    out = {}
    for node_id, node in graph.items():
        one: dict[str, Any] = {"process_id": node["process_id"], "arguments": copy(node.get("arguments", {}))}
        if node.get("result") is True:
            one["result"] = True
        out[str(node_id)] = one
    return out
