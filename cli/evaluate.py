"""``rsaug evaluate``: generator quality (FID, segmentation fidelity, LPIPS diversity, mCSD / mOCD, radiometry)."""

from __future__ import annotations

from pathlib import Path

import click

from rsaug.cli.common import device_option, guarded, quiet_option, reporter, seed_option
from rsaug.core.errors import InputError
from rsaug.core.locks import output_lock
from rsaug.evaluation.evaluate import HTML_FILE, MARKDOWN_FILE, RESULTS_FILE, EvaluateConfig, evaluate
from rsaug.evaluation.tables import summary_line


@click.command("evaluate", context_settings={"show_default": True})
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(path_type=Path, readable=False))
@click.option(
    "--tiles",
    "-t",
    type=click.Path(path_type=Path, readable=False),
    required=True,
    help="Real tile set (from `rsaug tile`); its test split's masks are generated and compared.",
)
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, readable=False),
    required=True,
    help="Output directory for evaluation.json / .md / .html.",
)
@click.option(
    "--label",
    "labels",
    multiple=True,
    default=(),
    show_default="run directory name",
    help="Display name of each checkpoint, in order (repeat once per checkpoint).",
)
@click.option("--split", default="test", show_default=True, help="Split of TILES whose masks are evaluated.")
@click.option("--max-tiles", type=int, default=None, show_default="all", help="Use at most this many tiles.")
@click.option(
    "--segmenter",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="train one",
    help="U-Net trained on real data (segmenter.pt from an earlier `rsaug evaluate`); without it a "
    "U-Net is trained on the real train split and saved as OUT/segmenter.pt.",
)
@click.option(
    "--segmenter-preset",
    default="cpu-small",
    show_default=True,
    help="Benchmark preset of the U-Net trained on the fly (cpu-small or paper).",
)
@click.option(
    "--segmenter-iterations",
    type=int,
    default=None,
    show_default="preset's",
    help="Optimizer steps of the U-Net trained on the fly.",
)
@click.option("--no-segmentation", is_flag=True, default=False, help="Skip segmentation fidelity.")
@click.option("--no-fid", is_flag=True, default=False, help="Skip FID.")
@click.option(
    "--fid-floor-split",
    default="train",
    show_default=True,
    help="Split of TILES giving the floors: FID and radiometric error between the evaluated real tiles and as "
    "many other real tiles of this split (what a perfect generator would score at this set size); 'none' = no "
    "floors.",
)
@click.option(
    "--diversity-masks", type=int, default=50, show_default=True, help="Masks used for LPIPS diversity (0 = skip)."
)
@click.option("--diversity-samples", type=int, default=10, show_default=True, help="Samples per mask (diversity).")
@click.option("--diversity-pairs", type=int, default=10, show_default=True, help="Random pairs per mask (diversity).")
@click.option("--csd-masks", type=int, default=20, show_default=True, help="Masks used for mCSD / mOCD (0 = skip).")
@click.option(
    "--csd-min-pixels",
    type=int,
    default=64,
    show_default=True,
    help="A class counts in a mask for mCSD / mOCD only with at least this many pixels.",
)
@click.option(
    "--region",
    type=click.Choice(["masked", "spatial"]),
    default="masked",
    show_default=True,
    help="mCSD / mOCD region restriction: LPIPS of region-masked images, or the LPIPS spatial map "
    "averaged over the region (docs/metrics.md).",
)
@click.option(
    "--lpips-net", type=click.Choice(["alex", "vgg"]), default="alex", show_default=True, help="LPIPS network."
)
@click.option(
    "--rgb-bands",
    default="0,1,2",
    show_default=True,
    help="Band indices (0-based, comma-separated) used as RGB for FID and LPIPS.",
)
@click.option("--batch-size", type=int, default=8, show_default=True, help="Masks per generator forward pass.")
@seed_option
@device_option
@quiet_option
@guarded
def command(
    checkpoints: tuple[Path, ...],
    tiles: Path,
    out: Path,
    labels: tuple[str, ...],
    split: str,
    max_tiles: int | None,
    segmenter: Path | None,
    segmenter_preset: str,
    segmenter_iterations: int | None,
    no_segmentation: bool,
    no_fid: bool,
    fid_floor_split: str,
    diversity_masks: int,
    diversity_samples: int,
    diversity_pairs: int,
    csd_masks: int,
    csd_min_pixels: int,
    region: str,
    lpips_net: str,
    rgb_bands: str,
    batch_size: int,
    seed: int,
    device: str,
    quiet: bool,
) -> None:
    """Evaluate one or several generator checkpoints side by side (the paper's Table I).

    \b
    rsaug evaluate RUN_CSEBGAN RUN_SPADE --tiles TILES -o EVAL
    rsaug evaluate RUN/checkpoints/last.ckpt --tiles TILES -o EVAL --segmenter EVAL_OLD/segmenter.pt

    For the masks of the test split: FID against the real test tiles, mIoU / FWIoU / accuracy of a U-Net trained
    on real data applied to the generated images, LPIPS diversity and mCSD / mOCD, and the radiometry of the
    generated images (per-band mean / std in DN against the real test tiles, overall and per class, within
    3 DN and 10 % or not). Writes evaluation.json, evaluation.md and evaluation.html into OUT.
    """
    try:
        bands = [int(b) for b in rgb_bands.split(",")]
    except ValueError:
        raise InputError(None, f"--rgb-bands must be three comma-separated integers, got {rgb_bands!r}") from None
    cfg = EvaluateConfig(
        tiles=str(tiles),
        checkpoints=[str(c) for c in checkpoints],
        labels=list(labels) or None,
        split=split,
        max_tiles=max_tiles,
        diversity_masks=diversity_masks,
        diversity_samples=diversity_samples,
        diversity_pairs=diversity_pairs,
        csd_masks=csd_masks,
        csd_min_pixels=csd_min_pixels,
        region=region,
        lpips_net=lpips_net,
        segmenter=None if segmenter is None else str(segmenter),
        segmenter_preset=segmenter_preset,
        segmenter_iterations=segmenter_iterations,
        rgb_bands=bands,
        batch_size=batch_size,
        seed=seed,
        device=device,
        fid=not no_fid,
        segmentation=not no_segmentation,
        fid_floor_split=None if fid_floor_split.lower() == "none" else fid_floor_split,
    )
    with output_lock(out, "evaluation"):
        results = evaluate(cfg, out, reporter=reporter(quiet))
    if quiet:
        return
    click.echo(
        f"Evaluated {len(results['checkpoints'])} checkpoint(s) on {results['tiles']} {split} tiles of "
        f"{tiles} in {results['seconds']:.0f} s:"
    )
    for e in results["checkpoints"]:
        click.echo(f"  {e['label']}: {summary_line(e)}")
    ref = results.get("reference", {}).get("segmentation")
    if ref:
        click.echo(
            f"  real test tiles (U-Net reference): mIoU {100 * ref['miou']:.2f}, FWIoU "
            f"{100 * ref['fwiou']:.2f}, Acc {100 * ref['accuracy']:.2f}"
        )
    click.echo(f"Results: {out / RESULTS_FILE}, table: {out / MARKDOWN_FILE}, {out / HTML_FILE}")
