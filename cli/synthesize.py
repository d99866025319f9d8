"""``rsaug synthesize``: generate a class-balanced synthetic tile set (or one whole synthetic scene)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click
import rasterio

from rsaug.cli.common import device_option, guarded, quiet_option, reporter, scheduler_option, seed_option
from rsaug.cli.stac import check_catalog, stac_option, write_catalog, write_scene_catalog
from rsaug.core.cluster import parse_scheduler
from rsaug.core.errors import InputError
from rsaug.core.locks import output_lock
from rsaug.gan.inference import load_generator
from rsaug.io.tileset import TileSet
from rsaug.synthesis import (
    ALIGN_METHODS,
    PlanConfig,
    alignment_or_none,
    check_compatible,
    class_iou_from,
    plan_synthesis,
    save_plan,
    synthesize_scene,
    synthesize_tileset,
)


@click.command("synthesize", context_settings={"show_default": True})
@click.argument("tiles", required=False, type=click.Path(path_type=Path, readable=False))
@click.option(
    "-c",
    "--checkpoint",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="required",
    help="Generator checkpoint (or a training run directory); optional with --dry-run.",
)
@click.option(
    "--expect-sha256",
    default=None,
    show_default="any",
    metavar="HEX",
    help="Refuse the checkpoint unless its SHA-256 is this (e.g. the checkpoint_sha256 recorded in earlier "
    "synthetic tiles, or published with a shared generator); checked before the file is read.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="required",
    help="Output tile-set directory (with --scene-mask: the output GeoTIFF).",
)
@click.option(
    "--double-rare-classes",
    is_flag=True,
    default=False,
    help="Plan masks and samples so every rare class's pixel count grows by --factor while common "
    "classes grow as little as possible. Without it every training mask is used (plain mode; "
    "1 sample per mask doubles the training set, as in the paper).",
)
@click.option(
    "--factor",
    type=float,
    default=2.0,
    show_default=True,
    help="Growth factor: of every rare class (--double-rare-classes), or of the whole training set "
    "(plain mode without --samples-per-mask).",
)
@click.option(
    "--rare-share",
    type=float,
    default=None,
    show_default="median class share",
    help="A class is rare when its pixel share in the split is below this.",
)
@click.option(
    "--samples-per-mask",
    type=int,
    default=None,
    show_default="1 plain, 4 with --vary-class",
    help="Samples generated per mask (plain and --vary-class modes).",
)
@click.option(
    "--max-samples-per-mask",
    type=int,
    default=None,
    show_default="2 x ceil(factor - 1); 4 with --hard-classes-from",
    help="--double-rare-classes: most samples the planner may take of one mask; --hard-classes-from: samples "
    "of the hardest mask.",
)
@click.option(
    "--hard-classes-from",
    "hard_from",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="off",
    help="Hardness-aware sampling (instead of --double-rare-classes): per-class IoU of a real-only segmenter "
    "(a segmenter.pt, measured on TILES' val split, or a benchmark report.json, its 'real' arm); every mask gets "
    "1..--max-samples-per-mask (default 4) samples, more the larger its pixel share of low-IoU classes.",
)
@click.option(
    "--align-radiometry",
    type=click.Choice(list(ALIGN_METHODS)),
    default="none",
    show_default=True,
    help="Radiometric alignment of every generated image to the real train split's statistics, per band: "
    "mean-std (match mean and standard deviation) or histogram (quantile mapping).",
)
@click.option(
    "--align-per-class",
    is_flag=True,
    default=False,
    help="With --align-radiometry: match each class region to the real pixels of that class (classes with "
    "fewer than 1000 real pixels use the band statistics).",
)
@click.option(
    "--vary-class",
    default=None,
    show_default="off",
    help="Semantic editing: for each mask containing this class, N samples in which only this class's "
    "embedding is resampled and everything else is kept.",
)
@click.option(
    "--allow-absent",
    is_flag=True,
    default=False,
    help="--double-rare-classes: skip classes with no pixels in the split instead of failing.",
)
@click.option("--split", default="train", show_default=True, help="Split of TILES whose masks are used.")
@click.option(
    "--tile-id",
    "tile_ids",
    multiple=True,
    default=(),
    show_default="all tiles of the split",
    help="Only these source tiles (repeatable).",
)
@click.option("--dry-run", is_flag=True, default=False, help="Only compute, print (and --plan-json) the plan.")
@click.option(
    "--plan-json",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="OUT/plan.json",
    help="Also save the plan as JSON here.",
)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Masks (or windows) per forward pass.")
@click.option(
    "--writers",
    type=int,
    default=2,
    show_default=True,
    help="GeoTIFF writer threads working while the generator computes.",
)
@click.option(
    "--scene-mask",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="off",
    help="Whole-scene mode: one seamless synthetic GeoTIFF for this large mask raster (no TILES).",
)
@click.option(
    "--window",
    type=int,
    default=None,
    show_default="checkpoint crop size",
    help="Whole-scene mode: window size in pixels.",
)
@click.option(
    "--overlap",
    type=int,
    default=None,
    show_default="window / 4",
    help="Whole-scene mode: overlap of neighbouring windows in pixels (cosine-feathered).",
)
@click.option(
    "--mask-values",
    type=click.Choice(["scheme", "internal"]),
    default="scheme",
    show_default=True,
    help="Whole-scene mode: the mask holds the scheme's raw values, or rsaug's internal values (0..K-1, 255 unknown).",
)
@click.option(
    "--cog",
    is_flag=True,
    default=False,
    help="Whole-scene mode: write a cloud-optimized GeoTIFF (deflate, 256-px internal tiles, 512 px for scenes of "
    "2048 px and more, overviews). The mask must be georeferenced (have a CRS).",
)
@stac_option
@click.option("--overwrite", is_flag=True, default=False, help="Replace an earlier rsaug output at OUT.")
@scheduler_option
@click.option(
    "--resume",
    is_flag=True,
    default=False,
    help="Continue an interrupted run into OUT (same tiles, checkpoint and plan).",
)
@seed_option
@device_option
@quiet_option
@guarded
def command(
    tiles: Path | None,
    checkpoint: Path | None,
    expect_sha256: str | None,
    out: Path | None,
    double_rare_classes: bool,
    factor: float,
    rare_share: float | None,
    samples_per_mask: int | None,
    max_samples_per_mask: int | None,
    hard_from: Path | None,
    align_radiometry: str,
    align_per_class: bool,
    vary_class: str | None,
    allow_absent: bool,
    split: str,
    tile_ids: tuple[str, ...],
    dry_run: bool,
    plan_json: Path | None,
    batch_size: int,
    writers: int,
    scene_mask: Path | None,
    window: int | None,
    overlap: int | None,
    mask_values: str,
    cog: bool,
    stac: Path | None,
    overwrite: bool,
    scheduler: str | None,
    resume: bool,
    seed: int,
    device: str,
    quiet: bool,
) -> None:
    """Generate synthetic training data from a trained generator.

    \b
    rsaug synthesize -c RUN TILES -o SYN                         # plain: double the training split
    rsaug synthesize -c RUN TILES -o SYN --double-rare-classes   # rebalance rare classes
    rsaug synthesize -c RUN TILES --double-rare-classes --dry-run
    rsaug synthesize -c RUN TILES -o SYN --vary-class river --samples-per-mask 4
    rsaug synthesize -c RUN TILES -o SYN --hard-classes-from EVAL/segmenter.pt   # hardness-aware sampling
    rsaug synthesize -c RUN TILES -o SYN --align-radiometry histogram --align-per-class
    rsaug synthesize -c RUN --scene-mask MASK.tif -o SCENE.tif   # one seamless synthetic scene
    rsaug synthesize -c RUN --scene-mask MASK.tif -o SCENE.tif --cog --stac SCENE_STAC   # as a COG + STAC
    rsaug synthesize -c RUN TILES -o SYN --stac SYN/stac         # and a STAC catalog of the synthetic set

    The output tile set has the same format as `rsaug tile` output (images/, masks/, index.gpkg, tileset.json
    with synthetic=true); every tile keeps its source tile's CRS and transform and records its provenance.
    """
    if overwrite and resume:
        raise InputError(out, "give either --overwrite or --resume, not both")
    if expect_sha256 is not None and checkpoint is None:
        raise InputError(None, "--expect-sha256 needs --checkpoint")
    if batch_size < 1 or writers < 1:
        raise InputError(None, "--batch-size and --writers must be at least 1")
    spec = parse_scheduler(scheduler) if scheduler is not None else None
    if cog and scene_mask is None:
        raise InputError(None, "--cog applies to whole-scene mode (--scene-mask)")
    if stac is not None and dry_run:
        raise InputError(stac, "--stac needs a run that writes tiles (not --dry-run)")
    if scene_mask is not None:
        if spec is not None:
            raise InputError(scene_mask, "--scheduler distributes tile sets; a whole scene is synthesized here")
        if tiles is not None:
            raise InputError(tiles, "give either TILES or --scene-mask, not both")
        if checkpoint is None or out is None:
            raise InputError(None, "--scene-mask needs --checkpoint and -o OUT.tif")
        if stac is not None:
            check_catalog(stac, None, overwrite=overwrite)
        gen = load_generator(checkpoint, device=device, expect_sha256=expect_sha256)
        path = synthesize_scene(
            scene_mask,
            gen,
            out,
            checkpoint=checkpoint,
            window=window,
            overlap=overlap,
            seed=seed,
            mask_values=mask_values,
            batch_size=batch_size,
            overwrite=overwrite,
            cog=cog,
            reporter=reporter(quiet),
        )
        catalog = None if stac is None else write_scene_catalog(path, stac, gen.scheme, overwrite=overwrite)
        if not quiet:
            with rasterio.open(path) as dst:
                click.echo(
                    f"Synthetic scene written to {path}: {dst.width} x {dst.height} px, {dst.count} bands "
                    f"{dst.dtypes[0]}, CRS {dst.crs}" + (" (cloud-optimized)" if cog else "")
                )
            if catalog is not None:
                click.echo(f"STAC collection written to {catalog}")
        return
    if tiles is None:
        raise InputError(None, "give TILES (a tile set from `rsaug tile`) or --scene-mask")
    if sum(bool(x) for x in (double_rare_classes, vary_class, hard_from)) > 1:
        raise InputError(None, "give only one of --double-rare-classes, --vary-class and --hard-classes-from")
    if not dry_run and (checkpoint is None or out is None):
        raise InputError(None, "--checkpoint and -o OUT are required (except with --dry-run)")
    if dry_run and align_per_class and align_radiometry == "none":
        raise InputError(None, "--align-per-class needs --align-radiometry mean-std or histogram")
    if stac is not None and out is not None:
        check_catalog(stac, out, overwrite=overwrite or resume)
    # The writer lock is taken before planning and loading the generator, so a second writer is refused at once
    # (whole-scene mode above writes one file atomically and needs no lock; a dry run writes no tile set).
    with contextlib.nullcontext() if dry_run or out is None else output_lock(out, "synthesis run"):
        mode = "rare" if double_rare_classes else ("vary" if vary_class else ("hard" if hard_from else "plain"))
        ts = TileSet.open(tiles)
        class_iou = None
        if hard_from is not None:
            class_iou = class_iou_from(hard_from, ts, split="val", device=device, reporter=reporter(quiet))
        cfg = PlanConfig(
            mode=mode,
            factor=factor,
            rare_share=rare_share,
            samples_per_mask=samples_per_mask,
            max_samples_per_mask=max_samples_per_mask,
            split=split,
            seed=seed,
            allow_absent=allow_absent,
            vary_class=vary_class,
            tile_ids=list(tile_ids) or None,
            class_iou=None if class_iou is None else class_iou.iou,
            hardness_source=None if class_iou is None else f"{class_iou.kind} {class_iou.source}",
        )
        plan = plan_synthesis(ts, cfg)
        gen = None
        if checkpoint is not None:
            gen = load_generator(checkpoint, device=device, expect_sha256=expect_sha256)
            check_compatible(gen, ts, checkpoint)
        if not quiet:
            click.echo(plan.format_table())
        if plan_json is not None:
            save_plan(plan, plan_json)
        if dry_run:
            return
        assert gen is not None and out is not None
        alignment = alignment_or_none(ts, align_radiometry, align_per_class, reporter=reporter(quiet))
        res = synthesize_tileset(
            ts,
            gen,
            out,
            plan,
            checkpoint=checkpoint,
            batch_size=batch_size,
            writers=writers,
            overwrite=overwrite,
            resume=resume,
            alignment=alignment,
            reporter=reporter(quiet),
            scheduler=spec,
            worker_device=device,
        )
        catalog = None if stac is None else write_catalog(res.out, stac, overwrite=overwrite or resume, quiet=quiet)
        if not quiet:
            click.echo(
                f"Synthetic tile set written to {res.out}: {plan.total_samples} tiles from {len(plan.tiles)} "
                f"masks ({res.generated} generated, {res.resumed} kept from an earlier run) in "
                f"{res.seconds:.1f} s ({res.tiles_per_second:.2f} tiles/s; generator "
                f"{res.generator_seconds:.1f} s) on {gen.device}"
            )
            click.echo(
                f"  checkpoint sha256 {gen.checkpoint_sha256[:16]}..., seed {seed}; plan in {res.out / 'plan.json'}"
            )
            if alignment is not None:
                click.echo(
                    f"  images aligned to the real train split ({align_radiometry}"
                    + (", per class" if align_per_class else "")
                    + f"); statistics in {res.out / 'radiometry.json'}"
                )
            if catalog is not None:
                click.echo(f"  STAC collection in {catalog}")
