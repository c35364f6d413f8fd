"""Prefect blocks that configure eotasks: where results go, how scene assets are reached."""
