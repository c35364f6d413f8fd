"""Step ``<node id>``: one top-level node of an openEO process graph, so the Prefect UI shows the
user's graph as the run's DAG (each node after the nodes it takes results from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task

from eotasks.raster.grid import Grid
from eotasks.raster.image import Raster
from tasks._policy import compute_step


@task(name="openeo-node", **compute_step(retries=0))
def node(node_id: str, process_id: str, compute: Callable[[], Any]) -> Any:
    """The node's value: its arguments (the results of the nodes before it) given to its process."""
    return compute()


@task(name="chunk", task_run_name="chunk-{index}of{count}", **compute_step(retries=0))
def chunk(graph: dict[str, Any], window: Grid, index: int, count: int, max_values: int) -> Raster:
    """The whole graph evaluated on one window of its grid (a batch job in chunks): what its
    save_result was given there."""
    from eotasks.openeo.graph import Evaluator
    from eotasks.openeo.load import CubeEnv

    env = CubeEnv(max_pixels=max_values, window=window, keep_result=True)
    Evaluator(env).evaluate(graph)
    [(data, _, _)] = env.kept
    if not isinstance(data, Raster):
        raise TypeError("a chunk's save_result got no raster")
    return data
