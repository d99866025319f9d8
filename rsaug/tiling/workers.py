"""The two passes of a tiling run as work units, and the process pool that runs them.

A :class:`WorkUnit` is a run of tiles on one tile row of one scene (one window read). Pass 1
(:func:`stats_unit`) reads masks only and returns the unknown fraction and class counts of each tile; pass 2
(:func:`write_unit`) reads scene and mask windows and writes the kept tiles. Both read the run's inputs from a
module-global state installed in each worker process by :func:`init_worker` (the pool's initializer), so the
units sent to workers stay small; the functions are module-level so the pool can pickle them. :class:`Runner`
runs units in order, in-process or in one pool of processes serving both passes.

Internal to :mod:`rsaug.tiling` (:func:`tile_windows` and :func:`tile_id` are public).
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.windows
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from rsaug.core.classes import IGNORE
from rsaug.core.cluster import DaskMap
from rsaug.core.errors import InputError, portable_call
from rsaug.core.runtime import quiet
from rsaug.io.rasters import MaskReader, MaskSpec, SceneInfo, read_padded, short_error
from rsaug.io.tileset import write_tile

UNIT_MAX_WIDTH = 4096  # pixels of scene width read at once per work unit (tiled sources)
UNIT_MAX_BYTES = 64 * 2**20  # striped sources: whole rows of tiles up to this buffer size (strips decoded once)
TILE_MAX_BYTES = 2**30  # one tile (all bands + mask) must fit this: larger tiles are refused before any read


# --------------------------------------------------------------------------- windows
def tile_windows(width: int, height: int, size: int, stride: int, edge: str = "drop") -> list[tuple[int, int]]:
    """Top-left ``(row_off, col_off)`` of every tile of a ``width`` x ``height`` scene, row-major.

    With ``edge="drop"`` only complete tiles are returned; with ``"pad"`` the grid is extended so every
    pixel is covered (border tiles extend past the scene).
    """
    rows = range(0, grid_offsets(height, size, stride, edge) * stride, stride)
    cols = range(0, grid_offsets(width, size, stride, edge) * stride, stride)
    return [(r, c) for r in rows for c in cols]


def grid_offsets(n: int, size: int, stride: int, edge: str = "drop") -> int:
    """Number of tile offsets along a side of ``n`` pixels (0, stride, 2 stride...), without listing them.

    ``drop``: the tiles that fit entirely; ``pad``: as many as it takes to cover every pixel (at least one).
    """
    if edge == "drop":
        return (n - size) // stride + 1 if n >= size else 0
    return -(-(n - size) // stride) + 1 if n > size else 1


def count_windows(width: int, height: int, size: int, stride: int, edge: str = "drop") -> int:
    """``len(tile_windows(...))``, computed without building the list."""
    return grid_offsets(width, size, stride, edge) * grid_offsets(height, size, stride, edge)


def count_partial(width: int, height: int, size: int, stride: int) -> int:
    """Number of partial border tiles a ``pad`` grid has beyond the ``drop`` grid."""
    return count_windows(width, height, size, stride, "pad") - count_windows(width, height, size, stride)


# --------------------------------------------------------------------------- work units
@dataclass
class WorkUnit:
    """Tiles of one scene on one tile row, read as one window (the unit of work of both passes).

    Attributes:
        scene_idx: Index of the scene in the run's inputs.
        tiles: ``(row_off, col_off)`` of the tiles, all with the same ``row_off``.
        keep: Per tile, whether pass 2 writes it (set after pass 1).
    """

    scene_idx: int
    tiles: list[tuple[int, int]]  # (row_off, col_off), same row_off
    keep: list[bool] = field(default_factory=list)


def work_units(
    scene_idx: int, windows: list[tuple[int, int]], size: int, max_width: int = UNIT_MAX_WIDTH
) -> list[WorkUnit]:
    """Group the windows of one scene into row-chunks whose union is at most ~``max_width`` wide."""
    units: list[WorkUnit] = []
    by_row: dict[int, list[tuple[int, int]]] = {}
    for r, c in windows:
        by_row.setdefault(r, []).append((r, c))
    for r in sorted(by_row):
        cur: list[tuple[int, int]] = []
        for t in by_row[r]:
            if cur and t[1] + size - cur[0][1] > max(max_width, size):
                units.append(WorkUnit(scene_idx, cur))
                cur = []
            cur.append(t)
        if cur:
            units.append(WorkUnit(scene_idx, cur))
    return units


def scene_units(scene_idx: int, scene: SceneInfo, windows: list[tuple[int, int]], size: int) -> list[WorkUnit]:
    """The work units of one scene: row chunks of at most :data:`UNIT_MAX_WIDTH` pixels, or whole rows of tiles
    for striped files whose row of tiles fits in :data:`UNIT_MAX_BYTES` (so each strip is decoded once)."""
    max_width = UNIT_MAX_WIDTH
    row_bytes = scene.count * size * np.dtype(scene.dtype).itemsize
    if scene.block_width >= scene.width and row_bytes * (scene.width + size) <= UNIT_MAX_BYTES:
        max_width = scene.width + size  # striped file: read whole rows of tiles so each strip is decoded once
    return work_units(scene_idx, windows, size, max_width)


def unit_window(tiles: list[tuple[int, int]], size: int) -> Window:
    """The window covering ``tiles`` (same row) of side ``size``."""
    r = tiles[0][0]
    c0 = min(t[1] for t in tiles)
    c1 = max(t[1] for t in tiles) + size
    return Window(c0, r, c1 - c0, size)


# GDAL checks the free disk space before creating every tile file; the tile set's size is known to be small
_GDAL_WRITE_OPTIONS = {"CHECK_DISK_FREE_SPACE": False}

# Worker state (set per process by the pool initializer, or in-process for workers == 1).
_STATE: dict[str, Any] = {}


def init_worker(state: dict[str, Any]) -> None:
    """Install the run's state in this process (pool initializer; in-process for one worker)."""
    _STATE.clear()
    _STATE.update(state)
    env = rasterio.Env(**_GDAL_WRITE_OPTIONS)  # one GDAL environment per worker instead of one per open
    env.__enter__()
    _STATE["_env"] = env


def stats_unit(unit: WorkUnit, state: dict[str, Any] | None = None) -> list[tuple[float, np.ndarray]]:
    """Pass 1: unknown fraction and class counts of every tile of a unit (masks only).

    ``state``: the run's state when it is passed with the unit (Dask workers); ``None``: this process's state
    installed by :func:`init_worker`.
    """
    st = _STATE if state is None else state
    spec: MaskSpec = st["masks"][unit.scene_idx]
    size: int = st["size"]
    k = spec.scheme.num_classes
    win = unit_window(unit.tiles, size)
    with MaskReader(spec) as reader:
        hists = reader.read_counts(win, [c for _, c in unit.tiles], size)
        if hists is not None:
            return [(float(h[IGNORE]) / (size * size), h[:k].astype(np.int64)) for h in hists]
        mask = reader.read(win)
    out = []
    for _, c in unit.tiles:
        m = mask[:, c - int(win.col_off) : c - int(win.col_off) + size]
        counts = np.bincount(m.ravel(), minlength=256)
        out.append((float(counts[IGNORE]) / m.size, counts[:k].astype(np.int64)))
    return out


def write_unit(unit: WorkUnit, state: dict[str, Any] | None = None) -> tuple[int, int]:
    """Pass 2: write the kept tiles of a unit; returns (written, skipped because they exist).

    ``state``: as for :func:`stats_unit` (given: the unit runs in its own GDAL environment).
    """
    if state is not None:
        with rasterio.Env(**_GDAL_WRITE_OPTIONS):
            return _write_unit(unit, state)
    return _write_unit(unit, _STATE)


def _write_unit(unit: WorkUnit, st: dict[str, Any]) -> tuple[int, int]:
    scene: SceneInfo = st["scenes"][unit.scene_idx]
    spec: MaskSpec = st["masks"][unit.scene_idx]
    size: int = st["size"]
    out: Path = st["out"]
    resume: bool = st["resume"]
    compress: str = st["compress"]
    level: int = st["compress_level"]
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
    win = unit_window([(r, c) for r, c, _, _ in todo], size)
    fill = scene.fill_value
    try:
        with quiet(NotGeoreferencedWarning), rasterio.open(scene.path) as src:
            image = read_padded(src, win, fill)
    except RasterioIOError as exc:
        raise InputError(scene.path, f"cannot read scene raster (corrupt): {short_error(exc)}") from None
    with MaskReader(spec) as reader:
        mask = reader.read(win)
    crs = scene.rio_crs
    scheme = spec.scheme
    for r, c, img_p, msk_p in todo:
        dc = c - int(win.col_off)
        transform = rasterio.windows.transform(Window(c, r, size, size), scene.affine) if crs is not None else None
        # views: both writers copy (the fast one while applying the predictor)
        write_tile(
            img_p, image[:, :, dc : dc + size], crs=crs, transform=transform, compress=compress, compress_level=level
        )
        write_tile(
            msk_p,
            mask[:, dc : dc + size],
            crs=crs,
            transform=transform,
            is_mask=True,
            scheme=scheme,
            compress=compress,
            compress_level=level,
        )
    return len(todo), skipped


def tile_id(scene: SceneInfo, row_off: int, col_off: int) -> str:
    """Stable tile id ``<scene stem>_r<row offset>_c<col offset>``."""
    return f"{scene.stem}_r{row_off}_c{col_off}"


class Runner:
    """Runs work units in order, in-process (``workers <= 1``), in one pool of worker processes that serves
    both passes (forked once, each worker with its own GDAL environment), or on a Dask cluster (``client``: the
    run's state is sent to the workers once, the units' results come back in order; see
    :mod:`rsaug.core.cluster`)."""

    def __init__(self, state: dict[str, Any], workers: int, n_units: int, client: Any = None) -> None:
        self.state = state
        self.workers = workers if n_units > 1 else 1
        self.client = client
        self._pool: ProcessPoolExecutor | None = None
        self._dask: DaskMap | None = None

    def __enter__(self) -> Runner:
        if self.client is not None:
            self._dask = DaskMap(self.client, "rsaug-tile", [self.state])
        elif self.workers <= 1:
            init_worker(self.state)  # this process is the worker
        else:
            ctx = mp.get_context("fork") if "fork" in mp.get_all_start_methods() else mp.get_context("spawn")
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=ctx, initializer=init_worker, initargs=(self.state,)
            )
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._dask is not None:
            return
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        else:
            _STATE.pop("_env").__exit__(*exc)
            _STATE.clear()

    def map(
        self,
        func: Callable[[WorkUnit], Any],
        units: list[WorkUnit],
        bar: Any,
        while_waiting: Callable[[], None] | None = None,
    ) -> list[Any]:
        """``[func(u) for u in units]``; ``while_waiting()`` runs in this process once the work is queued.

        Raises:
            RsaugError: The first error a unit raised (from a worker process too, re-raised here as the same
                one-line error).
        """
        results: list[Any] = []
        if self._dask is not None:
            return self._dask.map(
                func, units, on_result=lambda u, _r: bar.update(len(u.tiles)), after_submit=while_waiting
            )
        if self._pool is None:
            if while_waiting is not None:
                while_waiting()
            for u in units:
                results.append(func(u))
                bar.update(len(u.tiles))
            return results
        chunk = max(1, min(4, len(units) // (self.workers * 16)))  # small chunks: balanced tail
        it = self._pool.map(partial(portable_call, func), units, chunksize=chunk)  # submits everything now
        if while_waiting is not None:
            while_waiting()
        try:
            for u, res in zip(units, it):  # an RsaugError of a worker is re-raised here (it pickles)
                results.append(res)
                bar.update(len(u.tiles))
        except BaseException:
            # stop the other workers before the caller cleans up: a unit still running would write its tiles
            # into an output directory the caller has just emptied
            self._pool.shutdown(wait=True, cancel_futures=True)
            raise
        return results
