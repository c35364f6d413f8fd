"""Scene identifiers: ``view_id`` (``S2/19/T/CG/2017/7/9/0``, ``L8/LC08_L1TP_...``) and ``scene_id``.

Parsing is strict and total: anything that is not one of SPEC's forms raises ``ValueError`` with a
sentence saying what was expected, which the request models turn into a 400 naming the field.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from eotasks.sensors import SENSORS, Sensor

_S2_VIEW = re.compile(
    r"^(?P<prefix>S2|S2L2A)/(?P<zone>\d{1,2})/(?P<band>[C-HJ-NP-X])/(?P<square>[A-Z]{2})/"
    r"(?P<year>\d{4})/(?P<month>\d{1,2})/(?P<day>\d{1,2})/(?P<seq>\d{1,3})$"
)
_S2_SCENE = re.compile(r"^(?P<platform>S2[A-D])_tile_(?P<date>\d{8})_(?P<tile>\d{2}[C-HJ-NP-X][A-Z]{2})_(?P<seq>\d{1,3})$")
# Pre-collection: LXSPPPRRRYYYYDDDGSIVV, e.g. LC80290332017076LGN00.
_LANDSAT_PRE = re.compile(
    r"^L(?P<sensor>[COTEM])(?P<sat>[89])(?P<path>\d{3})(?P<row>\d{3})(?P<year>\d{4})(?P<doy>\d{3})"
    r"(?P<gsi>[A-Z]{3})(?P<version>\d{2})$"
)
# Collection product id: LXSS_LLLL_PPPRRR_YYYYMMDD_yyyymmdd_CC_TX, e.g. LC08_L1TP_041036_20171202_20171207_01_T1.
# Earth Search v1 names the same scenes without the processing date: LC08_L2SP_014034_20230110_02_T1.
_LANDSAT_COLL = re.compile(
    r"^L(?P<sensor>[COTEM])0(?P<sat>[89])_(?P<level>L1TP|L1GT|L1GS|L2SP|L2SR)_(?P<path>\d{3})(?P<row>\d{3})_"
    r"(?P<date>\d{8})_(?:(?P<processed>\d{8})_)?(?P<collection>0[12])_(?P<tier>T1|T2|RT)$"
)


@dataclass(frozen=True)
class SceneId:
    """A parsed scene identifier; enough to name files and to find the scene in the catalogue."""

    sensor: Sensor
    date: dt.date
    view_id: str
    # Sentinel-2
    tile: str | None = None  # e.g. "19TCG"
    seq: int = 0
    # Landsat
    product_id: str | None = None
    path: int | None = None
    row: int | None = None
    collection: str | None = None  # "pre", "01", "02"

    def scene_id(self, platform: str | None = None) -> str:
        """The scene_id of SPEC §2. Sentinel-2 needs the platform (S2A/S2B/...), which the view_id lacks."""
        if self.product_id:
            return self.product_id
        return f"{platform or 'S2A'}_tile_{self.date:%Y%m%d}_{self.tile}_{self.seq}"

    @property
    def mask_kind(self) -> str | None:
        """Which cloud-mask layout the scene's mask band follows."""
        if self.sensor.family == "sentinel2":
            return "SCL" if self.sensor.mask_band == "SCL" else None
        return {"pre": "BQA_PRE", "01": "BQA_C1", "02": "QA_PIXEL"}[self.collection or "02"]


def _date(year: str, month: str, day: str) -> dt.date:
    try:
        return dt.date(int(year), int(month), int(day))
    except ValueError:
        raise ValueError(f"{year}-{month}-{day} is not a valid date") from None


def parse_view_id(view_id: str) -> SceneId:
    if not isinstance(view_id, str) or not view_id:
        raise ValueError("view_id must be a non-empty string")
    m = _S2_VIEW.match(view_id)
    if m:
        sensor = SENSORS["sentinel2"] if m["prefix"] == "S2" else SENSORS["sentinel2l2a"]
        zone = int(m["zone"])
        if not 1 <= zone <= 60:
            raise ValueError(f"UTM zone {zone} is outside 1-60")
        # Canonical form: unpadded zone, month and day, as the reference API writes them.
        canonical = (
            f"{m['prefix']}/{zone}/{m['band']}/{m['square']}/{int(m['year'])}/{int(m['month'])}/{int(m['day'])}/{int(m['seq'])}"
        )
        return SceneId(
            sensor=sensor,
            date=_date(m["year"], m["month"], m["day"]),
            view_id=canonical,
            tile=f"{zone:02d}{m['band']}{m['square']}",
            seq=int(m["seq"]),
        )
    prefix, _, rest = view_id.partition("/")
    if prefix in ("L8", "L9") and rest:
        scene = _parse_landsat(rest)
        if scene.sensor.short != prefix:
            raise ValueError(f"{rest} is a Landsat {scene.sensor.short[1]} scene, not {prefix}")
        return scene
    raise ValueError(
        "view_id must look like S2/19/T/CG/2017/7/9/0, S2L2A/..., L8/LC80290332017076LGN00 or "
        "L8/LC08_L1TP_041036_20171202_20171207_01_T1"
    )


def _parse_landsat(product: str) -> SceneId:
    m = _LANDSAT_PRE.match(product)
    if m:
        sensor = SENSORS[f"landsat{m['sat']}"]
        year, doy = int(m["year"]), int(m["doy"])
        try:
            date = dt.date(year, 1, 1) + dt.timedelta(days=doy - 1)
            if not 1 <= doy <= 366 or date.year != year:
                raise ValueError
        except ValueError:
            raise ValueError(f"day of year {doy} is not valid in {year}") from None
        return SceneId(
            sensor=sensor,
            date=date,
            view_id=f"{sensor.short}/{product}",
            product_id=product,
            path=int(m["path"]),
            row=int(m["row"]),
            collection="pre",
        )
    m = _LANDSAT_COLL.match(product)
    if m:
        sensor = SENSORS[f"landsat{m['sat']}"]
        d = m["date"]
        return SceneId(
            sensor=sensor,
            date=_date(d[:4], d[4:6], d[6:]),
            view_id=f"{sensor.short}/{product}",
            product_id=product,
            path=int(m["path"]),
            row=int(m["row"]),
            collection=m["collection"],
        )
    raise ValueError(f"{product!r} is neither a Landsat scene id (LC80290332017076LGN00) nor a product id")


def parse_scene_id(scene_id: str) -> SceneId:
    """``S2A_tile_20200815_55PDS_0`` (Level-1C) or a Landsat id; for S2 L2A use the view_id."""
    m = _S2_SCENE.match(scene_id)
    if m:
        tile, d = m["tile"], m["date"]
        view_id = f"S2/{int(tile[:2])}/{tile[2]}/{tile[3:]}/{int(d[:4])}/{int(d[4:6])}/{int(d[6:])}/{int(m['seq'])}"
        return parse_view_id(view_id)
    return _parse_landsat(scene_id)


def s2_view_id(tile: str, date: dt.date, seq: int = 0, level: str = "L1C") -> str:
    """Build a Sentinel-2 view_id from an MGRS tile such as '18SVH'."""
    prefix = "S2" if level == "L1C" else "S2L2A"
    return f"{prefix}/{int(tile[:2])}/{tile[2]}/{tile[3:]}/{date.year}/{date.month}/{date.day}/{seq}"
