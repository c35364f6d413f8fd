"""Aliases (NDVI, EVI, ...) and the Awesome Spectral Indices catalogue, as data for our grammar.

Our own table comes first (the reference API's definitions, written with generic band names);
then every index of the spyndex catalogue whose bands the sensor has. spyndex formulas are parsed by
our grammar, never executed: the JSON ships with the package and is read as text.
"""

from __future__ import annotations

import functools
import importlib.util
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eotasks.raster import expression as ex
from eotasks.sensors import Sensor

# The reference API's aliases, in generic band names (resolved per sensor).
ALIASES: dict[str, str] = {
    "NDVI": "(NIR - RED) / (NIR + RED)",
    "NDWI": "(GREEN - NIR) / (GREEN + NIR)",
    "NDSI": "(GREEN - SWIR1) / (GREEN + SWIR1)",
    "EVI": "2.5 * (NIR - RED) / (NIR + 6 * RED - 7.5 * BLUE + 1)",
    "MSAVI": "(2 * NIR + 1 - sqrt((2 * NIR + 1) ** 2 - 8 * (NIR - RED))) / 2",
    "SIPI": "(NIR - COASTAL) / (NIR - RED)",
    "NDMI": "(NIR - SWIR1) / (NIR + SWIR1)",
    "NDRE": "(NIR - RE1) / (NIR + RE1)",
    "RECI": "NIR / RE1 - 1",
    "SAVI": "1.5 * (NIR - RED) / (NIR + RED + 0.5)",
    "ARVI": "(NIR - (2 * RED - BLUE)) / (NIR + (2 * RED - BLUE))",
    "GCI": "NIR / GREEN - 1",
    "NBR": "(NIR - SWIR2) / (NIR + SWIR2)",
    "MSI": "SWIR1 / NIR",
    "CCCI": "((NIR - RE1) / (NIR + RE1)) / ((NIR - RED) / (NIR + RED))",
}


@dataclass(frozen=True)
class SpyndexIndex:
    name: str
    formula: str
    platforms: tuple[str, ...]
    long_name: str


def _spyndex_data(name: str) -> Any:
    """One of spyndex's data files, read without importing spyndex (whose package imports pandas,
    xarray and requests: a second of every process's start, for two JSON files)."""
    spec = importlib.util.find_spec("spyndex")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("spyndex is not installed")
    return json.loads((Path(next(iter(spec.submodule_search_locations))) / "data" / name).read_text())


@functools.lru_cache(maxsize=1)
def spyndex_catalogue() -> dict[str, SpyndexIndex]:
    raw = _spyndex_data("spectral-indices-dict.json")
    out: dict[str, SpyndexIndex] = {}
    for name, item in raw["SpectralIndices"].items():
        out[name] = SpyndexIndex(name, item["formula"], tuple(item.get("platforms", ())), item.get("long_name", ""))
    return out


@functools.lru_cache(maxsize=1)
def spyndex_constants() -> dict[str, float]:
    raw = _spyndex_data("constants.json")
    return {k: float(v["default"]) for k, v in raw.items() if v.get("default") is not None}


def _find_spyndex(name: str) -> SpyndexIndex | None:
    cat = spyndex_catalogue()
    if name in cat:
        return cat[name]
    matches = [v for k, v in cat.items() if k.upper() == name.upper()]
    return matches[0] if len(matches) == 1 else None


@dataclass(frozen=True)
class Program:
    """One output band: its source text and its AST with every name resolved to a band."""

    source: str
    ast: ex.Node
    bands: tuple[str, ...]  # band names used, in first-use order


def _alias_ast(name: str, sensor: Sensor, token: ex.Name) -> ex.Node | None:
    upper = name.upper()
    if upper in ALIASES:

        def resolve_generic(n: ex.Name) -> ex.Node:
            band = sensor.resolve_band(n.name)
            if band is None:
                raise ex.ExpressionError(
                    f"{upper} needs the {n.name} band, which {sensor.name} does not have",
                    token=token.name,
                    position=token.position,
                )
            return ex.Name(band, token.position)

        return ex.substitute(ex.parse(ALIASES[upper])[0], resolve_generic)
    idx = _find_spyndex(name)
    if idx is None:
        return None
    consts = spyndex_constants()

    def resolve_spyndex(n: ex.Name) -> ex.Node:
        if n.name in sensor.spyndex_bands:
            return ex.Name(sensor.spyndex_bands[n.name], token.position)
        if n.name in consts:
            return ex.Num(consts[n.name])
        raise ex.ExpressionError(
            f"{idx.name} needs {n.name!r}, which {sensor.name} does not have",
            token=token.name,
            position=token.position,
        )

    return ex.substitute(ex.parse(idx.formula)[0], resolve_spyndex)


def compile_expressions(text: str, sensor: Sensor, max_chars: int = 2_000, max_expressions: int | None = None) -> list[Program]:
    """Parse ``bm_type`` and resolve every name for ``sensor``; raise ExpressionError naming the token."""
    asts = ex.parse(text, max_chars=max_chars)
    if max_expressions is not None and len(asts) > max_expressions:
        raise ex.ExpressionError(f"At most {max_expressions} expressions are allowed, got {len(asts)}")
    sources = ex.split_expressions(text)

    def resolve(n: ex.Name) -> ex.Node:
        band = sensor.resolve_band(n.name)
        if band is not None:
            return ex.Name(band, n.position)
        alias = _alias_ast(n.name, sensor, n)
        if alias is not None:
            return alias
        raise ex.ExpressionError(f"Unknown band or index {n.name!r} for {sensor.name}", token=n.name, position=n.position)

    programs = []
    for source, ast in zip(sources, asts, strict=False):
        require_a_band(source, ast)
        resolved = ex.substitute(ast, resolve)
        used = tuple(dict.fromkeys(n.name for n in ex.names(resolved)))
        programs.append(Program(source, resolved, used))
    # What is evaluated is the expanded tree: 499 x "EVI+" is ~9,000 terms, not 1,000.
    ex.check_size([p.ast for p in programs], expanded=True)
    return programs


def require_a_band(source: str, ast: ex.Node) -> None:
    """An expression must read something: ``"1"`` or ``"2 * 3"`` has no pixels to compute over."""
    if not ex.names(ast):
        raise ex.ExpressionError(f"Expression {source!r} uses no band: name at least one band, alias or index", token=source)


def available_indices(sensor: Sensor) -> list[str]:
    """Every alias name usable on ``sensor`` (for documentation and the /api/indices route)."""
    names = []
    dummy = ex.Name("x", 0)
    for name in list(ALIASES) + list(spyndex_catalogue()):
        try:
            if _alias_ast(name, sensor, dummy) is not None:
                names.append(name)
        except ex.ExpressionError:
            pass
    return sorted(dict.fromkeys(names))


def bands_of(programs: list[Program]) -> list[str]:
    """Every band the programs use, each once, in first-use order (what the crop step reads)."""
    return list(dict.fromkeys(b for p in programs for b in p.bands))
