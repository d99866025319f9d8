"""Opening scenes and masks for tiling: GeoTIFF/PNG scenes, index / colour / vector masks, windowed reads.

A *scene* is a raster of any band count and dtype. A *mask* is one of

* an **index raster** (one band, raw values in the class scheme's source convention),
* a **colour-coded raster** (3 or 4 bands, decoded exactly with :meth:`ClassScheme.decode_colors`),
* a **vector file** (GeoJSON / GeoPackage / Shapefile / FlatGeobuf) with a class attribute holding class
  names or raw class values, rasterized onto the scene grid window by window.

Masks on the scene's grid are read directly. Masks on another grid (other CRS, resolution or extent) are
resampled onto the scene grid with nearest neighbour through a :class:`rasterio.vrt.WarpedVRT`, which is
read window by window, so memory never depends on the scene size. Scene pixels not covered by the mask are
unknown (:data:`rsaug.core.classes.IGNORE`).

Non-georeferenced inputs (plain TIFF/PNG, as GID is distributed) are used on their pixel grid; the mask must
then have the scene's size.

Everything here is picklable through :class:`SceneInfo` / :class:`MaskSpec` so worker processes can reopen
the files themselves (:class:`MaskReader`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.vrt import WarpedVRT
from rasterio.windows import Window

from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.core.errors import InputError, option
from rsaug.core.runtime import quiet

VECTOR_SUFFIXES = (".geojson", ".json", ".gpkg", ".shp", ".fgb", ".gml", ".kml")
MASK_KINDS = ("auto", "index", "color", "vector")
#: Default limit of a scene's declared size (width x height, 2**32 = 65536 x 65536 pixels): a header can declare
#: any size in a tiny file, and tiling reads every pixel, so larger scenes must be allowed explicitly.
DEFAULT_MAX_PIXELS = 2**32
#: Largest internal block (one band) of a scene or mask: GDAL decodes a whole block to read any pixel of it.
MAX_BLOCK_BYTES = 2**30


@dataclass(frozen=True)
class SceneInfo:
    """Grid and pixel format of a scene.

    Attributes:
        path: Scene file.
        width: Width in pixels.
        height: Height in pixels.
        count: Number of bands.
        dtype: NumPy dtype name of the bands.
        crs: CRS as WKT, or ``None`` when not georeferenced.
        transform: Affine transform (identity when not georeferenced).
        nodata: Nodata value of the scene, if any (NaN included; see :attr:`fill_value`).
        block_width: Width of the scene's internal blocks (the full width for striped files).
    """

    path: str
    width: int
    height: int
    count: int
    dtype: str
    crs: str | None
    transform: tuple[float, ...]
    nodata: float | None = None
    block_width: int = 0

    @property
    def georeferenced(self) -> bool:
        """Whether the scene has a CRS."""
        return self.crs is not None

    @property
    def fill_value(self) -> float:
        """Value of padded pixels: the nodata value where the dtype can hold it, else 0."""
        nd = self.nodata
        if nd is None:
            return 0
        dt = np.dtype(self.dtype)
        if dt.kind == "f":
            return nd if not math.isfinite(nd) or abs(nd) <= float(np.finfo(dt).max) else 0
        if dt.kind in "iu" and math.isfinite(nd) and float(nd).is_integer():
            info = np.iinfo(dt)
            return int(nd) if info.min <= nd <= info.max else 0
        return 0

    @property
    def affine(self) -> Affine:
        """The transform as an :class:`affine.Affine`."""
        return Affine(*self.transform[:6])

    @property
    def rio_crs(self) -> CRS | None:
        """The CRS as a rasterio :class:`~rasterio.crs.CRS` (or ``None``)."""
        return None if self.crs is None else CRS.from_wkt(self.crs)

    @property
    def stem(self) -> str:
        """File name without suffix."""
        return Path(self.path).stem


def _open(path: str | os.PathLike[str], what: str) -> rasterio.io.DatasetReader:
    p = Path(path)
    if not p.exists():
        raise InputError(p, f"{what} file not found")
    if p.is_dir():
        raise InputError(p, f"{what} is a directory, expected a raster file")
    if not os.access(p, os.R_OK):
        raise InputError(p, f"{what} file is not readable (permission denied)")
    try:
        with quiet(NotGeoreferencedWarning):
            return rasterio.open(p)
    except RasterioIOError as exc:
        raise InputError(p, f"cannot read {what} raster (corrupt or unsupported format): {short_error(exc)}") from None


def short_error(exc: BaseException) -> str:
    """One-line text of an exception, preferring GDAL's own message over rasterio's wrapper."""
    msg = str(exc)
    if "previous exception" in msg and exc.__cause__ is not None:
        msg = str(exc.__cause__)
    return " ".join(msg.split())[:200]


def _crs_of(src: Any) -> str | None:
    return None if src.crs is None else src.crs.to_wkt()


def open_scene(path: str | os.PathLike[str], max_pixels: int | None = DEFAULT_MAX_PIXELS) -> SceneInfo:
    """Open a scene raster and describe its grid.

    Args:
        path: Scene file.
        max_pixels: Largest declared size (width x height) accepted; ``None`` or 0 = no limit.

    Raises:
        InputError: If the file is missing, unreadable or corrupt, declares more than ``max_pixels`` pixels,
            stores them in blocks too large to read window by window, or holds complex numbers.
    """
    with _open(path, "scene") as src:
        check_declared_size(src, path, "scene", max_pixels)
        check_transform(src.transform, path, "scene")
        info = SceneInfo(
            path=str(Path(path)),
            width=src.width,
            height=src.height,
            count=src.count,
            dtype=str(src.dtypes[0]),
            crs=_crs_of(src),
            transform=tuple(src.transform)[:6],
            nodata=src.nodata,
            block_width=int(src.block_shapes[0][1]),
        )
        if len(set(src.dtypes)) != 1:
            raise InputError(path, f"scene bands have mixed dtypes {sorted(set(src.dtypes))}")
        if np.dtype(info.dtype).kind not in "biuf":
            raise InputError(path, f"scene bands are {info.dtype}; only integer and floating-point bands can be tiled")
        check_readable(src, path, "scene")
    return info


def check_transform(transform: Affine, path: str | os.PathLike[str], what: str) -> None:
    """Refuse a geotransform that cannot place pixels: a coefficient NaN or infinite, or pixels of zero area.

    Raises:
        InputError: Naming the file and the transform.
    """
    coefs = tuple(transform)[:6]
    if not all(math.isfinite(v) for v in coefs) or transform.determinant == 0:
        raise InputError(
            path,
            f"{what} has a degenerate geotransform {tuple(float(v) for v in coefs)} (pixel size 0 or not finite)",
        )


def check_declared_size(src: Any, path: str | os.PathLike[str], what: str, max_pixels: int | None = None) -> None:
    """Refuse a raster whose header declares more than ``max_pixels`` pixels or blocks of more than
    :data:`MAX_BLOCK_BYTES` (before any pixel is read: a few bytes of header can declare terabytes).

    Raises:
        InputError: Naming the file and its declared size.
    """
    n = int(src.width) * int(src.height)
    if max_pixels and n > max_pixels:
        raise InputError(
            path,
            f"{what} declares {src.width}x{src.height} = {n:,} pixels, more than {option('max_pixels')} "
            f"({max_pixels:,}); raise {option('max_pixels')} if it really is that large",
        )
    bh, bw = (int(v) for v in src.block_shapes[0])
    block = bh * bw * np.dtype(src.dtypes[0]).itemsize
    if block > MAX_BLOCK_BYTES:
        raise InputError(
            path,
            f"{what} stores its pixels in {bw}x{bh} blocks ({block / 2**30:.3g} GiB per band), too large to read "
            f"window by window; rewrite it tiled (e.g. gdal_translate -co TILED=YES)",
        )


def check_readable(src: Any, path: str | os.PathLike[str], what: str) -> None:
    """Read a few pixels (first, middle, last; each decodes one block) to catch truncated/corrupt rasters early.

    Raises:
        InputError: If decoding fails.
    """
    try:
        for row, col in {(0, 0), (src.height // 2, src.width // 2), (src.height - 1, src.width - 1)}:
            src.read(window=Window(col, row, 1, 1))
    except RasterioIOError as exc:
        raise InputError(path, f"cannot read {what} raster (corrupt): {short_error(exc)}") from None


# --------------------------------------------------------------------------- masks
@dataclass(frozen=True)
class MaskSpec:
    """How to read a mask on a scene's grid (picklable; workers open it with :class:`MaskReader`).

    Attributes:
        path: Mask file.
        kind: ``index``, ``color`` or ``vector``.
        scheme: Class scheme of the source mask.
        scene: The scene whose grid the mask is read on.
        resample: Whether the mask must be warped onto the scene grid (other CRS/resolution/extent).
        class_attribute: Attribute holding the class (vector masks).
        pixel_grid: Whether both are used on the bare pixel grid (non-georeferenced).
        notes: Remarks for the user (e.g. one of the pair is not georeferenced), shown as warnings.
        fill: Internal value of scene pixels no polygon covers (vector masks; default unknown).
        nodata: The index mask's own nodata value where it is not added to the scheme's unknown values
            (negative, fractional, NaN, infinite or above 255); pixels holding it are unknown.
    """

    path: str
    kind: str
    scheme: ClassScheme
    scene: SceneInfo
    resample: bool = False
    class_attribute: str = "class"
    pixel_grid: bool = False
    notes: tuple[str, ...] = field(default=())
    fill: int = IGNORE
    nodata: float | None = None


def _with_mask_nodata(
    scheme: ClassScheme, nodata: float | None, path: Path, notes: list[str]
) -> tuple[ClassScheme, float | None]:
    """How an index mask's own nodata value reads as unknown: ``(scheme, nodata for the reader)``.

    A nodata value that is a class value of the scheme stays that class (with a note for the user). A value
    0-255 is added to the scheme's unknown values (the lookup tables of uint8 masks then handle it); any other
    (negative, fractional, NaN, infinite, large) is returned for :class:`MaskReader` (:attr:`MaskSpec.nodata`),
    which compares pixels with it in the band's dtype, as GDAL does.
    """
    if nodata is None:
        return scheme, None
    integral = math.isfinite(nodata) and float(nodata).is_integer()
    if integral and int(nodata) in scheme.unknown_values:
        return scheme, None
    same = [c.name for c in scheme.classes if integral and c.value == int(nodata)]
    if same:
        notes.append(
            f"{path}: the mask's nodata value {int(nodata)} is class {same[0]!r} of scheme {scheme.name!r}; "
            "those pixels are kept as that class"
        )
        return scheme, None
    if integral and 0 <= nodata <= 255:
        return replace(scheme, unknown_values=(*scheme.unknown_values, int(nodata))), None
    return scheme, float(nodata)


def is_vector_path(path: str | os.PathLike[str]) -> bool:
    """Whether a path names a vector file (by suffix)."""
    return Path(path).suffix.lower() in VECTOR_SUFFIXES


def open_mask(
    path: str | os.PathLike[str],
    scene: SceneInfo,
    scheme: ClassScheme,
    *,
    kind: str = "auto",
    class_attribute: str = "class",
    vector_fill: str | None = None,
) -> MaskSpec:
    """Inspect a mask, decide how it is read on ``scene``'s grid, and check that the two overlap.

    Args:
        path: Mask file (raster or vector).
        scene: The scene (from :func:`open_scene`).
        scheme: Class scheme of the mask's values / colours / attribute.
        kind: ``auto`` (vector by suffix; rasters with 3+ bands are colour-coded, 1 band is an index mask),
            ``index``, ``color`` or ``vector``.
        class_attribute: Attribute with the class name or raw value (vector masks).
        vector_fill: Class (name or raw value) of scene pixels that no polygon of a vector mask covers;
            ``None`` = unknown. Ignored for raster masks.

    Returns:
        A :class:`MaskSpec`.

    Raises:
        InputError: Missing/corrupt file, wrong band count, no overlap with the scene, vector attribute missing
            or holding values outside the scheme, incompatible georeferencing.
    """
    if kind not in MASK_KINDS:
        raise InputError(path, f"unknown mask kind {kind!r}; use one of {', '.join(MASK_KINDS)}")
    p = Path(path)
    if kind == "vector" or (kind == "auto" and is_vector_path(p)):
        spec = _open_vector_mask(p, scene, scheme, class_attribute)
        return spec if vector_fill is None else replace(spec, fill=class_index(scheme, vector_fill))
    notes: list[str] = []
    with _open(p, "mask") as src:
        if kind == "auto":
            kind = "color" if src.count >= 3 else "index"
        if kind == "index" and src.count != 1:
            raise InputError(p, f"index mask must have 1 band, found {src.count}")
        if kind == "color" and src.count not in (3, 4):
            raise InputError(p, f"colour-coded mask must have 3 or 4 bands, found {src.count}")
        if kind == "color" and src.dtypes[0] != "uint8":
            raise InputError(p, f"colour-coded mask must be uint8, found {src.dtypes[0]}")
        if kind == "index" and np.dtype(src.dtypes[0]).kind not in "biuf":
            raise InputError(p, f"index mask must hold integer class values, found {src.dtypes[0]}")
        check_declared_size(src, p, "mask")
        check_readable(src, p, "mask")
        nodata = None
        if kind == "index":
            scheme, nodata = _with_mask_nodata(scheme, src.nodata, p, notes)
        mask_crs = _crs_of(src)
        if mask_crs is not None and scene.georeferenced:
            check_transform(src.transform, p, "mask")
        same_size = (src.width, src.height) == (scene.width, scene.height)
        if not scene.georeferenced or mask_crs is None:
            if scene.georeferenced != (mask_crs is not None):
                which = "mask" if scene.georeferenced else "scene"
                if not same_size:
                    raise InputError(
                        p,
                        f"{which} is not georeferenced and the sizes differ "
                        f"(scene {scene.width}x{scene.height}, mask {src.width}x{src.height}); "
                        "cannot align them",
                    )
                notes.append(f"{p}: {which} is not georeferenced; aligned on the pixel grid")
                return MaskSpec(str(p), kind, scheme, scene, False, class_attribute, False, tuple(notes), nodata=nodata)
            if not same_size:
                raise InputError(
                    p,
                    f"mask size {src.width}x{src.height} differs from scene size "
                    f"{scene.width}x{scene.height} and neither is georeferenced",
                )
            return MaskSpec(str(p), kind, scheme, scene, False, class_attribute, True, tuple(notes), nodata=nodata)
        same_grid = (
            same_size
            and CRS.from_wkt(mask_crs) == scene.rio_crs
            and src.transform.almost_equals(scene.affine, precision=1e-9 * max(1.0, abs(scene.affine.a)))
        )
        if not same_grid:
            _check_overlap(
                p,
                scene,
                grid_bounds(src.transform, src.width, src.height),
                src.crs,
                (src.transform, src.width, src.height),
            )
        return MaskSpec(str(p), kind, scheme, scene, not same_grid, class_attribute, False, tuple(notes), nodata=nodata)


def scene_bounds(scene: SceneInfo) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a scene in its CRS (see :func:`grid_bounds`)."""
    return grid_bounds(scene.affine, scene.width, scene.height)


def grid_bounds(transform: Affine, width: int, height: int) -> tuple[float, float, float, float]:
    """(left, bottom, right, top) of a ``width`` x ``height`` grid, with left <= right and bottom <= top whatever
    the orientation of its transform (south-up, mirrored and rotated grids included)."""
    corners = [transform @ (c, r) for c, r in ((0, 0), (width, 0), (0, height), (width, height))]
    xs, ys = [x for x, _ in corners], [y for _, y in corners]
    return min(xs), min(ys), max(xs), max(ys)


def _check_overlap(
    path: Path, scene: SceneInfo, bounds: Any, crs: Any, grid: tuple[Affine, int, int] | None = None
) -> None:
    """Raise unless the mask (``bounds`` in ``crs``) overlaps the scene.

    Bounding boxes are compared in the scene CRS; a raster mask's ``grid`` (transform, width, height) in the
    scene's own CRS is also compared exactly when either grid is rotated or sheared (the bounding boxes of two
    rotated rectangles that only touch overlap).
    """
    from rasterio.warp import transform_bounds

    try:
        left, bottom, right, top = transform_bounds(crs, scene.rio_crs, *bounds, densify_pts=21)
    except Exception as exc:
        raise InputError(path, f"cannot transform mask bounds to the scene CRS: {short_error(exc)}") from None
    sl, sb, sr, st = scene_bounds(scene)
    ox = min(right, sr) - max(left, sl)
    oy = min(top, st) - max(bottom, sb)
    overlap = ox > 0 and oy > 0 and all(map(math.isfinite, (left, bottom, right, top)))
    t = scene.affine
    if (
        overlap
        and grid is not None
        and (t.b or t.d or grid[0].b or grid[0].d)
        and CRS.from_user_input(crs) == scene.rio_crs
    ):
        from shapely.geometry import Polygon

        def quad(tr: Affine, w: int, h: int) -> Polygon:
            return Polygon([tr @ (0, 0), tr @ (w, 0), tr @ (w, h), tr @ (0, h)])

        shared = quad(t, scene.width, scene.height).intersection(quad(*grid)).area
        overlap = shared > 1e-6 * abs(t.determinant)  # more than a millionth of a scene pixel
    if not overlap:
        raise InputError(
            path,
            f"mask does not overlap scene {scene.path} "
            f"(mask bounds {tuple(round(v, 3) for v in (left, bottom, right, top))} vs "
            f"scene bounds {tuple(round(v, 3) for v in (sl, sb, sr, st))} in the scene CRS)",
        )


def _read_vector(path: Path) -> Any:
    import geopandas as gpd

    if not path.exists():
        raise InputError(path, "mask file not found")
    try:
        return gpd.read_file(path)
    except Exception as exc:
        raise InputError(path, f"cannot read vector mask: {short_error(exc)}") from None


def vector_class_values(
    gdf: Any, path: str | os.PathLike[str], scheme: ClassScheme, class_attribute: str
) -> np.ndarray:
    """Internal class values (uint8) of each feature of a vector mask.

    The attribute may hold class names or raw class values of the scheme.

    Raises:
        InputError: If the attribute is missing or holds names / values outside the scheme.
    """
    if class_attribute not in gdf.columns:
        cols = [c for c in gdf.columns if c != gdf.geometry.name]
        raise InputError(path, f"vector mask has no attribute {class_attribute!r} (attributes: {cols})")
    col = gdf[class_attribute]
    if col.isna().any():
        raise InputError(
            path, f"vector mask attribute {class_attribute!r} is empty for {int(col.isna().sum())} features"
        )
    if col.dtype.kind in "iuf":
        return scheme.encode(col.to_numpy(), path)
    names = col.astype(str).to_numpy()
    lookup = {n: i for i, n in enumerate(scheme.names)}
    lookup[scheme.unknown_name] = IGNORE
    bad = sorted(set(names) - set(lookup))
    if bad:
        counts = {b: int((names == b).sum()) for b in bad}
        raise InputError(
            path,
            f"class names not in scheme {scheme.name!r}: "
            + ", ".join(f"{b!r} ({n} features)" for b, n in counts.items()),
        )
    return np.array([lookup[n] for n in names], dtype=np.uint8)


def class_index(scheme: ClassScheme, name_or_value: str) -> int:
    """Internal value of a class given by name (:meth:`ClassScheme.index_of`) or by raw value.

    Raises:
        InputError: If the scheme has no such class.
    """
    key = str(name_or_value).strip()
    if key.lstrip("-").isdigit():
        for i, c in enumerate(scheme.classes):
            if c.value == int(key):
                return i
    return scheme.index_of(key)


def _open_vector_mask(path: Path, scene: SceneInfo, scheme: ClassScheme, class_attribute: str) -> MaskSpec:
    gdf = _read_vector(path)
    notes: list[str] = []
    vector_class_values(gdf, path, scheme, class_attribute)
    if len(gdf) == 0:
        raise InputError(path, "vector mask has no features")
    if scene.georeferenced and gdf.crs is None:
        notes.append(f"{path}: vector mask has no CRS; assuming the scene CRS")
    elif not scene.georeferenced and gdf.crs is not None:
        raise InputError(path, "vector mask has a CRS but the scene is not georeferenced; cannot place it")
    if scene.georeferenced:
        gdf = gdf.set_crs(scene.rio_crs, allow_override=True) if gdf.crs is None else gdf
        try:
            total = gdf.to_crs(scene.rio_crs).total_bounds
        except Exception as exc:
            raise InputError(path, f"cannot transform vector mask to the scene CRS: {short_error(exc)}") from None
        _check_overlap(path, scene, tuple(total), scene.rio_crs)
    else:
        left, bottom, right, top = gdf.total_bounds
        if right <= 0 or left >= scene.width or top <= 0 or bottom >= scene.height:
            raise InputError(path, f"vector mask does not overlap scene {scene.path} (pixel grid)")
    return MaskSpec(str(path), "vector", scheme, scene, False, class_attribute, not scene.georeferenced, tuple(notes))


# --------------------------------------------------------------------------- windowed reading
def clip_window(window: Window, width: int, height: int) -> tuple[Window, int, int] | None:
    """Intersect ``window`` with a ``width`` x ``height`` raster.

    Returns:
        ``(inner window, row offset in the window, col offset in the window)``, or ``None`` if disjoint.
    """
    c0 = max(int(window.col_off), 0)
    r0 = max(int(window.row_off), 0)
    c1 = min(int(window.col_off + window.width), width)
    r1 = min(int(window.row_off + window.height), height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0), r0 - int(window.row_off), c0 - int(window.col_off)


def read_padded(src: Any, window: Window, fill: Any, indexes: Any = None) -> np.ndarray:
    """Read a window that may extend past the raster, filling outside pixels with ``fill``.

    Returns:
        Array (C, h, w) (or (h, w) when ``indexes`` is an int).
    """
    h, w = int(window.height), int(window.width)
    bands = src.count if indexes is None else (1 if isinstance(indexes, int) else len(indexes))
    clipped = clip_window(window, src.width, src.height)
    if clipped is not None and (clipped[0].width, clipped[0].height) == (w, h):
        return src.read(indexes, window=window)
    shape = (h, w) if isinstance(indexes, int) else (bands, h, w)
    out = np.full(shape, fill, dtype=src.dtypes[0])
    if clipped is not None:
        inner, dr, dc = clipped
        data = src.read(indexes, window=inner)
        out[..., dr : dr + int(inner.height), dc : dc + int(inner.width)] = data
    return out


_LUTS: dict[ClassScheme, tuple[np.ndarray, np.ndarray]] = {}


def encode_fast(scheme: ClassScheme, raw: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """:meth:`ClassScheme.encode` with a cached 256-entry lookup table for uint8 masks (same result and errors)."""
    if raw.dtype != np.uint8:
        return scheme.encode(raw, path)
    full, ok = _lut(scheme)
    # all values valid when every value up to the maximum is (one cheap reduction instead of a lookup)
    if raw.size and not ok[: int(raw.max()) + 1].all() and not np.take(ok, raw).all():
        return scheme.encode(raw, path)  # raises with the offending values and counts
    return apply_lut(full, raw)


def integral_values(scheme: ClassScheme, raw: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """The values of a floating-point index mask as int64 (integer arrays are returned as they are).

    Raises:
        InputError: If a value is not an integer (NaN, infinite or fractional) or beyond any class value; the
            message lists the values (up to 10) and their pixel counts.
    """
    if raw.dtype.kind != "f":
        return raw
    with np.errstate(invalid="ignore"):
        bad = ~np.isfinite(raw)
        bad |= np.where(bad, False, raw != np.trunc(raw))
    if bad.any():
        listed = _value_counts(raw[bad])
        raise InputError(path, f"mask has non-integer values (an index mask holds class values): {listed}")
    far = np.abs(raw) > 2**31
    if far.any():
        raise InputError(path, f"mask values outside class scheme {scheme.name!r}: " + _value_counts(raw[far]))
    return raw.astype(np.int64)


def _value_counts(values: np.ndarray, top: int = 10) -> str:
    """``"nan (3 px), 1.5 (1 px)"``: the distinct values of ``values`` (NaN counted once) and their counts."""
    vals, counts = np.unique(values, return_counts=True, equal_nan=True)
    text = ", ".join(f"{v:g} ({int(c)} px)" for v, c in zip(vals[:top].tolist(), counts[:top].tolist()))
    return text + (f" and {len(vals) - top} more" if len(vals) > top else "")


def apply_lut(lut: np.ndarray, raw: np.ndarray) -> np.ndarray:
    """``lut[raw]`` for a 256-entry uint8 table and a uint8 array, with OpenCV's ``cv2.LUT`` (5x faster than
    numpy's indexing, which widens every index to 64 bits) where the array shape allows."""
    if raw.ndim == 2 and raw.size:
        import cv2  # installed with albumentations; imported on first use (0.1 s)

        return cv2.LUT(np.ascontiguousarray(raw), lut)
    return np.take(lut, raw)


def decode_colors_fast(scheme: ClassScheme, rgb: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
    """:meth:`ClassScheme.decode_colors` for (3, H, W) uint8 arrays via a sorted palette (same result and errors)."""
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[0] != 3:
        return scheme.decode_colors(rgb, path)
    colors = [c.color for c in scheme.classes] + [scheme.unknown_color]
    values = np.array([*list(range(scheme.num_classes)), IGNORE], dtype=np.uint8)
    keys = np.array([(r << 16) | (g << 8) | b for r, g, b in colors], dtype=np.int32)
    order = np.argsort(keys)
    keys, values = keys[order], values[order]
    key = (rgb[0].astype(np.int32) << 16) | (rgb[1].astype(np.int32) << 8) | rgb[2]
    pos = np.searchsorted(keys, key).clip(0, len(keys) - 1)
    if not np.array_equal(keys[pos], key):
        return scheme.decode_colors(rgb, path)  # raises, listing the unknown colours and their counts
    return values[pos]


def _lut(scheme: ClassScheme) -> tuple[np.ndarray, np.ndarray]:
    """(raw uint8 -> internal value, raw uint8 -> valid) lookup tables of a scheme (cached)."""
    if scheme not in _LUTS:
        vals = [v for v in range(256) if _valid_raw(scheme, v)]
        full = np.zeros(256, np.uint8)
        ok = np.zeros(256, bool)
        full[vals] = scheme.encode(np.array(vals, dtype=np.uint8))
        ok[vals] = True
        _LUTS[scheme] = (full, ok)
    return _LUTS[scheme]


def _valid_raw(scheme: ClassScheme, v: int) -> bool:
    return v in scheme.unknown_values or any(c.value == v for c in scheme.classes)


class MaskReader:
    """Reads a :class:`MaskSpec` window by window on the scene grid, in the internal convention.

    Use as a context manager; windows may extend past the scene (outside pixels are unknown).
    """

    def __init__(self, spec: MaskSpec) -> None:
        self.spec = spec
        self._src: Any = None
        self._vrt: Any = None
        self._gdf: Any = None
        self._values: np.ndarray | None = None

    def __enter__(self) -> MaskReader:
        spec = self.spec
        if spec.kind == "vector":
            gdf = _read_vector(Path(spec.path))
            if spec.scene.georeferenced:
                gdf = gdf.set_crs(spec.scene.rio_crs, allow_override=True) if gdf.crs is None else gdf
                gdf = gdf.to_crs(spec.scene.rio_crs)
            self._values = vector_class_values(gdf, spec.path, spec.scheme, spec.class_attribute)
            self._gdf = gdf.reset_index(drop=True)
            _ = self._gdf.sindex
            return self
        self._src = _open(spec.path, "mask")
        if spec.resample:
            self._vrt = WarpedVRT(
                self._src,
                crs=spec.scene.rio_crs,
                transform=spec.scene.affine,
                width=spec.scene.width,
                height=spec.scene.height,
                resampling=Resampling.nearest,
                src_nodata=None,
                add_alpha=True,
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._vrt is not None:
            self._vrt.close()
        if self._src is not None:
            self._src.close()

    def read(self, window: Window) -> np.ndarray:
        """Read the mask on the scene-grid ``window`` as uint8 (h, w), internal convention.

        Raises:
            InputError: If raw values / colours are outside the scheme.
        """
        spec = self.spec
        h, w = int(window.height), int(window.width)
        if spec.kind == "vector":
            return self._rasterize(window)
        ds = self._vrt if self._vrt is not None else self._src
        n = 3 if spec.kind == "color" else 1
        clipped = clip_window(window, spec.scene.width, spec.scene.height)
        out = np.full((h, w), IGNORE, dtype=np.uint8)
        if clipped is None:
            return out
        inner, dr, dc = clipped
        try:
            if self._vrt is not None:
                data = ds.read([*list(range(1, n + 1)), ds.count], window=inner)
                valid = data[-1] > 0
                data = data[:-1]
            else:
                data = ds.read(list(range(1, n + 1)), window=inner)
                valid = None
        except RasterioIOError as exc:
            raise InputError(spec.path, f"cannot read mask raster (corrupt): {short_error(exc)}") from None
        if spec.kind == "color":
            if valid is not None:
                data = np.where(valid[None], data, np.array(spec.scheme.unknown_color, np.uint8)[:, None, None])
            enc = decode_colors_fast(spec.scheme, data, spec.path)
        else:
            raw = data[0]
            if spec.nodata is not None:
                holes = np.isnan(raw) if math.isnan(spec.nodata) else raw == spec.nodata
                valid = ~holes if valid is None else valid & ~holes
            if valid is not None and not valid.all():
                # pixels outside the mask's extent (or holding its nodata value) get any valid raw value, then
                # become unknown below
                raw = np.where(valid, raw, spec.scheme.classes[0].value)
            enc = encode_fast(spec.scheme, integral_values(spec.scheme, raw, spec.path), spec.path)
            if valid is not None:
                enc[~valid] = IGNORE
        out[dr : dr + int(inner.height), dc : dc + int(inner.width)] = enc
        return out

    def read_counts(self, window: Window, col_offsets: list[int], size: int) -> list[np.ndarray] | None:
        """Internal-value histograms (length 256) of ``size``-wide tiles at ``col_offsets`` inside ``window``.

        A fast path for uint8 index masks on the scene grid: histograms of the raw values are mapped through
        the scheme, so the mask is not encoded pixel by pixel. Returns ``None`` where it does not apply.

        Raises:
            InputError: If raw values outside the scheme occur.
        """
        spec = self.spec
        if spec.kind != "index" or self._vrt is not None or self._src.dtypes[0] != "uint8" or spec.nodata is not None:
            return None
        if clip_window(window, spec.scene.width, spec.scene.height) != (window, 0, 0):
            return None  # padded border windows take the general path
        full, ok = _lut(spec.scheme)
        try:
            raw = self._src.read(1, window=window)
        except RasterioIOError as exc:
            raise InputError(spec.path, f"cannot read mask raster (corrupt): {short_error(exc)}") from None
        out = []
        for c in col_offsets:
            h = np.bincount(raw[:, c - int(window.col_off) : c - int(window.col_off) + size].ravel(), minlength=256)
            if h[~ok].any():
                encode_fast(spec.scheme, raw, spec.path)  # raises with the offending values and counts
            mapped = np.zeros(256, np.int64)
            np.add.at(mapped, full, h)
            out.append(mapped)
        return out

    def _rasterize(self, window: Window) -> np.ndarray:
        from rasterio.features import rasterize
        from rasterio.windows import bounds as win_bounds
        from shapely.geometry import box

        spec = self.spec
        h, w = int(window.height), int(window.width)
        if spec.pixel_grid:
            transform = Affine.translation(window.col_off, window.row_off)
            bbox = box(window.col_off, window.row_off, window.col_off + w, window.row_off + h)
        else:
            transform = rasterio.windows.transform(window, spec.scene.affine)
            bbox = box(*win_bounds(window, spec.scene.affine))
        idx = np.sort(self._gdf.sindex.query(bbox, predicate="intersects"))
        out = np.full((h, w), spec.fill, dtype=np.uint8)
        if len(idx):
            geoms = self._gdf.geometry.values[idx]
            vals = self._values[idx]  # type: ignore[index]
            rasterize(
                zip(geoms, vals.tolist()), out_shape=(h, w), transform=transform, fill=spec.fill, out=out, dtype="uint8"
            )
        # pixels outside the scene are unknown
        clipped = clip_window(window, spec.scene.width, spec.scene.height)
        if clipped is None:
            out[:] = IGNORE
        else:
            inner, dr, dc = clipped
            keep = np.zeros((h, w), bool)
            keep[dr : dr + int(inner.height), dc : dc + int(inner.width)] = True
            out[~keep] = IGNORE
        return out
