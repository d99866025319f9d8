"""Reading and writing rasters: scenes and masks, the tile-set format, fast GeoTIFF tiles, value normalisation,
the bundled sample data.

Modules: :mod:`~rsaug.io.rasters` (opening scenes and raster/colour/vector masks on a scene grid),
:mod:`~rsaug.io.tileset` (the on-disk tile-set format: :class:`TileSet` and the writers every producer uses),
:mod:`~rsaug.io.geotiff` (the fast GeoTIFF tile writer behind :func:`write_tile`),
:mod:`~rsaug.io.normalization` (the per-band value range fitted on training tiles), :mod:`~rsaug.io.model_files`
(the one safe reader of model files: checkpoints, generators, segmenters), :mod:`~rsaug.io.sample` and
:mod:`~rsaug.io.stac` (STAC catalogs of tile sets and scenes: :func:`~rsaug.io.stac.write_stac_collection`).
This package re-exports the entry points (except :mod:`~rsaug.io.stac`'s, imported from that module, so that
command-line start-up does not load pystac); helpers stay in their modules.

May import: :mod:`rsaug.core`.
"""

from __future__ import annotations

from rsaug.io.normalization import Normalization, compute_normalization, percentile_range
from rsaug.io.rasters import MASK_KINDS, MaskReader, MaskSpec, SceneInfo, open_mask, open_scene
from rsaug.io.sample import chesapeake_sample, gid15_generator, gid15_sample, sample_root
from rsaug.io.tileset import (
    DEFAULT_COMPRESS_LEVEL,
    DESCRIPTION_FILE,
    FORMAT_NAME,
    FORMAT_VERSION,
    INDEX_COLUMNS,
    INDEX_FILE,
    INDEX_LAYER,
    SPLITS,
    TileSet,
    count_column,
    read_raster,
    write_description,
    write_index,
    write_tile,
)

__all__ = [
    "DEFAULT_COMPRESS_LEVEL",
    "DESCRIPTION_FILE",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "INDEX_COLUMNS",
    "INDEX_FILE",
    "INDEX_LAYER",
    "MASK_KINDS",
    "SPLITS",
    "MaskReader",
    "MaskSpec",
    "Normalization",
    "SceneInfo",
    "TileSet",
    "chesapeake_sample",
    "compute_normalization",
    "count_column",
    "gid15_generator",
    "gid15_sample",
    "open_mask",
    "open_scene",
    "percentile_range",
    "read_raster",
    "sample_root",
    "write_description",
    "write_index",
    "write_tile",
]
