"""Test settings: every test session writes under its own temporary folder, never the user's."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="eotasks-test-"))
os.environ["EOTASKS_DATA_DIR"] = str(_SESSION_DIR / "data")
os.environ.pop("EOTASKS_DATABASE_URL", None)
os.environ.pop("EOTASKS_STORE_URL", None)

from eotasks.settings import reset_settings  # noqa: E402

reset_settings()

CROP_DIR = Path(__file__).parent / "data" / "s2-l1c-crop"
SAMPLE_VIEW_ID = "S2/18/S/VG/2020/6/15/0"


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    from eotasks.db import init_db

    url = f"sqlite:///{tmp_path / 'test.db'}"
    init_db(url)
    return url
