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
        band_id = e.get("band_id")
        if e.tag.split("}")[-1] in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET") and band_id is not None and e.text:
            offsets[S2_BAND_IDS[int(band_id)]] = float(e.text)
    version = baseline_tuple(baseline)
    implied = -1000.0 if version is not None and version >= (4, 0) else 0.0  # baseline 04.00 without the list
    out = {band: BandScaling(1.0 / quant, offsets.get(band, implied) / quant) for band in S2_BAND_IDS}
    return baseline, out


def parse_mtl(text: str) -> dict[str, dict[str, str]]:
    """A Landsat MTL (text or JSON form) as its groups: group name -> its own KEY = value pairs.

    Keys repeat across groups with different meanings: a Collection 2 Level-2 MTL has
    ``REFLECTANCE_MULT_BAND_4`` in ``LEVEL2_SURFACE_REFLECTANCE_PARAMETERS`` (2.75e-5, for the SR_*
    files) and again in ``LEVEL1_RADIOMETRIC_RESCALING`` (2e-5, for the Level-1 product it was made
    from). Flattening would keep whichever comes last, so nothing here is flattened. Keys outside
    any group land under ``""``."""
    text = text.strip()
    groups: dict[str, dict[str, str]] = {}
    if text.startswith("{"):

        def walk(name: str, node: dict) -> None:
            own = groups.setdefault(name, {})
            for key, value in node.items():
                if isinstance(value, dict):
                    walk(key, value)
                else:
                    own[key] = str(value)

        walk("", json.loads(text))
        return groups
    stack = [""]
    groups[""] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if not sep:
            continue
        key, value = key.strip(), value.strip().strip('"')
        if key == "GROUP":
            stack.append(value)
            groups.setdefault(value, {})
        elif key == "END_GROUP":
            if len(stack) > 1:
                stack.pop()
        else:
            groups[stack[-1]][key] = value
    return groups


# Where each kind of factor lives, by product level, most specific group first. Collection 1 and
# pre-collection MTLs call the Level-1 groups RADIOMETRIC_RESCALING and TIRS_THERMAL_CONSTANTS; a
# file without groups (hand-written, or an old flat form) is read as one group.
_L1_RESCALING = ("LEVEL1_RADIOMETRIC_RESCALING", "RADIOMETRIC_RESCALING")
_L1_THERMAL = ("LEVEL1_THERMAL_CONSTANTS", "TIRS_THERMAL_CONSTANTS", "THERMAL_CONSTANTS", *_L1_RESCALING)
_L2_REFLECTANCE = ("LEVEL2_SURFACE_REFLECTANCE_PARAMETERS",)
_L2_TEMPERATURE = ("LEVEL2_SURFACE_TEMPERATURE_PARAMETERS",)


def _group(groups: dict[str, dict[str, str]], names: tuple[str, ...]) -> dict[str, str]:
    for name in names:
        if name in groups:
            return groups[name]
    if set(groups) <= {""}:  # no groups at all: the flat form
        return groups.get("", {})
    return {}


def landsat_from_mtl(text: str, level: str) -> dict[str, BandScaling]:
    """Our band name -> scaling for the files of ``level`` ("L1" or "L2"), from a Collection 1/2
    Level-1 or Level-2 MTL: each factor taken from the group that describes those files."""
    groups = parse_mtl(text)
    out: dict[str, BandScaling] = {}
    if level == "L2":
        reflectance = _group(groups, _L2_REFLECTANCE)
        for key, value in reflectance.items():
            m = re.fullmatch(r"REFLECTANCE_MULT_BAND_(\d+)", key)
            if m and f"REFLECTANCE_ADD_BAND_{m[1]}" in reflectance:
                out[f"B{m[1]}"] = BandScaling(float(value), float(reflectance[f"REFLECTANCE_ADD_BAND_{m[1]}"]))
        temperature = _group(groups, _L2_TEMPERATURE)
        for key, value in temperature.items():
            m = re.fullmatch(r"TEMPERATURE_MULT_BAND_ST_B(\d+)", key)
            if m and f"TEMPERATURE_ADD_BAND_ST_B{m[1]}" in temperature:
                out[f"B{m[1]}"] = BandScaling(float(value), float(temperature[f"TEMPERATURE_ADD_BAND_ST_B{m[1]}"]), "kelvin")
        return out
    rescaling = _group(groups, _L1_RESCALING)
    thermal = _group(groups, _L1_THERMAL)
    for key, value in rescaling.items():
        m = re.fullmatch(r"REFLECTANCE_MULT_BAND_(\d+)", key)
        if m and f"REFLECTANCE_ADD_BAND_{m[1]}" in rescaling:
            out[f"B{m[1]}"] = BandScaling(float(value), float(rescaling[f"REFLECTANCE_ADD_BAND_{m[1]}"]))
    for key, value in rescaling.items():
        m = re.fullmatch(r"RADIANCE_MULT_BAND_(\d+)", key)
        band = f"B{m[1]}" if m else None
        if m and band not in out and f"RADIANCE_ADD_BAND_{m[1]}" in rescaling:
            extra = {
                k: float(thermal[f"{k}_CONSTANT_BAND_{m[1]}"]) for k in ("K1", "K2") if f"{k}_CONSTANT_BAND_{m[1]}" in thermal
            }
            out[f"B{m[1]}"] = BandScaling(float(value), float(rescaling[f"RADIANCE_ADD_BAND_{m[1]}"]), "radiance", extra)
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
