"""Step ``<node id>``: one top-level node of an openEO process graph, so the Prefect UI shows the
user's graph as the run's DAG (each node after the nodes it takes results from)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import task

from tasks._policy import compute_step


@task(name="openeo-node", **compute_step(retries=0))
def node(node_id: str, process_id: str, compute: Callable[[], Any]) -> Any:
    """The node's value: its arguments (the results of the nodes before it) given to its process."""
    return compute()
