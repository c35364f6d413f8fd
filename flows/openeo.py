"""openEO (SPEC §8): one process graph, evaluated as one run.

authentication -> <each top-level node of the graph, in order, after the nodes it takes results
from> -> publish (the files of ``save_result``, or the result's value as JSON)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import get_run_logger
from prefect.futures import PrefectFuture, as_completed

from eotasks.models import OpenEOParams
from eotasks.openeo.chunks import Chunking, Mosaic, chunking
from eotasks.openeo.formats import json_bytes
from eotasks.openeo.graph import Evaluator, references
from eotasks.openeo.load import CubeEnv
from eotasks.settings import get_settings
from flows._common import task_flow, time_series_runner
from tasks.artifacts import file_artifacts
from tasks.authentication import authenticate
from tasks.openeo_nodes import chunk, node
from tasks.publish import publish


@task_flow("openeo", task_runner=time_series_runner())
def openeo(task_id: str, api_key_id: int, params: OpenEOParams) -> Any:
    authenticate(api_key_id)
    settings = get_settings()
    env = CubeEnv(max_pixels=settings.openeo_batch_max_values if params.job_id else settings.openeo_sync_max_values)
    plan = chunking(params.process_graph, env, settings.openeo_chunk_values) if params.job_id else None
    if plan is not None:  # a batch job over a large extent: the graph on each window, one file
        return {"files": publish(task_id, {"openEO.tif": in_chunks(params.process_graph, plan)})}
    value = evaluate_as_steps(params.process_graph, env)
    outputs: dict[str, Any] = dict(env.files) or {"openEO.json": json_bytes(value)}
    files = publish(task_id, outputs)
    file_artifacts(task_id, [f for f in files if f.endswith((".tif", ".png"))])
    return {"files": files}


def in_chunks(graph: dict[str, Any], plan: Chunking) -> Path:
    """Each window a step (on the flow's task runner), the mosaic written as they finish."""
    from tasks.encode import scratch_dir

    count = len(plan.windows)
    limit = get_settings().openeo_batch_max_values
    futures = [chunk.submit(graph, window, i + 1, count, limit) for i, window in enumerate(plan.windows)]
    writer = Mosaic(plan.grid, scratch_dir())
    for future in as_completed(futures):
        writer.add(future.result())
        futures.remove(future)  # the window's answer is in the file: let it go
    get_run_logger().info("%d chunks of a %d x %d grid evaluated", count, plan.grid.width, plan.grid.height)
    return writer.finish()


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
