"""Real GID-15 tiles in memory for the segmentation tests."""

from __future__ import annotations

from collections.abc import Sequence

from rsaug.core.classes import BUILTIN_SCHEMES
from rsaug.io.tileset import read_raster
from rsaug.segmentation import TileArrays
from tests.conftest import GID15


def gid15_tiles(stems: Sequence[str]) -> TileArrays:
    """Whole GID-15 sample tiles (uint8 RGB images, masks in the internal convention) as :class:`TileArrays`."""
    scheme = BUILTIN_SCHEMES["gid15"]
    return TileArrays(
        "real",
        [read_raster(GID15 / "images" / f"{s}.tif") for s in stems],
        [scheme.encode(read_raster(GID15 / "labels_index" / f"{s}.tif")[0]) for s in stems],
        list(stems),
    )
