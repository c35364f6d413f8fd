"""Prefect steps: each wraps plain eotasks functions with retries, timeouts and logging.

A step's task-run name is its stage (authentication, scene_lookup, crop, index, render, stats,
publish): the gateway reports a pending or failed task's stage from the run's task runs.
"""
