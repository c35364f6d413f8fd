"""What each sensor has: band names, generic names, native resolutions, reflectance scaling, masks.

These tables are the single place where "RED on Landsat 8 is B4" is written down. The catalogue
stores per-scene scale and offset (they differ by product and processing baseline); the defaults
here are what an ingest uses when a scene does not say.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Band:
    name: str  # the sensor's own name, as stored in the catalogue
    resolution: float  # native pixel size in metres
    generic: tuple[str, ...] = ()  # generic names that map onto this band
    spectral: bool = True  # False for mask / QA bands (never scaled to reflectance)


@dataclass(frozen=True)
class Sensor:
    name: str  # long name, e.g. "sentinel2l2a"
    short: str  # view_id prefix, e.g. "S2L2A"
    family: str  # "sentinel2" or "landsat"
    bands: tuple[Band, ...]
    # spyndex's band letters -> our band names (for the Awesome Spectral Indices catalogue).
    spyndex_bands: dict[str, str] = field(default_factory=dict)
    spyndex_platform: str = ""
    mask_band: str | None = None
    default_scale: float = 1.0
    default_offset: float = 0.0
    default_nodata: float | None = 0

    def band(self, name: str) -> Band:
        return self._index[name]

    @property
    def _index(self) -> dict[str, Band]:
        return {b.name: b for b in self.bands}

    def resolve_band(self, token: str) -> str | None:
        """Map a user's band token (case-insensitive, sensor or generic name) to our band name."""
        upper = token.upper()
        for b in self.bands:
            if b.name.upper() == upper or upper in b.generic:
                return b.name
        # "B4" is accepted for "B04", "B8" for "B08".
        if self.family == "sentinel2" and len(upper) == 2 and upper[0] == "B" and upper[1].isdigit():
            padded = f"B0{upper[1]}"
            if padded in self._index:
                return padded
        if self.family == "landsat":
            # Collection 2 product names (SR_B4) and zero-padded forms (B04) name the same bands.
            stripped = upper.removeprefix("SR_").removeprefix("ST_")
            if stripped.startswith("B0") and len(stripped) == 3:
                stripped = "B" + stripped[2]
            if stripped != upper:
                return self.resolve_band(stripped)
        return None


_S2_COMMON = (
    Band("B01", 60, ("COASTAL",)),
    Band("B02", 10, ("BLUE",)),
    Band("B03", 10, ("GREEN",)),
    Band("B04", 10, ("RED",)),
    Band("B05", 20, ("RE1",)),
    Band("B06", 20, ("RE2",)),
    Band("B07", 20, ("RE3",)),
    Band("B08", 10, ("NIR",)),
    Band("B8A", 20, ("NIR08",)),
    Band("B09", 60, ()),
)
_S2_SPYNDEX = {
    "A": "B01",
    "B": "B02",
    "G": "B03",
    "R": "B04",
    "RE1": "B05",
    "RE2": "B06",
    "RE3": "B07",
    "N": "B08",
    "N2": "B8A",
    "WV": "B09",
    "S1": "B11",
    "S2": "B12",
}
_LANDSAT_BANDS = (
    Band("B1", 30, ("COASTAL",)),
    Band("B2", 30, ("BLUE",)),
    Band("B3", 30, ("GREEN",)),
    Band("B4", 30, ("RED",)),
    Band("B5", 30, ("NIR", "NIR08")),
    Band("B6", 30, ("SWIR1",)),
    Band("B7", 30, ("SWIR2",)),
    Band("B8", 15, ("PAN",)),
    Band("B9", 30, ("CIRRUS",)),
    Band("B10", 30, ("TIR1",)),
    Band("B11", 30, ("TIR2",)),
    Band("QA_PIXEL", 30, (), spectral=False),
    Band("BQA", 30, (), spectral=False),
)
_LANDSAT_SPYNDEX = {
    "A": "B1",
    "B": "B2",
    "G": "B3",
    "R": "B4",
    "N": "B5",
    "S1": "B6",
    "S2": "B7",
    "T1": "B10",
    "T2": "B11",
}

SENTINEL2 = Sensor(
    "sentinel2",
    "S2",
    "sentinel2",
    (*_S2_COMMON, Band("B10", 60, ("CIRRUS",)), Band("B11", 20, ("SWIR1",)), Band("B12", 20, ("SWIR2",))),
    spyndex_bands=_S2_SPYNDEX,
    spyndex_platform="Sentinel-2",
    mask_band=None,
    default_scale=1e-4,
    default_offset=0.0,
)
SENTINEL2_L2A = Sensor(
    "sentinel2l2a",
    "S2L2A",
    "sentinel2",
    (*_S2_COMMON, Band("B11", 20, ("SWIR1",)), Band("B12", 20, ("SWIR2",)), Band("SCL", 20, (), spectral=False)),
    spyndex_bands=_S2_SPYNDEX,
    spyndex_platform="Sentinel-2",
    # Processing baseline 04.00 and later: (DN - 1000) / 10000.
    mask_band="SCL",
    default_scale=1e-4,
    default_offset=-0.1,
)
LANDSAT8 = Sensor(
    "landsat8",
    "L8",
    "landsat",
    _LANDSAT_BANDS,
    spyndex_bands=_LANDSAT_SPYNDEX,
    spyndex_platform="Landsat-OLI",
    # Collection 2 Level-2 surface reflectance.
    mask_band="QA_PIXEL",
    default_scale=2.75e-5,
    default_offset=-0.2,
)
LANDSAT9 = Sensor(
    "landsat9",
    "L9",
    "landsat",
    _LANDSAT_BANDS,
    spyndex_bands=_LANDSAT_SPYNDEX,
    spyndex_platform="Landsat-OLI",
    mask_band="QA_PIXEL",
    default_scale=2.75e-5,
    default_offset=-0.2,
)

SENSORS: dict[str, Sensor] = {s.name: s for s in (SENTINEL2, SENTINEL2_L2A, LANDSAT8, LANDSAT9)}
OPTICAL_SENSORS = tuple(SENSORS)

# The reference API's other sensor names: accepted, matching no scenes until a catalogue holds them.
OTHER_SENSOR_NAMES = {
    "landsat4": "L4",
    "landsat5": "L5",
    "landsat7": "L7",
    "modis": "MODIS",
    "cbers4": "CBERS4",
    "naip": "NAIP",
    "sentinel1": "S1",
    "sentinel1grd": "S1GRD",
}

_SHORT = {s.short.upper(): s.name for s in SENSORS.values()}


def sensor_by_name(name: str) -> Sensor | None:
    """Long or short name, case-insensitive: 'sentinel2l2a', 'S2L2A', 'landsat8', 'L8'."""
    key = name.strip().lower()
    if key in SENSORS:
        return SENSORS[key]
    long = _SHORT.get(name.strip().upper())
    return SENSORS[long] if long else None


def normalize_sensor_name(name: str) -> str | None:
    """The long name of a known sensor (ours or the reference API's others), or None."""
    sensor = sensor_by_name(name)
    if sensor:
        return sensor.name
    key = name.strip().lower()
    if key in OTHER_SENSOR_NAMES:
        return key
    for long, short in OTHER_SENSOR_NAMES.items():
        if short.lower() == key:
            return long
    return None
