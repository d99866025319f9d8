"""The on-disk tile-set format shared by every stage (tiler output, synthetic sets, training input).

A tile set is a directory::

    OUT/
      tileset.json      # description: format, rsaug version, class scheme, tile size, bands, dtype, CRS,
                        # sources, options used, split counts, synthetic flag
      index.gpkg        # layer "tiles": one row per tile, footprint polygon in the scene CRS
      images/<id>.tif   # GeoTIFF, source band count and dtype, compressed, exact window transform
      masks/<id>.tif    # GeoTIFF uint8, internal convention (0..K-1, 255 = unknown = nodata), colormap

Index columns (see :data:`INDEX_COLUMNS`): ``tile_id``, ``image``, ``mask`` (paths relative to the tile-set
root), ``source_image``, ``source_mask``, ``col_off``, ``row_off``, ``width``, ``height``, ``split``
(``train``/``val``/``test``/``reserved``), ``unknown_fraction``, ``synthetic``, and one ``px_<class name>``
column per class with its pixel count. Synthetic sets add ``source_tile``, ``sample``, ``seed``,
``checkpoint_sha256``. Tile sets without georeferencing have no CRS and footprints in the source's pixel grid
(rasterio's identity transform: x = column, y = row).

This module reads tile sets (:class:`TileSet`) and holds the writers every producer uses, so the tiler and the
synthesizer write the same format.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError

from rsaug import __version__
from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.core.errors import InputError
from rsaug.core.files import atomic_path, read_json, write_json
from rsaug.core.runtime import quiet
from rsaug.io.geotiff import Layout, fast_layout, layout_from_template, write_fast

if TYPE_CHECKING:
    import geopandas as gpd

FORMAT_NAME = "rsaug-tileset"
FORMAT_VERSION = 1
DESCRIPTION_FILE = "tileset.json"
INDEX_FILE = "index.gpkg"
INDEX_LAYER = "tiles"
SPLITS = ("train", "val", "test", "reserved")
INDEX_COLUMNS = (
    "tile_id",
    "image",
    "mask",
    "source_image",
    "source_mask",
    "col_off",
    "row_off",
    "width",
    "height",
    "split",
    "unknown_fraction",
    "synthetic",
)


def count_column(class_name: str) -> str:
    """Name of the index column holding the pixel count of ``class_name``."""
    return f"px_{class_name}"


@dataclass
class TileSet:
    """A tile set opened from disk.

    Attributes:
        root: Tile-set directory.
        description: Parsed ``tileset.json``.
        scheme: The class scheme of its masks.
        index: The tile index (one row per tile).
    """

    root: Path
    description: dict[str, Any]
    scheme: ClassScheme
    index: gpd.GeoDataFrame

    @classmethod
    def open(cls, root: str | os.PathLike[str]) -> TileSet:
        """Open and validate a tile set.

        Raises:
            InputError: If the directory, its description or its index is missing or malformed.
        """
        root = Path(root)
        if not root.is_dir():
            raise InputError(root, "tile set directory not found")
        desc_path = root / DESCRIPTION_FILE
        if not desc_path.is_file():
            raise InputError(root, f"not an rsaug tile set (no {DESCRIPTION_FILE})")
        try:
            desc = read_json(desc_path)
        except (OSError, ValueError) as exc:
            raise InputError(desc_path, f"cannot read tile-set description: {exc}") from None
        if desc.get("format") != FORMAT_NAME:
            raise InputError(desc_path, f"not an rsaug tile-set description (format {desc.get('format')!r})")
        scheme = ClassScheme.from_dict(desc["scheme"], desc_path)
        index_path = root / desc.get("index", INDEX_FILE)
        if not index_path.is_file():
            raise InputError(index_path, "tile index not found")
        try:
            import geopandas as gpd

            index = gpd.read_file(index_path, layer=INDEX_LAYER)
        except Exception as exc:  # pyogrio raises several types
            raise InputError(index_path, f"cannot read tile index: {exc}") from None
        missing = [c for c in ("tile_id", "image", "mask", "split") if c not in index.columns]
        if missing:
            raise InputError(index_path, f"tile index lacks columns {missing}")
        return cls(root=root, description=desc, scheme=scheme, index=index)

    # -------------------------------------------------------------- convenience
    @property
    def bands(self) -> int:
        """Number of image bands."""
        return int(self.description["bands"])

    @property
    def dtype(self) -> str:
        """Image dtype name (e.g. ``uint8``)."""
        return str(self.description["dtype"])

    @property
    def georeferenced(self) -> bool:
        """Whether tiles carry a CRS and transform."""
        return bool(self.description.get("georeferenced", False))

    @property
    def synthetic(self) -> bool:
        """Whether this is a synthetic tile set (``rsaug synthesize`` output)."""
        return bool(self.description.get("synthetic", False))

    def split(self, name: str) -> gpd.GeoDataFrame:
        """Rows of one split (``train``, ``val``, ``test`` or ``reserved``)."""
        return self.index[self.index["split"] == name].reset_index(drop=True)

    def image_path(self, row: Any) -> Path:
        """Absolute path of a row's image tile."""
        return self.root / row["image"]

    def mask_path(self, row: Any) -> Path:
        """Absolute path of a row's mask tile."""
        return self.root / row["mask"]

    def read_image(self, row: Any) -> np.ndarray:
        """Read a tile's image as (C, H, W) in its stored dtype."""
        return read_raster(self.image_path(row))

    def read_mask(self, row: Any) -> np.ndarray:
        """Read a tile's mask as (H, W) uint8 in the internal convention."""
        return read_raster(self.mask_path(row))[0]

    def class_pixel_counts(self, split: str | None = None) -> np.ndarray:
        """Per-class pixel counts (length K) summed over a split (or all tiles), from the index."""
        rows = self.index if split is None else self.split(split)
        return np.array([int(rows[count_column(n)].sum()) for n in self.scheme.names], dtype=np.int64)


def read_raster(path: str | os.PathLike[str]) -> np.ndarray:
    """Read all bands of a raster as (C, H, W).

    Raises:
        InputError: If it is missing or unreadable.
    """
    try:
        with quiet(NotGeoreferencedWarning), rasterio.open(path) as src:
            return src.read()
    except RasterioIOError as exc:
        if not Path(path).exists():
            raise InputError(path, "file not found") from None
        raise InputError(path, f"cannot read raster: {exc}") from None


DEFAULT_COMPRESS_LEVEL = 1
"""Deflate/zstd level of written tiles. With the horizontal predictor, deflate level 1 gave files as small as
GDAL's default level 6 on GID-15-like imagery (11.24 vs 11.32 MB for 256 tile pairs). Deflate levels 1-3 of
integer tiles are encoded with ISA-L (:mod:`rsaug.io.geotiff`): ~2 ms per 256-px 4-band image + mask pair instead
of ~5 ms through GDAL (bench/bench_tile.py)."""


def write_tile(
    path: str | os.PathLike[str],
    array: np.ndarray,
    *,
    crs: Any = None,
    transform: Any = None,
    is_mask: bool = False,
    scheme: ClassScheme | None = None,
    tags: dict[str, str] | None = None,
    compress: str = "deflate",
    compress_level: int | None = DEFAULT_COMPRESS_LEVEL,
) -> None:
    """Write one tile GeoTIFF atomically (compressed, band-interleaved; masks get the colormap and nodata 255).

    Integer tiles up to 256 px with deflate levels 1-3 (the tiler's default) and no ``tags`` are encoded by
    :mod:`rsaug.io.geotiff` (the file GDAL would write, compressed with ISA-L); everything else by GDAL.

    Args:
        path: Destination.
        array: (C, H, W) image or (H, W) mask (uint8, internal convention).
        crs: CRS of the tile, or ``None`` for non-georeferenced tiles.
        transform: Affine transform of the tile window, or ``None``.
        is_mask: Write as a mask (uint8, nodata 255, colormap from ``scheme``).
        scheme: Class scheme (needed for the mask colormap).
        tags: Extra GeoTIFF metadata tags (e.g. provenance of synthetic tiles).
        compress: GeoTIFF compression.
        compress_level: Deflate (1-12) or zstd (1-22) level; ``None`` keeps GDAL's default (6 / 9).
    """
    arr = array[None] if array.ndim == 2 else array
    cmap_scheme = scheme if is_mask else None
    if tags is None:
        layout = _cached_layout(arr, crs, transform, is_mask, cmap_scheme, compress, compress_level)
        if layout is not None:
            with atomic_path(path) as tmp:
                write_fast(tmp, arr, layout, transform, int(compress_level))  # type: ignore[arg-type]
            return
    profile = _tile_profile(arr, crs, transform, is_mask, compress, compress_level)
    data = _gdal_bytes(arr, profile, cmap_scheme, tags)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _tile_profile(
    arr: np.ndarray, crs: Any, transform: Any, is_mask: bool, compress: str, compress_level: int | None
) -> dict[str, Any]:
    """The rasterio profile of one (C, H, W) tile."""
    count, height, width = arr.shape
    profile: dict[str, Any] = {
        "driver": "GTiff",
        "count": count,
        "height": height,
        "width": width,
        "dtype": arr.dtype.name,
        "compress": compress,
        "interleave": "band",
    }
    # internal tiling only where it helps: tiles larger than one 256-px block (a single-block tiled TIFF is
    # ~40 % slower to write than strips and no faster to read)
    if height >= 256 and width >= 256 and max(height, width) > 256 and height % 16 == 0 and width % 16 == 0:
        profile.update(
            tiled=True,
            blockxsize=256 if width % 256 == 0 else 16 * (min(width, 256) // 16),
            blockysize=256 if height % 256 == 0 else 16 * (min(height, 256) // 16),
        )
    if compress in ("deflate", "lzw", "zstd"):
        profile["predictor"] = 2 if np.issubdtype(arr.dtype, np.integer) else 3
    if compress_level is not None and compress in ("deflate", "zstd"):
        profile["zlevel" if compress == "deflate" else "zstd_level"] = int(compress_level)
    if crs is not None:
        profile["crs"] = crs
    if transform is not None:
        profile["transform"] = transform
    if is_mask:
        profile["nodata"] = IGNORE
    elif count > 3:
        # GDAL would mark the 4th band of a uint8 image (e.g. NAIP's NIR) as alpha; readers that honour alpha
        # (rasterio.merge, hence TorchGeo) would then blank every pixel whose 4th band is 0.
        profile["alpha"] = "UNSPECIFIED"
    return profile


def _gdal_bytes(
    arr: np.ndarray, profile: dict[str, Any], scheme: ClassScheme | None, tags: dict[str, str] | None
) -> bytes:
    """The GeoTIFF GDAL writes for a tile, written in memory.

    Tiles are never written by GDAL onto the disk: rasterio does not report a write that fails when the dataset
    is closed (GDAL flushes the last strips and the directory then), so on a full disk GDAL would leave a
    truncated file without an error. Python writes these bytes and raises the disk's :class:`OSError`.
    """
    with rasterio.MemoryFile() as mem:
        with quiet(NotGeoreferencedWarning), mem.open(**profile) as dst:
            dst.write(arr)
            if scheme is not None:
                dst.write_colormap(1, scheme.colormap())
            if tags:
                dst.update_tags(**tags)
        return bytes(mem.read())


_LAYOUTS: dict[tuple[Any, ...], Layout | None] = {}
_BY_ID: dict[tuple[Any, ...], tuple[Any, Any, Layout | None]] = {}


def _cached_layout(
    arr: np.ndarray,
    crs: Any,
    transform: Any,
    is_mask: bool,
    scheme: ClassScheme | None,
    compress: str,
    compress_level: int | None,
) -> Layout | None:
    """The :class:`~rsaug.io.geotiff.Layout` for a tile, or ``None`` if GDAL must write it.

    Looked up first by the identity of ``crs`` and ``scheme`` (the tiler passes the same objects for every tile
    of a scene; the entry keeps them alive so their ids stay theirs), then by value; a new layout writes one
    GDAL template in memory.
    """
    scale = None if transform is None else (transform.a, transform.b, transform.d, transform.e)
    fast_key = (arr.shape, arr.dtype.str, id(crs), scale, is_mask, id(scheme), compress, compress_level)
    hit = _BY_ID.get(fast_key)
    if hit is not None and hit[0] is crs and hit[1] is scheme:
        return hit[2]
    profile = _tile_profile(arr, crs, transform, is_mask, compress, compress_level)
    layout = None
    if fast_layout(profile, arr):
        key = (
            tuple((k, v) for k, v in profile.items() if k not in ("crs", "transform")),
            crs if isinstance(crs, (rasterio.crs.CRS, str)) or crs is None else str(crs),
            scale,
            scheme,
        )
        if key not in _LAYOUTS:
            _LAYOUTS[key] = layout_from_template(
                _gdal_bytes(arr, profile, scheme, None), transform, arr.shape, arr.dtype
            )
        layout = _LAYOUTS[key]
    if len(_BY_ID) >= 1024:  # callers passing a new CRS object per tile: stay bounded
        _BY_ID.clear()
    _BY_ID[fast_key] = (crs, scheme, layout)
    return layout


def write_index(root: str | os.PathLike[str], index: gpd.GeoDataFrame) -> Path:
    """Write the tile index (GeoPackage, layer ``tiles``) atomically; returns its path.

    The GeoPackage is built in memory and written by Python: SQLite's failures on a full disk reach Python as
    misleading OGR errors (``no such table: gpkg_contents``), Python's write raises the disk's :class:`OSError`.
    """
    path = Path(root) / INDEX_FILE
    buf = io.BytesIO()
    index.to_file(buf, layer=INDEX_LAYER, driver="GPKG")
    with atomic_path(path) as tmp:
        tmp.write_bytes(buf.getbuffer())
    return path


def write_description(root: str | os.PathLike[str], description: dict[str, Any]) -> Path:
    """Write ``tileset.json`` atomically, filling in the format fields; returns its path."""
    desc = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "rsaug_version": __version__,
        "index": INDEX_FILE,
        **description,
    }
    path = Path(root) / DESCRIPTION_FILE
    write_json(path, desc)
    return path
