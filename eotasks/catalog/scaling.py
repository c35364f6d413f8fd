"""How each product's stored numbers become physical values: scale, offset and unit per band.

From the product's own metadata where it has some (a STAC item's ``raster:bands``, Sentinel-2's
``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, Landsat's ``*_MTL.txt`` / ``*_MTL.json``), else the
documented defaults by product and date:

- Sentinel-2 L1C and L2A: reflectance = (DN + offset) / 10000. Processing baseline 04.00 (from 25
  January 2022, and reprocessed older scenes) added an offset of -1000 (``RADIO_ADD_OFFSET``,
  ``BOA_ADD_OFFSET``); before it there is none. By metadata when known, else by the baseline, else
  by the acquisition date.
- Landsat Collection 2 Level-1: TOA reflectance = 2e-5 x DN - 0.1 (``REFLECTANCE_MULT/ADD_BAND_n``);
  thermal bands are radiance (``RADIANCE_MULT/ADD_BAND_n``, with K1/K2 kept for brightness temperature).
- Landsat Collection 2 Level-2: surface reflectance = 2.75e-5 x DN - 0.2; ``ST_B10`` is surface
  temperature in kelvin = 0.00341802 x DN + 149.0.
- Landsat Collection 1 and pre-collection Level-1: TOA 2e-5 x DN - 0.1 (the usual MTL factors).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field

S2_BASELINE_04_FROM = dt.date(2022, 1, 25)
# MTD band_id order (0..12).
S2_BAND_IDS = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]


@dataclass(frozen=True)
class BandScaling:
    scale: float
    offset: float
    unit: str = "reflectance"  # reflectance, kelvin, radiance, DN (mask and class bands)
    extra: dict[str, float] = field(default_factory=dict)  # e.g. K1, K2 of a thermal band


def baseline_tuple(baseline: str | float | None) -> tuple[int, int] | None:
    if baseline is None:
        return None
    m = re.match(r"^\s*(\d+)(?:\.(\d+))?", str(baseline))
    return (int(m[1]), int(m[2] or 0)) if m else None


def s2_offset(date: dt.date, baseline: str | float | None = None) -> float:
    """The reflectance offset of a Sentinel-2 L1C or L2A band: -0.1 from baseline 04.00, else 0."""
    b = baseline_tuple(baseline)
    if b is not None:
        return -0.1 if b >= (4, 0) else 0.0
    return -0.1 if date >= S2_BASELINE_04_FROM else 0.0


def s2_from_mtd(text: str) -> tuple[str | None, dict[str, BandScaling]]:
    """(processing baseline, band -> scaling) from MTD_MSIL1C.xml or MTD_MSIL2A.xml."""
    root = ET.fromstring(text)

    def find(tag: str):
        return next((e for e in root.iter() if e.tag.split("}")[-1] == tag), None)

    baseline_el = find("PROCESSING_BASELINE")
    baseline = baseline_el.text.strip() if baseline_el is not None and baseline_el.text else None
    quant_el = find("BOA_QUANTIFICATION_VALUE")
    if quant_el is None:  # (an Element without children is falsy: compare with None)
        quant_el = find("QUANTIFICATION_VALUE")
    quant = float(quant_el.text) if quant_el is not None and quant_el.text else 10000.0
    offsets: dict[str, float] = {}
    for e in root.iter():
        if e.tag.split("}")[-1] in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and e.get("band_id") is not None and e.text:
            offsets[S2_BAND_IDS[int(e.get("band_id"))]] = float(e.text)
    version = baseline_tuple(baseline)
    implied = -1000.0 if version is not None and version >= (4, 0) else 0.0  # baseline 04.00 without the list
    out = {band: BandScaling(1.0 / quant, offsets.get(band, implied) / quant) for band in S2_BAND_IDS}
    return baseline, out


def parse_mtl(text: str) -> dict[str, str]:
    """Every KEY = value of a Landsat MTL (text or JSON form), flattened."""
    text = text.strip()
    if text.startswith("{"):
        flat: dict[str, str] = {}

        def walk(node):
            for k, v in node.items():
                if isinstance(v, dict):
                    walk(v)
                else:
                    flat[k] = str(v)
        walk(json.loads(text))
        return flat
    out = {}
    for line in text.splitlines():
        if "=" in line:
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip().strip('"')
    return out


def landsat_from_mtl(text: str) -> dict[str, BandScaling]:
    """Our band name -> scaling, from a Collection 1/2 Level-1 or Level-2 MTL."""
    mtl = parse_mtl(text)
    out: dict[str, BandScaling] = {}
    for key, value in mtl.items():
        m = re.fullmatch(r"REFLECTANCE_MULT_BAND_(\d+)", key)
        if m and f"REFLECTANCE_ADD_BAND_{m[1]}" in mtl:
            out[f"B{m[1]}"] = BandScaling(float(value), float(mtl[f"REFLECTANCE_ADD_BAND_{m[1]}"]))
    for key, value in mtl.items():
        m = re.fullmatch(r"TEMPERATURE_MULT_BAND_ST_B(\d+)", key)
        if m and f"TEMPERATURE_ADD_BAND_ST_B{m[1]}" in mtl:
            out[f"B{m[1]}"] = BandScaling(float(value), float(mtl[f"TEMPERATURE_ADD_BAND_ST_B{m[1]}"]), "kelvin")
    for key, value in mtl.items():
        m = re.fullmatch(r"RADIANCE_MULT_BAND_(\d+)", key)
        band = f"B{m[1]}" if m else None
        if band and band not in out and f"RADIANCE_ADD_BAND_{m[1]}" in mtl:
            extra = {k: float(mtl[f"{k}_CONSTANT_BAND_{m[1]}"]) for k in ("K1", "K2") if f"{k}_CONSTANT_BAND_{m[1]}" in mtl}
            out[band] = BandScaling(float(value), float(mtl[f"RADIANCE_ADD_BAND_{m[1]}"]), "radiance", extra)
    return out


def landsat_default(band: str, level: str, collection: str | None, file_name: str = "") -> BandScaling:
    """Documented defaults when no MTL is at hand. ``level`` "L1" or "L2"."""
    thermal = band in ("B10", "B11")
    if level == "L2" and collection == "02":
        if thermal or file_name.upper().startswith("ST_") or "_ST_B" in file_name.upper():
            return BandScaling(0.00341802, 149.0, "kelvin")
        return BandScaling(2.75e-5, -0.2)
    if thermal:
        return BandScaling(1.0, 0.0, "DN")  # radiance needs the scene's MTL
    return BandScaling(2e-5, -0.1)
