"""A tiling run: :func:`tile_scenes` cuts scenes and masks into a tile set.

The ``rsaug tile`` command wraps it::

    from rsaug.tiling import TileOptions, tile_scenes
    index = tile_scenes([("scene.tif", "mask.tif")], "OUT", TileOptions(tile_size=256, scheme="chesapeake"))
    index.attrs["summary"]   # kept/dropped counts, per split, class shares

The run has two passes. Pass 1 reads only the masks (window by window), validates every value against the
class scheme, computes the unknown fraction and class counts of every candidate tile, filters and assigns
splits (:func:`_build_index`); nothing is written until every input has been checked, so bad input leaves no
output. Pass 2 reads scene and mask windows (one row of tiles at a time, in worker processes, see
:mod:`rsaug.tiling.workers`) and writes the tiles through :func:`rsaug.io.tileset.write_tile` (atomic). The
index and the description are written last.

Tile ids are ``<scene stem>_r<row offset>_c<col offset>`` (pixel offsets of the tile in its scene).
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform_geom
from rasterio.windows import Window
from rasterio.windows import bounds as win_bounds

from rsaug.core.classes import ClassScheme, get_scheme
from rsaug.core.cluster import SchedulerSpec, cluster_or_none, output_probe, parse_scheduler
from rsaug.core.errors import InputError, option
from rsaug.core.files import (
    clear_directory,
    json_roundtrip,
    prepare_output_dir,
    read_json,
    remove_temporaries,
    write_json,
)
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import quiet
from rsaug.io.rasters import DEFAULT_MAX_PIXELS, MaskSpec, SceneInfo, class_index, open_mask, open_scene
from rsaug.io.tileset import (
    DESCRIPTION_FILE,
    INDEX_COLUMNS,
    count_column,
    write_description,
    write_index,
)
from rsaug.tiling.options import CONFIG_FILE, DEFAULT_MAX_TILES, SPLIT_NAMES, TileOptions, TilingWarning
from rsaug.tiling.splits import assign_blocked, assign_random, block_keys, overlapping_pairs
from rsaug.tiling.workers import (
    TILE_MAX_BYTES,
    Runner,
    WorkUnit,
    count_partial,
    count_windows,
    scene_units,
    stats_unit,
    tile_id,
    tile_windows,
    write_unit,
)

if TYPE_CHECKING:
    import geopandas as gpd


def tile_scenes(
    pairs: Iterable[tuple[str | os.PathLike[str], str | os.PathLike[str]]],
    out: str | os.PathLike[str],
    options: TileOptions | None = None,
    *,
    workers: int = 1,
    overwrite: bool = False,
    resume: bool = False,
    reporter: Reporter | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    max_tiles: int | None = DEFAULT_MAX_TILES,
    scheduler: SchedulerSpec | str | None = None,
    **overrides: Any,
) -> gpd.GeoDataFrame:
    """Tile scene/mask pairs into a tile set at ``out`` and return its index.

    Args:
        pairs: ``(scene, mask)`` paths (see :func:`~rsaug.tiling.inputs.find_pairs`,
            :func:`~rsaug.tiling.inputs.read_pairs_csv`).
        out: Output tile-set directory (must be absent or empty unless ``overwrite``/``resume``).
        options: Tiling options; keyword ``overrides`` replace single fields (``tile_size=224``...).
        workers: Worker processes (1 = in-process).
        overwrite: Replace an existing tile set at ``out``.
        resume: Continue an interrupted run with the same inputs and options (existing tiles are kept).
        reporter: Progress bars (``None``: silent).
        max_pixels: Largest declared scene size (width x height) accepted (``None`` or 0: no limit). A file
            header can declare any size; the check comes before any pixel is read.
        max_tiles: Largest number of candidate tiles of the run, all scenes together (``None`` or 0: no limit);
            checked before the tile grid is built, since every candidate is held in memory.
        scheduler: Run both passes' work units on a Dask cluster (:mod:`rsaug.core.cluster`: a scheduler address
            or ``local:N``) instead of ``workers`` local processes; the result is the same tile set. Every worker
            must see the scenes, masks and ``out`` at the same paths (checked before anything is written).

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
    for name, limit in (("max_pixels", max_pixels), ("max_tiles", max_tiles)):
        if limit is not None and int(limit) < 0:
            raise InputError(None, f"{option(name)} must be >= 0 (0 = no limit), got {limit}")
    if isinstance(scheduler, str):
        scheduler = parse_scheduler(scheduler)
    size, step = int(opts.tile_size), int(opts.step)
    scheme = get_scheme(opts.scheme)
    if opts.vector_fill is not None:
        class_index(scheme, opts.vector_fill)  # an unknown class is an error even when no mask is a vector
    out = Path(out)
    abs_pairs = [(Path(os.path.abspath(s)), Path(os.path.abspath(m))) for s, m in pairs]
    if not abs_pairs:
        raise InputError(None, "no scene/mask pairs given")
    mode = prepare_output_dir(
        out,
        overwrite=overwrite,
        resume=resume,
        markers=(DESCRIPTION_FILE, CONFIG_FILE),
        resume_marker=CONFIG_FILE,
        what="tile set",
    )

    # ---- open and check every input before anything is written
    scenes: list[SceneInfo] = []
    masks: list[MaskSpec] = []
    stems: dict[str, Path] = {}
    notes: list[str] = []
    n_candidates = 0
    for s, m in abs_pairs:
        sc = open_scene(s, max_pixels)
        if sc.stem in stems:
            raise InputError(s, f"two scenes share the stem {sc.stem!r} ({stems[sc.stem]}); tile ids would clash")
        stems[sc.stem] = s
        if scenes and (sc.count, sc.dtype) != (scenes[0].count, scenes[0].dtype):
            raise InputError(
                s,
                f"scene has {sc.count} bands of {sc.dtype}, but {scenes[0].path} has "
                f"{scenes[0].count} of {scenes[0].dtype}; one tile set needs one pixel format",
            )
        if scenes and sc.georeferenced != scenes[0].georeferenced:
            raise InputError(s, "georeferenced and non-georeferenced scenes cannot be mixed in one tile set")
        if opts.edge == "drop" and (sc.width < size or sc.height < size):
            raise InputError(
                s,
                f"tile size {size} is larger than the scene ({sc.width}x{sc.height}); use a "
                f"smaller {option('tile_size')} or {option('edge')} pad",
            )
        tile_bytes = size * size * (sc.count * np.dtype(sc.dtype).itemsize + 1)
        if tile_bytes > TILE_MAX_BYTES:
            raise InputError(
                s,
                f"one {size}x{size} tile of this scene takes {tile_bytes / 2**30:.3g} GiB ({sc.count} bands of "
                f"{sc.dtype} and the mask), more than the {TILE_MAX_BYTES / 2**30:g} GiB a tile may hold; use a "
                f"smaller {option('tile_size')}",
            )
        n_candidates += count_windows(sc.width, sc.height, size, step, opts.edge)
        if max_tiles and n_candidates > max_tiles:
            raise InputError(
                s,
                f"{option('tile_size')} {size} with stride {step} gives {n_candidates:,} candidate tiles"
                f"{' with the scenes before it' if len(scenes) else ''}, more than {option('max_tiles')} "
                f"({int(max_tiles):,}); use a larger {option('tile_size')} or {option('stride')}, or raise "
                f"{option('max_tiles')}",
            )
        spec = open_mask(
            m, sc, scheme, kind=opts.mask_kind, class_attribute=opts.class_attribute, vector_fill=opts.vector_fill
        )
        notes.extend(spec.notes)
        scenes.append(sc)
        masks.append(spec)
    non_geo = [sc.path for sc in scenes if not sc.georeferenced]
    if non_geo:
        warnings.warn(
            f"{len(non_geo)} scene(s) not georeferenced (e.g. {non_geo[0]}): tiled on the pixel grid, "
            "tiles carry no CRS",
            TilingWarning,
            stacklevel=2,
        )
    for n in notes:
        warnings.warn(n, TilingWarning, stacklevel=2)

    index_crs = scenes[0].rio_crs
    sources = [
        {
            "scene": str(sc.path),
            "mask": str(mk.path),
            "mask_kind": mk.kind,
            "resampled": mk.resample,
            "width": sc.width,
            "height": sc.height,
            "crs": None if sc.rio_crs is None else sc.rio_crs.to_string(),
        }
        for sc, mk in zip(scenes, masks)
    ]
    config = {"options": asdict(opts), "sources": sources}
    if mode == "resume":
        try:
            old = read_json(out / CONFIG_FILE)
        except (OSError, ValueError) as exc:
            raise InputError(out / CONFIG_FILE, f"cannot read earlier run configuration: {exc}") from None
        if old != json_roundtrip(config):
            raise InputError(
                out / CONFIG_FILE,
                "cannot resume: the inputs or options differ from the "
                f"interrupted run; use {option('overwrite')} to start again",
            )

    # ---- pass 1: masks only -> unknown fraction, class counts
    rep = reporter_or_silent(reporter)
    all_units: list[WorkUnit] = []
    partial = 0
    for i, sc in enumerate(scenes):
        wins = tile_windows(sc.width, sc.height, size, step, opts.edge)
        if not wins:
            raise InputError(sc.path, f"tile size {size} is larger than the scene ({sc.width}x{sc.height})")
        if opts.edge == "drop":
            partial += count_partial(sc.width, sc.height, size, step)
        all_units.extend(scene_units(i, sc, wins, size))
    n_cand = sum(len(u.tiles) for u in all_units)
    state = {
        "scenes": scenes,
        "masks": masks,
        "size": size,
        "out": Path(os.path.abspath(out)),  # workers (Dask: maybe on other hosts) have their own working directory
        "resume": mode == "resume",
        "compress": opts.compress,
        "compress_level": opts.compress_level,
    }
    probes = [(p, "file") for pair in abs_pairs for p in pair] + [output_probe(out)]
    with cluster_or_none(scheduler, probes) as client, Runner(state, workers, len(all_units), client) as runner:
        with rep.bar(total=n_cand, desc="checking masks", unit="tile", leave=False) as bar:
            stats = runner.map(stats_unit, all_units, bar, while_waiting=_import_index_libraries)

        index, dropped_unknown, dropped_buffer = _build_index(
            all_units, stats, scenes, masks, scheme, opts, ratios, index_crs, abs_pairs
        )

        # ---- pass 2: write
        if mode == "overwrite":
            clear_directory(out)  # keeps the writer lock of rsaug.core.locks.output_lock (and ``out`` itself)
        fresh, existed = mode in ("new", "overwrite"), out.exists()
        out.mkdir(parents=True, exist_ok=True)
        try:
            if mode == "resume":
                remove_temporaries(out)
            else:
                write_json(out / CONFIG_FILE, config)
            write_units = [u for u in all_units if any(u.keep)]
            n_write = sum(sum(u.keep) for u in write_units)
            with rep.bar(total=sum(len(u.tiles) for u in write_units), desc="writing tiles", unit="tile") as bar:
                res = runner.map(write_unit, write_units, bar)
            remove_temporaries(out)  # what a worker killed mid-write left (Dask re-ran its units elsewhere)
            written = sum(r[0] for r in res)
            skipped = sum(r[1] for r in res)
            with quiet(messages=(".*crs.*was not provided.*",)):
                write_index(out, index)
            split_counts = {s: int((index["split"] == s).sum()) for s in (*SPLIT_NAMES, "reserved")}
            class_px = np.array([int(index[count_column(n)].sum()) for n in scheme.names], dtype=np.int64)
            total_px = len(index) * size * size
            summary = {
                "scenes": len(scenes),
                "candidate_tiles": n_cand + partial,
                "kept": len(index),
                "dropped": {
                    "unknown_fraction": dropped_unknown,
                    "partial_edge": partial,
                    "split_buffer": dropped_buffer,
                },
                "splits": split_counts,
                "class_pixel_shares": {n: round(float(v) / total_px, 6) for n, v in zip(scheme.names, class_px)},
                "unknown_pixel_share": round(1.0 - float(class_px.sum()) / total_px, 6),
            }
            description = {
                "scheme": scheme.to_dict(),
                "tile_size": size,
                "stride": step,
                "bands": scenes[0].count,
                "dtype": scenes[0].dtype,
                "crs": None if index_crs is None else index_crs.to_string(),
                "georeferenced": index_crs is not None,
                "synthetic": False,
                "sources": sources,
                "options": asdict(opts),
                "split_counts": split_counts,
                "summary": summary,
            }
            write_description(out, description)
        except BaseException as exc:
            if fresh and isinstance(exc, InputError):  # bad input found while writing: leave nothing behind
                if existed:
                    clear_directory(out)
                else:
                    shutil.rmtree(out, ignore_errors=True)
            raise
    elapsed = time.perf_counter() - t0
    mp_total = sum(sc.width * sc.height for sc in scenes) / 1e6
    index.attrs["summary"] = {
        **summary,
        "written": written,
        "skipped_existing": skipped,
        "tiles_to_write": n_write,
        "seconds": round(elapsed, 3),
        "megapixels_per_second": round(mp_total / elapsed, 2) if elapsed > 0 else None,
        "output": str(out),
    }
    return index


def _build_index(
    all_units: list[WorkUnit],
    stats: list[list[tuple[float, np.ndarray]]],
    scenes: list[SceneInfo],
    masks: list[MaskSpec],
    scheme: ClassScheme,
    opts: TileOptions,
    ratios: tuple[float, float, float],
    index_crs: CRS | None,
    pairs: list[tuple[Path, Path]],
) -> tuple[gpd.GeoDataFrame, int, int]:
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
            row = {
                "tile_id": tid,
                "image": f"images/{tid}.tif",
                "mask": f"masks/{tid}.tif",
                "source_image": str(sc.path),
                "source_mask": str(masks[u.scene_idx].path),
                "col_off": c,
                "row_off": r,
                "width": size,
                "height": size,
                "split": "",
                "unknown_fraction": round(unk, 6),
                "synthetic": False,
            }
            for name, cnt in zip(scheme.names, counts.tolist()):
                row[count_column(name)] = int(cnt)
            rows.append(row)
            geoms.append(_footprint(sc, r, c, size, index_crs))
            tile_refs.append((ui, ti))
    if not rows:
        raise InputError(
            pairs[0][1] if len(pairs) == 1 else None,
            f"no tile has at most {opts.max_unknown:.0%} unknown pixels; nothing to write",
        )
    import geopandas as gpd

    fp = gpd.GeoSeries(geoms, crs=index_crs)

    # ---- splits
    dropped_buffer = 0
    if opts.split_mode == "random":
        splits = assign_random(len(rows), ratios, int(opts.reserve), int(opts.seed))
    else:
        block = int(opts.block_size or 4 * size)
        keys = block_keys(rows, scenes, [all_units[ui].scene_idx for ui, _ in tile_refs], block, index_crs)
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
            if not rows:
                raise InputError(
                    pairs[0][1] if len(pairs) == 1 else None,
                    f"every tile overlaps a tile of another split and was dropped; nothing to write (use a larger "
                    f"{option('block_size')} or {option('stride')}, or {option('split_mode')} random)",
                )
    for row, sp in zip(rows, splits):
        row["split"] = str(sp)
    columns = list(INDEX_COLUMNS) + [count_column(n) for n in scheme.names]
    index = gpd.GeoDataFrame(rows, columns=columns, geometry=fp.values, crs=index_crs)
    return index, dropped_unknown, dropped_buffer


def _footprint(sc: SceneInfo, r: int, c: int, size: int, index_crs: CRS | None) -> Any:
    """Footprint polygon of the tile at ``(r, c)`` of a scene, in the index CRS (the tile's exact quadrilateral on
    rotated or sheared grids, so neighbouring tiles never overlap)."""
    from shapely.geometry import Polygon, box  # loaded with geopandas (see _import_index_libraries)

    t = sc.affine
    if t.b == 0 and t.d == 0:
        left, bottom, right, top = win_bounds(Window(c, r, size, size), t)
        geom = box(min(left, right), min(bottom, top), max(left, right), max(bottom, top))
    else:
        geom = Polygon([t @ (c, r), t @ (c + size, r), t @ (c + size, r + size), t @ (c, r + size)])
    if index_crs is not None and sc.rio_crs is not None and sc.rio_crs != index_crs:
        from shapely.geometry import shape

        geom = shape(transform_geom(sc.rio_crs, index_crs, geom.__geo_interface__))
    return geom


def _import_index_libraries() -> None:
    """Import geopandas/shapely (a third of the start-up time) while the workers already read masks."""
    import geopandas  # noqa: F401
    import shapely.geometry  # noqa: F401
