"""Cutting scenes and masks into a tile set (``rsaug tile``): options, input discovery, work units, splits, the run.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""
from __future__ import annotations

from rsaug.tiling.run import (
    TileOptions,
    TilingWarning,
    assign_blocked,
    assign_random,
    find_pairs,
    read_pairs_csv,
    tile_scenes,
    tile_windows,
)

__all__ = [
    "TileOptions",
    "TilingWarning",
    "assign_blocked",
    "assign_random",
    "find_pairs",
    "read_pairs_csv",
    "tile_scenes",
    "tile_windows",
]
