"""openEO (SPEC §8): one process graph, evaluated as one run.

authentication -> <each top-level node of the graph, in order, after the nodes it takes results
from> -> publish (the files of ``save_result``, or the result's value as JSON)
"""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFuture

from eotasks.models import OpenEOParams
from eotasks.openeo.formats import json_bytes
from eotasks.openeo.graph import Evaluator, references
from eotasks.openeo.load import CubeEnv
from eotasks.settings import get_settings
from flows._common import task_flow
from tasks.artifacts import file_artifacts
from tasks.authentication import authenticate
from tasks.openeo_nodes import node
from tasks.publish import publish


@task_flow("openeo")
def openeo(task_id: str, api_key_id: int, params: OpenEOParams) -> Any:
    authenticate(api_key_id)
    env = CubeEnv(max_pixels=get_settings().max_read_pixels)
    value = evaluate_as_steps(params.process_graph, env)
    outputs: dict[str, Any] = dict(env.files) or {"openEO.json": json_bytes(value)}
    files = publish(task_id, outputs)
    file_artifacts(task_id, [f for f in files if f.endswith((".tif", ".png"))])
    return {"files": files}


def evaluate_as_steps(graph: dict[str, Any], env: CubeEnv) -> Any:
    """Each top-level node a step, submitted after the steps it takes results from (so the UI draws
    the graph's edges), its value passed on in memory."""
    futures: dict[str, PrefectFuture] = {}

    def step(node_id: str, spec: dict[str, Any], compute: Any) -> Any:
        upstream = [futures[d] for d in dict.fromkeys(references(spec.get("arguments", {})))]
        step_of_node: Any = node.with_options(task_run_name=f"{node_id}-{spec['process_id']}")
        future = step_of_node.submit(node_id, spec["process_id"], compute, wait_for=upstream)
        futures[node_id] = future
        return future.result()

    return Evaluator(env, step).evaluate(graph)
