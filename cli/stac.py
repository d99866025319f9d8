"""``rsaug stac``: write a STAC catalog (a self-contained Collection, one Item per tile) for an existing tile set."""

from __future__ import annotations

from pathlib import Path

import click

from rsaug.cli.common import guarded, quiet_option, reporter
from rsaug.core.classes import ClassScheme
from rsaug.core.locks import output_lock
from rsaug.io.tileset import TileSet

STAC_WHAT = "STAC catalog"

stac_option = click.option(
    "--stac",
    "stac",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="no catalog",
    metavar="DIR",
    help="Also write a STAC catalog of the result into DIR (a self-contained Collection, one Item per tile with "
    "relative asset hrefs, see `rsaug stac`); e.g. OUT/stac. Not inside OUT's images/ or masks/. An existing "
    "catalog in DIR is replaced with --overwrite (or --resume).",
)
"""The ``--stac DIR`` option of ``rsaug tile`` and ``rsaug synthesize``."""


def write_catalog(tiles: Path, stac: Path, *, overwrite: bool, quiet: bool) -> Path:
    """Write the STAC catalog of the finished tile set ``tiles`` into ``stac`` holding its writer lock (a progress
    bar unless ``quiet``); returns the path of ``collection.json``. For ``rsaug stac`` and ``--stac``."""
    from rsaug.io.stac import write_stac_collection  # pystac: only when a catalog is written

    with output_lock(stac, STAC_WHAT):
        return write_stac_collection(TileSet.open(tiles), stac, overwrite=overwrite, reporter=reporter(quiet))


def write_scene_catalog(scene: Path, stac: Path, scheme: ClassScheme, *, overwrite: bool) -> Path:
    """Write the STAC catalog (one Item) of a whole synthetic scene into ``stac`` holding its writer lock; returns
    the path of ``collection.json``. For ``rsaug synthesize --scene-mask ... --stac DIR``."""
    from rsaug.io.stac import write_scene_stac

    with output_lock(stac, STAC_WHAT):
        return write_scene_stac(scene, stac, scheme=scheme, overwrite=overwrite)


def check_catalog(stac: Path, tiles: Path | None, *, overwrite: bool) -> None:
    """Refuse a bad ``--stac DIR`` before the command's run starts (nothing is written)."""
    from rsaug.io.stac import check_stac_output

    check_stac_output(stac, tiles=tiles, overwrite=overwrite)


@click.command("stac", context_settings={"show_default": True})
@click.argument("tiles", type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--out",
    required=True,
    type=click.Path(path_type=Path, readable=False),
    help="Catalog directory (e.g. TILES/stac; not inside TILES/images or TILES/masks).",
)
@click.option("--overwrite", is_flag=True, default=False, help="Replace an earlier STAC catalog in OUT.")
@quiet_option
@guarded
def command(tiles: Path, out: Path, overwrite: bool, quiet: bool) -> None:
    """Write a STAC catalog of the tile set TILES (from `rsaug tile`, `rsaug synthesize` or `rsaug filter`).

    \b
    rsaug stac TILES -o TILES/stac
    OUT/collection.json              the Collection (extent, class scheme, synthesis recipe)
    OUT/<tile_id>/<tile_id>.json     one Item per tile: assets image + mask (relative hrefs), WGS84
                                     footprint, projection, label/classification, file checksums, split,
                                     class pixel counts, provenance of synthetic tiles

    Keep OUT and TILES in the same relative position when copying them. Read it with pystac or odc-stac
    (docs/stac.md).
    """
    ts = TileSet.open(tiles)
    check_catalog(out, ts.root, overwrite=overwrite)
    path = write_catalog(ts.root, out, overwrite=overwrite, quiet=quiet)
    if not quiet:
        click.echo(f"STAC collection written to {path}: {len(ts.index)} items")
