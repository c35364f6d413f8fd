"""What the service benchmarks share: the repository on sys.path, no telemetry, the real sample crop
and the small polygon of it that every small task uses."""

from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

SAMPLE = REPO / "eotasks" / "sample" / "s2-l1c-crop"
VIEW_ID = "S2/18/S/VG/2020/6/15/0"
POLYGON = {
    "type": "Polygon",
    "coordinates": [[[-75.6595, 37.6985], [-75.6420, 37.6960], [-75.6500, 37.7160], [-75.6595, 37.6985]]],
}
