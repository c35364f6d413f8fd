"""The raster core is plain numpy: no database, catalogue, HTTP or Prefect import in eotasks/raster."""

from __future__ import annotations

import ast
from pathlib import Path

RASTER = Path(__file__).resolve().parents[1] / "eotasks" / "raster"
FORBIDDEN = (
    "eotasks.db",
    "eotasks.catalog",
    "prefect",
    "fastapi",
    "httpx",
    "sqlmodel",
    "sqlalchemy",
    "gateway",
    "flows",
    "tasks",
)


def test_raster_modules_import_no_database_catalogue_http_or_prefect():
    offenders = []
    for path in sorted(RASTER.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            offenders += [f"{path.name}: {n}" for n in names if n.startswith(FORBIDDEN)]
    assert not offenders, offenders
