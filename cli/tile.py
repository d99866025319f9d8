"""``rsaug tile``: cut scenes and masks into a georeferenced tile set."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from rsaug.cli.common import guarded, quiet_option, reporter, scheduler_option, seed_option
from rsaug.cli.stac import check_catalog, stac_option, write_catalog
from rsaug.core.errors import InputError
from rsaug.core.files import write_json
from rsaug.core.locks import output_lock
from rsaug.tiling import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_TILES,
    TileOptions,
    TilingWarning,
    find_pairs,
    read_pairs_csv,
    tile_scenes,
)


def _format_summary(s: dict[str, Any]) -> str:
    d = s["dropped"]
    lines = [
        f"Tile set written to {s['output']}",
        f"  scenes: {s['scenes']}   candidate tiles: {s['candidate_tiles']}   kept: {s['kept']}",
        f"  dropped: {d['unknown_fraction']} too much unknown, {d['partial_edge']} partial at the edge, "
        f"{d['split_buffer']} overlapping another split",
        "  splits: " + ", ".join(f"{k} {v}" for k, v in s["splits"].items()),
        f"  written: {s['written']}   already present (resume): {s['skipped_existing']}   "
        f"time: {s['seconds']:.1f} s ({s['megapixels_per_second']} MP/s)",
        "  class pixel shares: "
        + ", ".join(f"{k} {v:.1%}" for k, v in s["class_pixel_shares"].items())
        + f", unknown {s['unknown_pixel_share']:.1%}",
    ]
    return "\n".join(lines)


@click.command("tile", context_settings={"show_default": True})
@click.argument("scene", required=False, type=click.Path(path_type=Path, readable=False))
@click.argument("mask", required=False, type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o", "--out", required=True, type=click.Path(path_type=Path, readable=False), help="Output tile-set directory."
)
@click.option(
    "--pairs",
    "pairs_csv",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    help="CSV of scene,mask pairs (instead of SCENE MASK); paths relative to the CSV.",
)
@click.option(
    "--mask-suffix",
    default="",
    show_default=True,
    help="With directories: the mask of scene <key>.tif is <key><suffix>.* (e.g. _15label for GID).",
)
@click.option(
    "--scene-suffix",
    default="",
    show_default=True,
    help="With directories: only scenes named <key><suffix>.* (e.g. _naip-new for Chesapeake, whose "
    "masks <key>_lc.tif sit in the same directory).",
)
@click.option("--tile-size", type=int, default=256, show_default=True, help="Tile side in pixels.")
@click.option(
    "--stride",
    type=int,
    default=None,
    show_default="tile size",
    help="Step between tiles in pixels (smaller than the tile size = overlap).",
)
@click.option(
    "--overlap",
    type=int,
    default=None,
    show_default="0",
    help="Overlap between neighbouring tiles in pixels (alternative to --stride).",
)
@click.option(
    "--max-unknown",
    type=float,
    default=0.8,
    show_default=True,
    help="Drop tiles whose fraction of unknown mask pixels exceeds this.",
)
@click.option(
    "--scheme",
    default="gid15",
    show_default=True,
    help="Class scheme of the masks: gid15, gid15-official, gid5, chesapeake, loveda, or a JSON file.",
)
@click.option(
    "--mask-kind",
    type=click.Choice(["auto", "index", "color", "vector"]),
    default="auto",
    show_default=True,
    help="Mask type; auto: vector by file suffix, 3+ bands = colour-coded, 1 band = index.",
)
@click.option(
    "--class-attribute",
    default="class",
    show_default=True,
    help="Attribute of vector masks holding the class name or raw class value.",
)
@click.option(
    "--vector-fill",
    default=None,
    metavar="CLASS",
    show_default="unknown",
    help="Class (name or raw value) of scene pixels that no polygon of a vector mask covers.",
)
@click.option("--split", "split_spec", default="4:1:1", show_default=True, help="Split ratios train:val:test.")
@seed_option
@click.option(
    "--reserve",
    type=int,
    default=0,
    show_default=True,
    help="Tiles set aside as split 'reserved' (e.g. for ablations) before splitting.",
)
@click.option(
    "--split-mode",
    type=click.Choice(["random", "blocked"]),
    default="random",
    show_default=True,
    help="random: per tile (as the GID-15 paper); blocked: per spatial block, tiles overlapping a "
    "tile of another split are dropped.",
)
@click.option(
    "--block-size",
    type=int,
    default=None,
    show_default="4 tiles",
    help="Block side in pixels for --split-mode blocked.",
)
@click.option(
    "--edge",
    type=click.Choice(["drop", "pad"]),
    default="drop",
    show_default=True,
    help="Partial border tiles: drop them, or pad them (image nodata/0, mask unknown).",
)
@click.option(
    "--compress",
    type=click.Choice(["deflate", "lzw", "zstd", "none"]),
    default="deflate",
    show_default=True,
    help="GeoTIFF compression of the tiles.",
)
@click.option(
    "--compress-level",
    type=int,
    default=1,
    show_default=True,
    help="Deflate (1-12) or zstd (1-22) level. Deflate levels 1-3 are encoded with ISA-L (tiles up to "
    "4 MB, integer data), higher ones by GDAL. With the predictor rsaug uses, level 1 is as small "
    "as GDAL's default 6 on satellite imagery and several times faster to write. ISA-L's bytes "
    "(never the pixels) can differ between runs; use 4 or more for byte-reproducible files.",
)
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes.")
@scheduler_option
@click.option(
    "--max-pixels",
    type=int,
    default=DEFAULT_MAX_PIXELS,
    show_default=True,
    help="Refuse scenes whose header declares more pixels (width x height) than this; 0 = no limit.",
)
@click.option(
    "--max-tiles",
    type=int,
    default=DEFAULT_MAX_TILES,
    show_default=True,
    help="Refuse runs with more candidate tiles (all scenes) than this; each takes a few kB of memory. 0 = no limit.",
)
@click.option("--overwrite", is_flag=True, default=False, help="Replace an existing tile set in OUT.")
@click.option(
    "--resume", is_flag=True, default=False, help="Continue an interrupted run into OUT (same inputs and options)."
)
@click.option(
    "--summary-json",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    help="Also write the run summary as JSON to this path.",
)
@stac_option
@quiet_option
@guarded
def command(
    scene: Path | None,
    mask: Path | None,
    out: Path,
    pairs_csv: Path | None,
    mask_suffix: str,
    scene_suffix: str,
    tile_size: int,
    stride: int | None,
    overlap: int | None,
    max_unknown: float,
    scheme: str,
    mask_kind: str,
    class_attribute: str,
    vector_fill: str | None,
    split_spec: str,
    seed: int,
    reserve: int,
    split_mode: str,
    block_size: int | None,
    edge: str,
    compress: str,
    compress_level: int,
    workers: int,
    scheduler: str | None,
    max_pixels: int,
    max_tiles: int,
    overwrite: bool,
    resume: bool,
    summary_json: Path | None,
    stac: Path | None,
    quiet: bool,
) -> None:
    """Cut SCENE and MASK into a tile set in OUT (GeoTIFF tiles, index.gpkg, tileset.json).

    SCENE and MASK are files, or directories matched by stem (see --mask-suffix); or give --pairs CSV.
    """
    if pairs_csv is not None:
        if scene is not None or mask is not None:
            raise InputError(pairs_csv, "give either SCENE MASK or --pairs, not both")
        pairs = read_pairs_csv(pairs_csv)
    else:
        if scene is None or mask is None:
            raise InputError(None, "give SCENE and MASK (files or directories) or --pairs CSV")
        pairs = find_pairs(scene, mask, mask_suffix, scene_suffix)
    if overlap is not None:
        if stride is not None:
            raise InputError(None, "give either --stride or --overlap, not both")
        if not 0 <= overlap < tile_size:
            raise InputError(None, f"--overlap must be within 0..{tile_size - 1}, got {overlap}")
        stride = tile_size - overlap
    if workers < 1:
        raise InputError(None, f"--workers must be >= 1, got {workers}")
    if workers > 1 and scheduler is not None:
        raise InputError(None, "give either --workers (this machine's pool) or --scheduler (a Dask cluster), not both")
    if overwrite and resume:
        raise InputError(out, "give either --overwrite or --resume, not both")
    if stac is not None:
        check_catalog(stac, out, overwrite=overwrite or resume)
    opts = TileOptions(
        tile_size=tile_size,
        stride=stride,
        max_unknown=max_unknown,
        scheme=scheme,
        split=split_spec,
        seed=seed,
        reserve=reserve,
        split_mode=split_mode,
        block_size=block_size,
        edge=edge,
        mask_kind=mask_kind,
        class_attribute=class_attribute,
        vector_fill=vector_fill,
        compress=compress,
        compress_level=compress_level,
    )
    with warnings.catch_warnings(record=True) as caught, output_lock(out, "tile set"):
        warnings.simplefilter("always")
        index = tile_scenes(
            pairs,
            out,
            opts,
            workers=workers,
            scheduler=scheduler,
            overwrite=overwrite,
            resume=resume,
            reporter=reporter(quiet),
            max_pixels=max_pixels,
            max_tiles=max_tiles,
        )
        catalog = None if stac is None else write_catalog(out, stac, overwrite=overwrite or resume, quiet=quiet)
    if not quiet:
        seen = set()
        for w in caught:
            msg = str(w.message)
            if msg not in seen and issubclass(w.category, TilingWarning):
                seen.add(msg)
                click.echo(f"Warning: {msg}", err=True)
    summary = index.attrs["summary"]
    if summary_json is not None:
        write_json(summary_json, summary)
    if not quiet:
        click.echo(_format_summary(summary))
        if catalog is not None:
            click.echo(f"STAC collection written to {catalog}")
