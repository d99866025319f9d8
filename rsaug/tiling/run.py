"""Cutting scenes and masks into a tile set: tile windows, unknown-fraction filter, splits, parallel writing.

The entry point is :func:`tile_scenes`, which the ``rsaug tile`` command wraps::

    from rsaug.tiling.run import TileOptions, tile_scenes
    index = tile_scenes([("scene.tif", "mask.tif")], "OUT", TileOptions(tile_size=256, scheme="chesapeake"))
    index.attrs["summary"]   # kept/dropped counts, per split, class shares

The run has two passes. Pass 1 reads only the masks (window by window), validates every value against the
class scheme, computes the unknown fraction and class counts of every candidate tile, filters and assigns
splits; nothing is written until every input has been checked, so bad input leaves no output. Pass 2 reads
scene and mask windows (one row of tiles at a time, in worker processes) and writes the tiles through
:func:`rsaug.io.tileset.write_tile` (atomic). The index and the description are written last.

Tile ids are ``<scene stem>_r<row offset>_c<col offset>`` (pixel offsets of the tile in its scene).
"""
from __future__ import annotations

import csv
import math
import os
import shutil
import time
import warnings
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from rsaug.core.classes import IGNORE, ClassScheme, get_scheme
from rsaug.core.errors import InputError
from rsaug.core.files import read_json, remove_temporaries, write_json
from rsaug.io.rasters import (
    MaskReader,
    MaskSpec,
    SceneInfo,
    class_index,
    open_mask,
    open_scene,
    _short,
    read_padded,
)
from rsaug.io.tileset import (
    DEFAULT_COMPRESS_LEVEL,
    DESCRIPTION_FILE,
    INDEX_COLUMNS,
    count_column,
    write_description,
    write_index,
    write_tile,
)

if TYPE_CHECKING:
    import geopandas as gpd

CONFIG_FILE = "tile-config.json"
RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")
SPLIT_NAMES = ("train", "val", "test")
UNIT_MAX_WIDTH = 4096  # pixels of scene width read at once per work unit (tiled sources)
UNIT_MAX_BYTES = 64 * 2**20  # striped sources: whole rows of tiles up to this buffer size (strips decoded once)


class TilingWarning(UserWarning):
    """Non-fatal remarks about the inputs (e.g. non-georeferenced scenes)."""


@dataclass
class TileOptions:
    """Options of a tiling run (saved as ``tile-config.json`` and in ``tileset.json``).

    Attributes:
        tile_size: Tile side in pixels.
        stride: Step between tiles in pixels (``None`` = ``tile_size``, no overlap).
        max_unknown: Tiles with a larger fraction of unknown mask pixels are dropped.
        scheme: Class scheme name or JSON file of the source masks.
        split: Split ratios ``train:val:test``.
        seed: Seed of the split.
        reserve: Number of tiles set aside as the ``reserved`` split (e.g. for ablations), before splitting.
        split_mode: ``random`` (tile-level, as the paper) or ``blocked`` (spatial blocks; tiles overlapping a
            tile of another split are dropped so overlapping tiles never straddle splits).
        block_size: Block side in pixels for ``blocked`` (``None`` = 4 tiles).
        edge: ``drop`` partial border tiles or ``pad`` them (image with nodata/0, mask with unknown).
        mask_kind: ``auto``, ``index``, ``color`` or ``vector``.
        class_attribute: Attribute of vector masks holding the class name or raw value.
        vector_fill: Class (name or raw value) given to scene pixels no polygon of a vector mask covers
            (``None`` = unknown).
        compress: GeoTIFF compression of the tiles.
        compress_level: Deflate (1-12) / zstd (1-22) level of the tiles (ignored for ``lzw`` / ``none``).
    """

    tile_size: int = 256
    stride: int | None = None
    max_unknown: float = 0.8
    scheme: str = "gid15"
    split: str = "4:1:1"
    seed: int = 0
    reserve: int = 0
    split_mode: str = "random"
    block_size: int | None = None
    edge: str = "drop"
    mask_kind: str = "auto"
    class_attribute: str = "class"
    vector_fill: str | None = None
    compress: str = "deflate"
    compress_level: int = DEFAULT_COMPRESS_LEVEL

    @property
    def step(self) -> int:
        """Effective stride."""
        return self.stride or self.tile_size

    def validate(self) -> tuple[float, float, float]:
        """Check the options; returns the parsed split ratios.

        Raises:
            InputError: On an invalid value.
        """
        if int(self.tile_size) < 1:
            raise InputError(None, f"tile size must be positive, got {self.tile_size}")
        if self.stride is not None and int(self.stride) < 1:
            raise InputError(None, f"stride must be positive, got {self.stride}")
        if not 0.0 <= float(self.max_unknown) <= 1.0:
            raise InputError(None, f"--max-unknown must be within 0..1, got {self.max_unknown}")
        if int(self.reserve) < 0:
            raise InputError(None, f"--reserve must be >= 0, got {self.reserve}")
        if self.split_mode not in ("random", "blocked"):
            raise InputError(None, f"split mode must be 'random' or 'blocked', got {self.split_mode!r}")
        if self.edge not in ("drop", "pad"):
            raise InputError(None, f"edge policy must be 'drop' or 'pad', got {self.edge!r}")
        top = {"deflate": 12, "zstd": 22}.get(self.compress)
        if top is not None and not 1 <= int(self.compress_level) <= top:
            raise InputError(None, f"--compress-level for {self.compress} must be within 1..{top}, "
                                   f"got {self.compress_level}")
        if self.block_size is not None and int(self.block_size) < 1:
            raise InputError(None, f"block size must be positive, got {self.block_size}")
        return parse_split(self.split)


def parse_split(spec: str) -> tuple[float, float, float]:
    """Parse ``"4:1:1"`` (train:val:test; also ``"8:2"`` = no test split) into ratios.

    Raises:
        InputError: If the spec is malformed, negative, or all zero.
    """
    parts = str(spec).replace("/", ":").split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(None, f"invalid split spec {spec!r}; expected train:val:test such as 4:1:1") from None
    if not 1 <= len(vals) <= 3 or any(v < 0 or not math.isfinite(v) for v in vals) or sum(vals) <= 0:
        raise InputError(None, f"invalid split spec {spec!r}; expected up to three non-negative numbers "
                               "train:val:test with a positive sum, such as 4:1:1")
    vals += [0.0] * (3 - len(vals))
    return (vals[0], vals[1], vals[2])


# --------------------------------------------------------------------------- pairs
def _raster_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)


def find_pairs(scene: str | os.PathLike[str], mask: str | os.PathLike[str],
               mask_suffix: str = "", scene_suffix: str = "") -> list[tuple[Path, Path]]:
    """Resolve SCENE and MASK arguments into scene/mask pairs.

    Files are used as one pair. Directories are matched by stem: a scene ``<key><scene_suffix>.<ext>`` (only
    files whose stem ends with ``scene_suffix`` are scenes) is paired with the file of the mask directory whose
    stem is ``<key><mask_suffix>``, whatever its extension (vector files included). GID: ``mask_suffix="_15label"``;
    Chesapeake (one directory): ``scene_suffix="_naip-new", mask_suffix="_lc"``.

    Raises:
        InputError: Missing paths, a file paired with a directory, or scenes without a mask.
    """
    s, m = Path(scene), Path(mask)
    for p, what in ((s, "scene"), (m, "mask")):
        if not p.exists():
            raise InputError(p, f"{what} not found")
    if s.is_file() and m.is_file():
        return [(s, m)]
    if s.is_dir() != m.is_dir():
        kind = ("directory", "file") if m.is_dir() else ("file", "directory")
        raise InputError(m, f"mask is a {kind[0]} but scene {s} is a {kind[1]}; SCENE and MASK must both be "
                            "files or both be directories")
    scenes = [p for p in _raster_files(s) if p.stem.endswith(scene_suffix)]
    if s.resolve() == m.resolve() and mask_suffix == scene_suffix:
        raise InputError(m, "SCENE and MASK are the same directory: give --scene-suffix and --mask-suffix")
    if not scenes:
        raise InputError(s, f"no raster files (.tif, .png, ...) named '*{scene_suffix}.*' in scene directory")
    by_stem: dict[str, Path] = {}
    for p in sorted(m.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            by_stem.setdefault(p.stem, p)
    pairs, missing = [], []
    for sc in scenes:
        key = sc.stem[: len(sc.stem) - len(scene_suffix)]
        mk = by_stem.get(key + mask_suffix)
        (missing.append(sc.name) if mk is None else pairs.append((sc, mk)))
    if missing:
        raise InputError(m, f"no mask '<stem>{mask_suffix}.*' for {len(missing)} scene(s), e.g. {missing[0]}")
    return pairs


def read_pairs_csv(path: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Read scene/mask pairs from a CSV (columns ``scene,mask``, header optional; relative to the CSV).

    Raises:
        InputError: If the CSV is missing, malformed or empty.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "pairs CSV not found")
    try:
        rows = [r for r in csv.reader(p.read_text().splitlines()) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(p, f"cannot read pairs CSV: {exc}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["scene", "mask"]:
        rows = rows[1:]
    if not rows:
        raise InputError(p, "pairs CSV lists no pairs")
    pairs = []
    for i, r in enumerate(rows, 1):
        if len(r) < 2:
            raise InputError(p, f"row {i} needs two columns scene,mask")
        sc, mk = (Path(c.strip()) for c in r[:2])
        pairs.append((sc if sc.is_absolute() else p.parent / sc, mk if mk.is_absolute() else p.parent / mk))
    return pairs


# --------------------------------------------------------------------------- windows
def tile_windows(width: int, height: int, size: int, stride: int, edge: str = "drop") -> list[tuple[int, int]]:
    """Top-left ``(row_off, col_off)`` of every tile of a ``width`` x ``height`` scene, row-major.

    With ``edge="drop"`` only complete tiles are returned; with ``"pad"`` the grid is extended so every
    pixel is covered (border tiles extend past the scene).
    """

    def offsets(n: int) -> list[int]:
        if edge == "drop":
            return list(range(0, n - size + 1, stride)) if n >= size else []
        last = max(n - size, 0)
        offs = list(range(0, last + 1, stride))
        while offs[-1] + size < n:
            offs.append(offs[-1] + stride)
        return offs

    return [(r, c) for r in offsets(height) for c in offsets(width)]


def count_partial(width: int, height: int, size: int, stride: int) -> int:
    """Number of partial border tiles a ``pad`` grid has beyond the ``drop`` grid."""
    return len(tile_windows(width, height, size, stride, "pad")) - len(tile_windows(width, height, size, stride))


# --------------------------------------------------------------------------- work units
@dataclass
class _Unit:
    scene_idx: int
    tiles: list[tuple[int, int]]  # (row_off, col_off), same row_off
    keep: list[bool] = field(default_factory=list)


def _units(scene_idx: int, windows: list[tuple[int, int]], size: int,
           max_width: int = UNIT_MAX_WIDTH) -> list[_Unit]:
    """Group the windows of one scene into row-chunks whose union is at most ~``max_width`` wide."""
    units: list[_Unit] = []
    by_row: dict[int, list[tuple[int, int]]] = {}
    for r, c in windows:
        by_row.setdefault(r, []).append((r, c))
    for r in sorted(by_row):
        cur: list[tuple[int, int]] = []
        for t in by_row[r]:
            if cur and t[1] + size - cur[0][1] > max(max_width, size):
                units.append(_Unit(scene_idx, cur))
                cur = []
            cur.append(t)
        if cur:
            units.append(_Unit(scene_idx, cur))
    return units


def _union(tiles: list[tuple[int, int]], size: int) -> Window:
    r = tiles[0][0]
    c0 = min(t[1] for t in tiles)
    c1 = max(t[1] for t in tiles) + size
    return Window(c0, r, c1 - c0, size)


# GDAL checks the free disk space before creating every tile file; the tile set's size is known to be small
_GDAL_WRITE_OPTIONS = {"CHECK_DISK_FREE_SPACE": False}

# Worker state (set per process by the pool initializer, or in-process for workers == 1).
_STATE: dict[str, Any] = {}


def _init_worker(state: dict[str, Any]) -> None:
    _STATE.clear()
    _STATE.update(state)
    env = rasterio.Env(**_GDAL_WRITE_OPTIONS)  # one GDAL environment per worker instead of one per open
    env.__enter__()
    _STATE["_env"] = env


def _stats_unit(unit: _Unit) -> list[tuple[float, np.ndarray]]:
    """Pass 1: unknown fraction and class counts of every tile of a unit (masks only)."""
    spec: MaskSpec = _STATE["masks"][unit.scene_idx]
    size: int = _STATE["size"]
    k = spec.scheme.num_classes
    win = _union(unit.tiles, size)
    with MaskReader(spec) as reader:
        hists = reader.read_counts(win, [c for _, c in unit.tiles], size)
        if hists is not None:
            return [(float(h[IGNORE]) / (size * size), h[:k].astype(np.int64)) for h in hists]
        mask = reader.read(win)
    out = []
    for _, c in unit.tiles:
        m = mask[:, c - int(win.col_off): c - int(win.col_off) + size]
        counts = np.bincount(m.ravel(), minlength=256)
        out.append((float(counts[IGNORE]) / m.size, counts[:k].astype(np.int64)))
    return out


def _write_unit(unit: _Unit) -> tuple[int, int]:
    """Pass 2: write the kept tiles of a unit; returns (written, skipped because they exist)."""
    scene: SceneInfo = _STATE["scenes"][unit.scene_idx]
    spec: MaskSpec = _STATE["masks"][unit.scene_idx]
    size: int = _STATE["size"]
    out: Path = _STATE["out"]
    resume: bool = _STATE["resume"]
    compress: str = _STATE["compress"]
    level: int = _STATE["compress_level"]
    todo = []
    skipped = 0
    for (r, c), keep in zip(unit.tiles, unit.keep):
        if not keep:
            continue
        tid = tile_id(scene, r, c)
        img_p, msk_p = out / "images" / f"{tid}.tif", out / "masks" / f"{tid}.tif"
        if resume and img_p.exists() and msk_p.exists():
            skipped += 1
            continue
        todo.append((r, c, img_p, msk_p))
    if not todo:
        return 0, skipped
    win = _union([(r, c) for r, c, _, _ in todo], size)
    fill = scene.nodata if scene.nodata is not None else 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(scene.path) as src:
                image = read_padded(src, win, fill)
    except RasterioIOError as exc:
        raise InputError(scene.path, f"cannot read scene raster (corrupt): {_short(exc)}") from None
    with MaskReader(spec) as reader:
        mask = reader.read(win)
    crs = scene.rio_crs
    scheme = spec.scheme
    for r, c, img_p, msk_p in todo:
        dc = c - int(win.col_off)
        transform = rasterio.windows.transform(Window(c, r, size, size), scene.affine) if crs is not None else None
        # views: both writers copy (the fast one while applying the predictor)
        write_tile(img_p, image[:, :, dc:dc + size], crs=crs, transform=transform,
                   compress=compress, compress_level=level)
        write_tile(msk_p, mask[:, dc:dc + size], crs=crs, transform=transform,
                   is_mask=True, scheme=scheme, compress=compress,
                   compress_level=level)
    return len(todo), skipped


def tile_id(scene: SceneInfo, row_off: int, col_off: int) -> str:
    """Stable tile id ``<scene stem>_r<row offset>_c<col offset>``."""
    return f"{scene.stem}_r{row_off}_c{col_off}"


class _Runner:
    """Runs work units in order, in-process (``workers <= 1``) or in one pool of worker processes that serves
    both passes (forked once, each worker with its own GDAL environment)."""

    def __init__(self, state: dict[str, Any], workers: int, n_units: int) -> None:
        self.state = state
        self.workers = workers if n_units > 1 else 1
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Runner:
        if self.workers <= 1:
            _init_worker(self.state)  # this process is the worker
        else:
            import multiprocessing as mp

            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(self.state,))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        else:
            _STATE.pop("_env").__exit__(*exc)
            _STATE.clear()

    def map(self, func: Any, units: list[_Unit], bar: Any, while_waiting: Any = None) -> list[Any]:
        """``[func(u) for u in units]``; ``while_waiting()`` runs in this process once the work is queued."""
        results: list[Any] = []
        if self._pool is None:
            if while_waiting is not None:
                while_waiting()
            for u in units:
                results.append(func(u))
                bar.update(len(u.tiles))
            return results
        chunk = max(1, min(4, len(units) // (self.workers * 16)))  # small chunks: balanced tail
        it = self._pool.map(func, units, chunksize=chunk)  # submits everything now
        if while_waiting is not None:
            while_waiting()
        for u, res in zip(units, it):
            results.append(res)
            bar.update(len(u.tiles))
        return results


def _import_index_libraries() -> None:
    """Import geopandas/shapely (a third of the start-up time) while the workers already read masks."""
    import geopandas  # noqa: F401
    import shapely.geometry  # noqa: F401


# --------------------------------------------------------------------------- splits
def assign_random(n: int, ratios: Sequence[float], reserve: int, seed: int) -> np.ndarray:
    """Seeded random split of ``n`` tiles: ``reserve`` tiles first, the rest by ``ratios`` (largest remainder).

    Returns:
        Array of split names (``train``/``val``/``test``/``reserved``).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    out = np.empty(n, dtype=object)
    reserve = min(reserve, n)
    out[perm[:reserve]] = "reserved"
    counts = _split_counts(n - reserve, ratios)
    start = reserve
    for name, cnt in zip(SPLIT_NAMES, counts):
        out[perm[start:start + cnt]] = name
        start += cnt
    return out


def _split_counts(m: int, ratios: Sequence[float]) -> list[int]:
    total = float(sum(ratios))
    exact = [m * r / total for r in ratios]
    counts = [int(math.floor(e)) for e in exact]
    order = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: m - sum(counts)]:
        counts[i] += 1
    return counts


def assign_blocked(block_keys: Sequence[Any], ratios: Sequence[float], reserve: int, seed: int) -> np.ndarray:
    """Seeded split of whole spatial blocks (tiles sharing a key always share a split).

    Blocks are shuffled; the first ones fill ``reserve`` tiles, then each block goes to the split furthest
    below its target tile count.
    """
    keys = list(block_keys)
    uniq = sorted(set(keys))
    sizes = {k: 0 for k in uniq}
    for k in keys:
        sizes[k] += 1
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    split_of: dict[Any, str] = {}
    n_res = 0
    rest = []
    for k in order:
        if n_res < reserve:
            split_of[k] = "reserved"
            n_res += sizes[k]
        else:
            rest.append(k)
    m = sum(sizes[k] for k in rest)
    total = float(sum(ratios))
    targets = [m * r / total for r in ratios]
    filled = [0, 0, 0]
    for k in rest:
        i = max(range(3), key=lambda j: (targets[j] - filled[j], -j) if ratios[j] > 0 else (-math.inf, -j))
        split_of[k] = SPLIT_NAMES[i]
        filled[i] += sizes[k]
    return np.array([split_of[k] for k in keys], dtype=object)


def overlapping_pairs(footprints: gpd.GeoSeries, groups: Sequence[Any] | None = None) -> list[tuple[int, int]]:
    """Index pairs (i < j) of footprints that overlap with positive area (only within the same group)."""
    if len(footprints) < 2:
        return []
    left, right = footprints.sindex.query(footprints.values, predicate="intersects")
    sel = left < right
    left, right = left[sel], right[sel]
    if groups is not None:
        g = np.asarray(groups, dtype=object)
        same = g[left] == g[right]
        left, right = left[same], right[same]
    if len(left) == 0:
        return []
    a = footprints.values[left]
    b = footprints.values[right]
    inter = np.asarray(a.intersection(b).area if hasattr(a, "intersection") else [x.intersection(y).area
                                                                                for x, y in zip(a, b)])
    ref = np.minimum(np.asarray(a.area), np.asarray(b.area))
    ok = inter > 1e-9 * ref
    return list(zip(left[ok].tolist(), right[ok].tolist()))


# --------------------------------------------------------------------------- output directory
def _prepare_output(out: Path, overwrite: bool, resume: bool) -> str:
    """Check the output directory; returns ``new``, ``resume`` or ``overwrite``.

    Raises:
        InputError: If it is a file, or non-empty without overwrite/resume, or not a tile set to overwrite.
    """
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    is_tileset = (out / DESCRIPTION_FILE).exists() or (out / CONFIG_FILE).exists()
    if resume:
        if not (out / CONFIG_FILE).exists():
            raise InputError(out, f"cannot resume: no {CONFIG_FILE} from an earlier rsaug tile run")
        return "resume"
    if overwrite:
        if not is_tileset:
            raise InputError(out, "output directory is not empty and not an rsaug tile set; refusing to "
                                  "overwrite it")
        return "overwrite"
    raise InputError(out, "output directory is not empty; use --overwrite to replace it or --resume to "
                          "continue an interrupted run")


# --------------------------------------------------------------------------- main entry point
def tile_scenes(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    out: str | os.PathLike[str],
    options: TileOptions | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    **overrides: Any,
) -> gpd.GeoDataFrame:
    """Tile scene/mask pairs into a tile set at ``out`` and return its index.

    Args:
        pairs: ``(scene, mask)`` paths (see :func:`find_pairs`, :func:`read_pairs_csv`).
        out: Output tile-set directory (must be absent or empty unless ``overwrite``/``resume``).
        options: Tiling options; keyword ``overrides`` replace single fields (``tile_size=224``...).
        workers: Worker processes (1 = in-process).
        overwrite: Replace an existing tile set at ``out``.
        resume: Continue an interrupted run with the same inputs and options (existing tiles are kept).
        progress: Show tqdm progress bars.

    Returns:
        The tile index (one row per written tile, footprints in the scene CRS); ``.attrs["summary"]`` holds the
        run summary (kept/dropped and why, per split, class pixel shares, timings).

    Raises:
        InputError: For any bad input; nothing is written in that case (a fresh output directory is removed).
    """
    t0 = time.perf_counter()
    opts = options if options is not None else TileOptions()
    if overrides:
        opts = TileOptions(**{**asdict(opts), **overrides})
    ratios = opts.validate()
    size, step = int(opts.tile_size), int(opts.step)
    scheme = get_scheme(opts.scheme)
    if opts.vector_fill is not None:
        class_index(scheme, opts.vector_fill)  # an unknown class is an error even when no mask is a vector
    out = Path(out)
    pairs = [(Path(os.path.abspath(s)), Path(os.path.abspath(m))) for s, m in pairs]
    if not pairs:
        raise InputError(None, "no scene/mask pairs given")
    mode = _prepare_output(out, overwrite, resume)

    # ---- open and check every input before anything is written
    scenes: list[SceneInfo] = []
    masks: list[MaskSpec] = []
    stems: dict[str, Path] = {}
    notes: list[str] = []
    for s, m in pairs:
        sc = open_scene(s)
        if sc.stem in stems:
            raise InputError(s, f"two scenes share the stem {sc.stem!r} ({stems[sc.stem]}); tile ids would clash")
        stems[sc.stem] = s
        if scenes and (sc.count, sc.dtype) != (scenes[0].count, scenes[0].dtype):
            raise InputError(s, f"scene has {sc.count} bands of {sc.dtype}, but {scenes[0].path} has "
                                f"{scenes[0].count} of {scenes[0].dtype}; one tile set needs one pixel format")
        if scenes and sc.georeferenced != scenes[0].georeferenced:
            raise InputError(s, "georeferenced and non-georeferenced scenes cannot be mixed in one tile set")
        if opts.edge == "drop" and (sc.width < size or sc.height < size):
            raise InputError(s, f"tile size {size} is larger than the scene ({sc.width}x{sc.height}); use a "
                                "smaller --tile-size or --edge pad")
        spec = open_mask(m, sc, scheme, kind=opts.mask_kind, class_attribute=opts.class_attribute,
                         vector_fill=opts.vector_fill)
        notes.extend(spec.notes)
        scenes.append(sc)
        masks.append(spec)
    non_geo = [sc.path for sc in scenes if not sc.georeferenced]
    if non_geo:
        warnings.warn(f"{len(non_geo)} scene(s) not georeferenced (e.g. {non_geo[0]}): tiled on the pixel grid, "
                      "tiles carry no CRS", TilingWarning, stacklevel=2)
    for n in notes:
        warnings.warn(n, TilingWarning, stacklevel=2)

    index_crs = scenes[0].rio_crs
    sources = [{"scene": str(sc.path), "mask": str(mk.path), "mask_kind": mk.kind, "resampled": mk.resample,
                "width": sc.width, "height": sc.height, "crs": None if sc.rio_crs is None else sc.rio_crs.to_string()}
               for sc, mk in zip(scenes, masks)]
    config = {"options": asdict(opts), "sources": sources}
    if mode == "resume":
        try:
            old = read_json(out / CONFIG_FILE)
        except (OSError, ValueError) as exc:
            raise InputError(out / CONFIG_FILE, f"cannot read earlier run configuration: {exc}") from None
        if old != _jsonable(config):
            raise InputError(out / CONFIG_FILE, "cannot resume: the inputs or options differ from the "
                                                "interrupted run; use --overwrite to start again")

    # ---- pass 1: masks only -> unknown fraction, class counts
    from tqdm.auto import tqdm

    all_units: list[_Unit] = []
    partial = 0
    for i, sc in enumerate(scenes):
        wins = tile_windows(sc.width, sc.height, size, step, opts.edge)
        if not wins:
            raise InputError(sc.path, f"tile size {size} is larger than the scene ({sc.width}x{sc.height})")
        if opts.edge == "drop":
            partial += count_partial(sc.width, sc.height, size, step)
        max_width = UNIT_MAX_WIDTH
        row_bytes = sc.count * size * np.dtype(sc.dtype).itemsize
        if sc.block_width >= sc.width and row_bytes * (sc.width + size) <= UNIT_MAX_BYTES:
            max_width = sc.width + size  # striped file: read whole rows of tiles so each strip is decoded once
        all_units.extend(_units(i, wins, size, max_width))
    n_cand = sum(len(u.tiles) for u in all_units)
    state = {"scenes": scenes, "masks": masks, "size": size, "out": out, "resume": mode == "resume",
             "compress": opts.compress, "compress_level": opts.compress_level}
    with _Runner(state, workers, len(all_units)) as runner:
        with tqdm(total=n_cand, desc="checking masks", unit="tile", disable=not progress, leave=False) as bar:
            stats = runner.map(_stats_unit, all_units, bar, while_waiting=_import_index_libraries)

        index, dropped_unknown, dropped_buffer = _build_index(all_units, stats, scenes, masks, scheme, opts, ratios,
                                                              index_crs, pairs)

        # ---- pass 2: write
        if mode == "overwrite":
            shutil.rmtree(out)
        fresh, existed = mode in ("new", "overwrite"), out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            if mode == "resume":
                remove_temporaries(out)
            else:
                write_json(out / CONFIG_FILE, config)
            write_units = [u for u in all_units if any(u.keep)]
            n_write = sum(sum(u.keep) for u in write_units)
            with tqdm(total=sum(len(u.tiles) for u in write_units), desc="writing tiles", unit="tile",
                      disable=not progress) as bar:
                res = runner.map(_write_unit, write_units, bar)
            written = sum(r[0] for r in res)
            skipped = sum(r[1] for r in res)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*crs.*was not provided.*")
                write_index(out, index)
            split_counts = {s: int((index["split"] == s).sum()) for s in (*SPLIT_NAMES, "reserved")}
            class_px = np.array([int(index[count_column(n)].sum()) for n in scheme.names], dtype=np.int64)
            total_px = len(index) * size * size
            summary = {
                "scenes": len(scenes),
                "candidate_tiles": n_cand + partial,
                "kept": len(index),
                "dropped": {"unknown_fraction": dropped_unknown, "partial_edge": partial,
                            "split_buffer": dropped_buffer},
                "splits": split_counts,
                "class_pixel_shares": {n: round(float(v) / total_px, 6) for n, v in zip(scheme.names, class_px)},
                "unknown_pixel_share": round(1.0 - float(class_px.sum()) / total_px, 6),
            }
            description = {
                "scheme": scheme.to_dict(), "tile_size": size, "stride": step,
                "bands": scenes[0].count, "dtype": scenes[0].dtype,
                "crs": None if index_crs is None else index_crs.to_string(),
                "georeferenced": index_crs is not None, "synthetic": False,
                "sources": sources, "options": asdict(opts), "split_counts": split_counts, "summary": summary,
            }
            write_description(out, description)
        except BaseException as exc:
            if fresh and isinstance(exc, InputError):  # bad input found while writing: leave nothing behind
                if existed:
                    for child in out.iterdir():
                        shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
                else:
                    shutil.rmtree(out, ignore_errors=True)
            raise
    elapsed = time.perf_counter() - t0
    mp_total = sum(sc.width * sc.height for sc in scenes) / 1e6
    index.attrs["summary"] = {**summary, "written": written, "skipped_existing": skipped,
                              "tiles_to_write": n_write, "seconds": round(elapsed, 3),
                              "megapixels_per_second": round(mp_total / elapsed, 2) if elapsed > 0 else None,
                              "output": str(out)}
    return index


def _build_index(all_units: list[_Unit], stats: list[list[tuple[float, np.ndarray]]], scenes: list[SceneInfo],
                 masks: list[MaskSpec], scheme: ClassScheme, opts: TileOptions, ratios: tuple[float, float, float],
                 index_crs: CRS | None, pairs: list[tuple[Path, Path]]) -> tuple[gpd.GeoDataFrame, int, int]:
    """Filter the candidate tiles by unknown fraction, assign splits and build the index (pass 1's results).

    Sets ``unit.keep`` for pass 2 (False for tiles dropped by the filter or as a buffer between splits).

    Returns:
        The index, the number of tiles dropped for unknown pixels and the number dropped as split buffer.

    Raises:
        InputError: If no tile passes the unknown filter.
    """
    size = int(opts.tile_size)
    rows: list[dict[str, Any]] = []
    geoms = []
    dropped_unknown = 0
    tile_refs: list[tuple[int, int]] = []  # (unit idx, tile idx) of candidate tiles kept by the filter
    for ui, (u, st) in enumerate(zip(all_units, stats)):
        sc = scenes[u.scene_idx]
        u.keep = []
        for ti, ((r, c), (unk, counts)) in enumerate(zip(u.tiles, st)):
            keep = unk <= opts.max_unknown + 1e-12
            u.keep.append(keep)
            if not keep:
                dropped_unknown += 1
                continue
            tid = tile_id(sc, r, c)
            row = {"tile_id": tid, "image": f"images/{tid}.tif", "mask": f"masks/{tid}.tif",
                   "source_image": str(sc.path), "source_mask": str(masks[u.scene_idx].path),
                   "col_off": c, "row_off": r, "width": size, "height": size, "split": "",
                   "unknown_fraction": round(unk, 6), "synthetic": False}
            for name, cnt in zip(scheme.names, counts.tolist()):
                row[count_column(name)] = int(cnt)
            rows.append(row)
            geoms.append(_footprint(sc, r, c, size, index_crs))
            tile_refs.append((ui, ti))
    if not rows:
        raise InputError(pairs[0][1] if len(pairs) == 1 else None,
                         f"no tile has at most {opts.max_unknown:.0%} unknown pixels; nothing to write")
    import geopandas as gpd

    fp = gpd.GeoSeries(geoms, crs=index_crs)

    # ---- splits
    dropped_buffer = 0
    if opts.split_mode == "random":
        splits = assign_random(len(rows), ratios, int(opts.reserve), int(opts.seed))
    else:
        block = int(opts.block_size or 4 * size)
        keys = _block_keys(rows, scenes, [all_units[ui].scene_idx for ui, _ in tile_refs], block, index_crs)
        splits = assign_blocked(keys, ratios, int(opts.reserve), int(opts.seed))
        groups = None if index_crs is not None else [all_units[ui].scene_idx for ui, _ in tile_refs]
        drop: set[int] = set()
        for i, j in overlapping_pairs(fp, groups):
            if splits[i] != splits[j]:
                drop.update((i, j))
        if drop:
            dropped_buffer = len(drop)
            for i in drop:
                ui, ti = tile_refs[i]
                all_units[ui].keep[ti] = False
            keep_idx = [i for i in range(len(rows)) if i not in drop]
            rows = [rows[i] for i in keep_idx]
            splits = splits[keep_idx]
            fp = gpd.GeoSeries([fp.values[i] for i in keep_idx], crs=index_crs)
    for row, sp in zip(rows, splits):
        row["split"] = str(sp)
    columns = list(INDEX_COLUMNS) + [count_column(n) for n in scheme.names]
    index = gpd.GeoDataFrame(rows, columns=columns, geometry=fp.values, crs=index_crs)
    return index, dropped_unknown, dropped_buffer


def _footprint(sc: SceneInfo, r: int, c: int, size: int, index_crs: CRS | None) -> Any:
    from rasterio.windows import bounds as win_bounds
    from shapely.geometry import box

    left, bottom, right, top = win_bounds(Window(c, r, size, size), sc.affine)
    geom = box(min(left, right), min(bottom, top), max(left, right), max(bottom, top))
    if index_crs is not None and sc.rio_crs is not None and sc.rio_crs != index_crs:
        from rasterio.warp import transform_geom
        from shapely.geometry import shape

        geom = shape(transform_geom(sc.rio_crs, index_crs, geom.__geo_interface__))
    return geom


def _block_keys(rows: list[dict[str, Any]], scenes: list[SceneInfo], scene_idx: list[int], block: int,
                index_crs: CRS | None) -> list[Any]:
    """Spatial block of each tile (by its centre): map units for georeferenced sets, else per-scene pixels."""
    keys: list[Any] = []
    if index_crs is None:
        for row, si in zip(rows, scene_idx):
            cy = row["row_off"] + row["height"] / 2
            cx = row["col_off"] + row["width"] / 2
            keys.append((si, int(cy // block), int(cx // block)))
        return keys
    a = scenes[0].affine
    bw, bh = abs(a.a) * block, abs(a.e) * block
    x0, y0 = a.c, a.f
    for row, si in zip(rows, scene_idx):
        sc = scenes[si]
        cx, cy = sc.affine @ (row["col_off"] + row["width"] / 2, row["row_off"] + row["height"] / 2)
        if sc.rio_crs != index_crs:
            from rasterio.warp import transform as wtransform

            xs, ys = wtransform(sc.rio_crs, index_crs, [cx], [cy])
            cx, cy = xs[0], ys[0]
        keys.append((0, int(math.floor((cx - x0) / bw)), int(math.floor((y0 - cy) / bh))))
    return keys


def _jsonable(obj: Any) -> Any:
    import json

    return json.loads(json.dumps(obj, default=str))
