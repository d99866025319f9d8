"""Cutting scenes and masks into a tile set (``rsaug tile``).

Modules: :mod:`~rsaug.tiling.options` (:class:`TileOptions`, split specs), :mod:`~rsaug.tiling.inputs` (finding
scene/mask pairs), :mod:`~rsaug.tiling.splits` (random and blocked splits), :mod:`~rsaug.tiling.workers` (tile
windows, work units, the worker pool) and :mod:`~rsaug.tiling.run` (:func:`tile_scenes`, the run)::

    from rsaug.tiling import TileOptions, find_pairs, tile_scenes
    index = tile_scenes(find_pairs("scenes/", "masks/", mask_suffix="_15label"), "OUT", TileOptions(tile_size=224))

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""

from __future__ import annotations

from rsaug.io.rasters import DEFAULT_MAX_PIXELS
from rsaug.tiling.inputs import find_pairs, read_pairs_csv
from rsaug.tiling.options import DEFAULT_MAX_TILES, TileOptions, TilingWarning, parse_split
from rsaug.tiling.run import tile_scenes
from rsaug.tiling.splits import assign_blocked, assign_random, overlapping_pairs
from rsaug.tiling.workers import tile_id, tile_windows

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_MAX_TILES",
    "TileOptions",
    "TilingWarning",
    "assign_blocked",
    "assign_random",
    "find_pairs",
    "overlapping_pairs",
    "parse_split",
    "read_pairs_csv",
    "tile_id",
    "tile_scenes",
    "tile_windows",
]
