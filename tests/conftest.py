"""Shared test configuration: paths to the real data in ../shared/data and fixture plugins."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RSAUG_SHARED_DATA", ROOT.parent / "shared" / "data"))
GID15 = SHARED / "gid15"
GID5 = SHARED / "gid5"
CHESAPEAKE = SHARED / "chesapeake"
CHESAPEAKE_TILE = CHESAPEAKE / "tile_m_3907833_nw_17_1"
GEOREF_PAIR = SHARED / "georef_pair"
LOVEDA = SHARED / "loveda"
LPIPS_REF = SHARED / "lpips_reference"

pytest_plugins = ["tests.fixtures_tiles", "tests.fixtures_train", "tests.fixtures_dask"]

warnings.filterwarnings("ignore", message=".*Dataset has no geotransform.*")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the shared real data."""
    if not SHARED.is_dir():
        pytest.fail(f"shared data not found at {SHARED}")
    return SHARED
