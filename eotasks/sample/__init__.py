"""The sample scene that comes with the project: a 3 x 3 km crop of a real Sentinel-2 L1C scene
(tile 18SVG, 2020-06-15; B01-B05, B08, B11 as COGs), so a clone from anywhere has real pixels for
the README's requests and the demo. ``eotasks up`` ingests it as ``SAMPLE_VIEW_ID``, or the whole
scene when ``EOTASKS_SAMPLE_DIR`` names a folder of it."""

from __future__ import annotations

from pathlib import Path

CROP_DIR = Path(__file__).parent / "s2-l1c-crop"
SAMPLE_VIEW_ID = "S2/18/S/VG/2020/6/15/0"
# A field inside the crop: the README's requests and the API documentation's examples use it.
SAMPLE_POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-75.655, 37.685], [-75.635, 37.684], [-75.640, 37.703], [-75.655, 37.685]]],
}
