"""``rsaug filter``: FreeMask pixel filtering and radiometric alignment of an existing synthetic tile set."""

from __future__ import annotations

from pathlib import Path

import click

from rsaug.cli.common import device_option, guarded, quiet_option, reporter, seed_option
from rsaug.core.locks import output_lock
from rsaug.segmentation import PRESETS
from rsaug.synthesis import ALIGN_METHODS, DEFAULT_MARGIN, FILTER_REPORT, filter_tileset


@click.command("filter", context_settings={"show_default": True})
@click.argument("synthetic", type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, readable=False),
    required=True,
    show_default="required",
    help="New tile-set directory (same images, filtered masks, same tile ids).",
)
@click.option(
    "--real",
    type=click.Path(path_type=Path, readable=False),
    required=True,
    show_default="required",
    help="The real tile set: reference losses and radiometry come from its train split.",
)
@click.option(
    "--segmenter",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="off",
    help="Pixel filtering (FreeMask) with this real-only U-Net (segmenter.pt from `rsaug evaluate`): synthetic "
    "pixels whose cross-entropy exceeds --margin x their class's mean loss on the real train split are ignored.",
)
@click.option(
    "--train-segmenter",
    type=click.Choice(list(PRESETS)),
    default=None,
    show_default="off",
    help="Pixel filtering with a U-Net trained here (this preset, --seed) on the real train split; saved as "
    "OUT/segmenter.pt.",
)
@click.option(
    "--segmenter-iterations",
    type=int,
    default=None,
    show_default="preset's",
    help="Optimizer steps of the U-Net trained with --train-segmenter.",
)
@click.option(
    "--margin",
    type=float,
    default=DEFAULT_MARGIN,
    show_default=True,
    help="Loss margin: a pixel is ignored when its loss exceeds margin x its class's mean real loss (FreeMask).",
)
@click.option(
    "--min-kept-share",
    type=float,
    default=0.0,
    show_default="0: off",
    help="Class gate: a class of which less than this share of the synthetic pixels passes the loss filter is "
    "ignored in every synthetic mask (classes the generator does not draw recognisably); needs a segmenter.",
)
@click.option(
    "--align",
    type=click.Choice(list(ALIGN_METHODS)),
    default="none",
    show_default=True,
    help="Radiometric alignment of the images to the real train split, per band: mean-std or histogram "
    "(quantile mapping); applied before filtering.",
)
@click.option(
    "--align-per-class",
    is_flag=True,
    default=False,
    help="With --align: match each class region to the real pixels of that class.",
)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Tiles per segmenter forward pass.")
@click.option("--overwrite", is_flag=True, default=False, help="Replace an earlier `rsaug filter` output at OUT.")
@seed_option
@device_option
@quiet_option
@guarded
def command(
    synthetic: Path,
    out: Path,
    real: Path,
    segmenter: Path | None,
    train_segmenter: str | None,
    segmenter_iterations: int | None,
    margin: float,
    min_kept_share: float,
    align: str,
    align_per_class: bool,
    batch_size: int,
    overwrite: bool,
    seed: int,
    device: str,
    quiet: bool,
) -> None:
    """Filter (and/or radiometrically align) a synthetic tile set into a new one.

    \b
    rsaug filter SYN -o SYN_F --segmenter EVAL/segmenter.pt --real TILES            # FreeMask, margin 1.25
    rsaug filter SYN -o SYN_F --train-segmenter cpu-small --real TILES --seed 0
    rsaug filter SYN -o SYN_A --align mean-std --real TILES                          # alignment only
    rsaug filter SYN -o SYN_AF --align histogram --segmenter EVAL/segmenter.pt --real TILES
    rsaug filter SYN -o SYN_G --segmenter EVAL/segmenter.pt --real TILES --min-kept-share 0.5   # + class gate

    Writes a tile set in the format of `rsaug tile` (usable by TorchGeo and the benchmark) with the same tile
    ids; masks lose the pixels the real-only segmenter finds too hard; filter_report.json gives the share of
    pixels removed per class. Unknown pixels always stay unknown.
    """
    with output_lock(out, "filtered tile set"):
        res = filter_tileset(
            synthetic,
            out,
            real=real,
            segmenter=segmenter,
            train_preset=train_segmenter,
            segmenter_iterations=segmenter_iterations,
            margin=margin,
            min_kept_share=min_kept_share,
            align=align,
            align_per_class=align_per_class,
            seed=seed,
            device=device,
            batch_size=batch_size,
            overwrite=overwrite,
            reporter=reporter(quiet),
        )
    if quiet:
        return
    rep = res.report
    click.echo(f"Tile set written to {res.out}: {res.tiles} tiles in {res.seconds:.1f} s")
    if rep["config"]["margin"] is not None:
        click.echo(
            f"  pixels ignored: {rep['pixels_removed']:,} of {rep['pixels_labelled_before']:,} labelled "
            f"({rep['share_removed']:.2%}), margin {rep['config']['margin']:g}; per class in {res.out / FILTER_REPORT}"
        )
        width = max(len(c["name"]) for c in rep["classes"])
        for c in rep["classes"]:
            if c["pixels_before"]:
                gate = "  (class gate: ignored)" if c["dropped_by_class_gate"] else ""
                click.echo(f"    {c['name']:<{width}}  {c['share_removed']:>7.2%} of {c['pixels_before']:>12,}{gate}")
    if rep["config"]["radiometry"] is not None:
        r = rep["config"]["radiometry"]
        click.echo(f"  images aligned ({r['method']}{', per class' if r['per_class'] else ''}) to {r['source']}")
