"""``rsaug benchmark-augmentation``: does synthetic data improve a U-Net? (arms x seeds, paired, resumable)."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import click

from rsaug.benchmark import ARM_KINDS, BenchmarkConfig, preset_defaults, resolve_arms, run_benchmark
from rsaug.cli.common import device_option, guarded, quiet_option, reporter, seed_option
from rsaug.core.errors import InputError
from rsaug.core.locks import output_lock
from rsaug.core.runtime import select_device
from rsaug.segmentation import PRESETS, SELECT_MODES
from rsaug.segmentation import preset as get_preset


def _named(values: tuple[str, ...], what: str) -> dict[str, str]:
    """Parse ``NAME=PATH`` or ``PATH`` values (a bare path is named ``synthetic`` / ``synthetic2`` ...)."""
    out: dict[str, str] = {}
    for v in values:
        if "=" in v and not Path(v).exists():
            name, path = v.split("=", 1)
        else:
            name, path = ("synthetic" if not out else f"synthetic{len(out) + 1}"), v
        name = name.strip()
        if not name or any(c in name for c in "/\\+ ,") or name.endswith("-only"):
            raise InputError(None, f"invalid {what} name {name!r} (no '/', '+', ',', spaces or '-only' suffix)")
        if name in out:
            raise InputError(None, f"{what} name {name!r} given twice")
        out[name] = path
    return out


@click.command("benchmark-augmentation", context_settings={"show_default": True})
@click.argument("tiles", type=click.Path(path_type=Path, readable=False))
@click.option(
    "-o",
    "--out",
    type=click.Path(path_type=Path, readable=False),
    required=True,
    help="Output directory (report.json, CSVs, PNGs, report.html, runs/). Re-running resumes.",
)
@click.option(
    "-s",
    "--synthetic",
    "synthetic",
    multiple=True,
    default=(),
    show_default="none",
    help="Synthetic tile set from `rsaug synthesize`, as DIR or NAME=DIR (repeatable, e.g. csebgan=SYN1 spade=SYN2).",
)
@click.option(
    "-c",
    "--checkpoint",
    "checkpoints",
    multiple=True,
    default=(),
    show_default="none",
    help="Generate the synthetic set on the fly from a generator checkpoint (CKPT or NAME=CKPT, "
    "repeatable; one sample per training mask, written to OUT/synthetic/NAME).",
)
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default="cpu-small",
    show_default=True,
    help="Training protocol: cpu-small (resnet18, 64-px crops, 500 steps; all arms x 3 seeds in about "
    "45 min on 2 CPU cores), cpu-converge (mobilenet_v2 U-Net, narrow decoder, 64-px crops, 800 steps, with "
    "validation and best-val selection; defaults to 5 seeds, arms real,real+synthetic,classic and "
    "--real-fractions 0.25: 40 runs of 3-4.5 min each on 2 CPU cores, depending on the machine; resumable) or "
    "paper (resnet34, 224-px crops, "
    "10000 steps; for a GPU).",
)
@click.option(
    "--arms",
    default=None,
    show_default="from preset: real,real+synthetic,classic,synthetic-only; cpu-converge: real,real+synthetic,classic",
    help="Comma-separated arms: real, real+synthetic (one arm per synthetic set), classic (flips, "
    "rotations, colour jitter), classic+synthetic (classic augmentation on real and synthetic crops: the "
    "combination), synthetic-only; or explicit names like real+csebgan, classic+csebgan, csebgan-only. "
    "Arms needing synthetic data are dropped when none is given. Mixing recipes are suffixes of real+ and "
    "classic+ arms, "
    "joined by '~': ~pretrain[F] = synthetic pre-training, the last F (default 0.25) of the steps on real tiles "
    "only; ~anneal = the synthetic share decays linearly to 0; ~wW = synthetic crops' loss weighted by W in "
    "(0, 1]; e.g. real+csebgan~pretrain~w0.5.",
)
@click.option(
    "--seeds",
    type=int,
    default=None,
    show_default="from preset: 3; cpu-converge: 5",
    help="Seeds per arm (seed s = same initialisation and real-tile order in every arm).",
)
@click.option("--iterations", type=int, default=None, show_default="from preset", help="Optimizer steps per run.")
@click.option("--crop", type=int, default=None, show_default="from preset", help="Training crop size (multiple of 32).")
@click.option("--batch-size", type=int, default=None, show_default="from preset", help="Training batch size.")
@click.option(
    "--backbone",
    default=None,
    show_default="from preset",
    help="U-Net encoder (segmentation-models-pytorch name; random init).",
)
@click.option("--lr", type=float, default=None, show_default="from preset", help="Peak AdamW learning rate.")
@click.option(
    "--synthetic-fraction",
    type=float,
    default=None,
    show_default="proportional to tile counts",
    help="Share of the training draws taken from synthetic tiles in real+synthetic arms.",
)
@click.option(
    "--real-fractions",
    default=None,
    show_default="from preset: none; cpu-converge: 0.25",
    metavar="F1,F2,...",
    help="Training-set-size sweep (Table III): also train 'real', every 'real+NAME' and 'classic' arm on these "
    "shares (0..1) of the real training tiles (nested seeded subsets; synthetic tiles only from "
    "the kept tiles' masks).",
)
@click.option(
    "--replace-fractions",
    default="",
    show_default="none",
    metavar="R1,R2,...",
    help="Replace-vs-augment curve: arms 'replace-NAME@R' with a share R of the real training tiles "
    "replaced by the synthetic tiles made from their masks (the set keeps its size).",
)
@click.option("--test-split", default="test", show_default=True, help="Real split used for evaluation.")
@click.option(
    "--test-tiles",
    type=click.Path(path_type=Path, readable=False),
    default=None,
    show_default="none: the --test-split of TILES",
    help="Evaluate on every tile of this separate tile set instead (same class scheme, band count and dtype; "
    "tiles from scenes that also feed training are refused).",
)
@click.option(
    "--val-split",
    default="val",
    show_default=True,
    help="Real split of TILES evaluated during training (validation curves, convergence, best-val selection).",
)
@click.option(
    "--val-every",
    type=int,
    default=None,
    show_default="from preset: 0 (off); cpu-converge: 160",
    help="Steps between validation mIoU evaluations during training (0 = none).",
)
@click.option(
    "--select",
    type=click.Choice(list(SELECT_MODES)),
    default=None,
    show_default="from preset: last; cpu-converge: best-val",
    help="Weights evaluated on the test tiles: the last step, or the step with the best validation mIoU.",
)
@click.option(
    "--threads",
    type=int,
    default=None,
    show_default="from preset (2 for cpu-small)",
    help="Torch CPU threads (0 = torch default).",
)
@click.option(
    "--max-runs",
    type=int,
    default=None,
    show_default="all",
    help="Train at most this many new runs now, then write the report (resume later).",
)
@seed_option
@device_option
@quiet_option
@guarded(renames={"checkpoints": "--checkpoint"})
def command(
    tiles: Path,
    out: Path,
    synthetic: tuple[str, ...],
    checkpoints: tuple[str, ...],
    preset: str,
    arms: str | None,
    seeds: int | None,
    iterations: int | None,
    crop: int | None,
    batch_size: int | None,
    backbone: str | None,
    lr: float | None,
    synthetic_fraction: float | None,
    real_fractions: str | None,
    replace_fractions: str,
    test_split: str,
    test_tiles: Path | None,
    val_split: str,
    val_every: int | None,
    select: str | None,
    threads: int | None,
    max_runs: int | None,
    seed: int,
    device: str,
    quiet: bool,
) -> None:
    """Train TorchGeo's U-Net on real, real + synthetic, classic-augmented and synthetic-only data (several
    paired seeds each, same steps and evaluation) and report d-mIoU / d-FWIoU / d-acc with their noise.

    \b
    rsaug benchmark-augmentation TILES -s csebgan=SYN -o REPORT
    rsaug benchmark-augmentation TILES -s csebgan=SYN1 -s spade=SYN2 --seeds 5 -o REPORT
    rsaug benchmark-augmentation TILES -s csebgan=SYN1 -s spade=SYN2 --preset cpu-converge -o REPORT
    rsaug benchmark-augmentation TILES -s csebgan=SYN --test-tiles OTHER_REGION_TILES -o REPORT
    rsaug benchmark-augmentation TILES -c csebgan=RUN/checkpoints/last.ckpt -o REPORT --preset paper --device cuda
    """
    select_device(device)
    if not tiles.exists():
        raise InputError(tiles, "tile set directory not found")
    syn = _named(synthetic, "synthetic set")
    ckp = _named(checkpoints, "checkpoint")
    for p in syn.values():
        if not Path(p).exists():
            raise InputError(p, "synthetic tile set directory not found")
    for p in ckp.values():
        if not Path(p).exists():
            raise InputError(p, "checkpoint not found")
    if test_tiles is not None and not test_tiles.exists():
        raise InputError(test_tiles, "test tile set directory not found")
    defaults = preset_defaults(preset)
    seeds = defaults["seeds"] if seeds is None else seeds
    arms = ",".join(defaults["arms"]) if arms is None else arms
    fractions = (
        list(defaults["real_fractions"]) if real_fractions is None else _fractions(real_fractions, "--real-fractions")
    )
    seg = get_preset(preset)
    overrides = {
        k: v
        for k, v in {
            "iterations": iterations,
            "crop": crop,
            "batch_size": batch_size,
            "backbone": backbone,
            "lr": lr,
            "threads": threads,
            "val_every": val_every,
            "select": select,
        }.items()
        if v is not None
    }
    seg = replace(seg, **overrides)
    arm_list = [a.strip() for a in arms.split(",") if a.strip()]
    names = list(syn) + list(ckp)
    if not names:
        dropped = [a for a in arm_list if a in ("real+synthetic", "classic+synthetic", "synthetic-only")]
        arm_list = [a for a in arm_list if a not in dropped]
        if dropped and not quiet:
            click.echo(f"no synthetic data given: skipping arms {', '.join(dropped)}", err=True)
    resolve_arms(arm_list, names)  # validate names before anything is written
    unknown = [
        a
        for a in arm_list
        if a not in ARM_KINDS and not a.startswith(("real+", "classic+")) and not a.endswith("-only")
    ]
    if unknown:
        raise InputError(None, f"unknown arm(s) {unknown}")
    cfg = BenchmarkConfig(
        real=str(tiles),
        synthetic=syn,
        arms=arm_list,
        seeds=seeds,
        first_seed=seed,
        segmenter=seg,
        test_split=test_split,
        synthetic_fraction=synthetic_fraction,
        preset=preset,
        real_fractions=fractions,
        replace_fractions=_fractions(replace_fractions, "--replace-fractions"),
        val_split=val_split,
        test_tiles=None if test_tiles is None else str(test_tiles),
    )
    with output_lock(out, "benchmark"):
        report = run_benchmark(cfg, out, device=device, checkpoints=ckp, reporter=reporter(quiet), max_runs=max_runs)
    if quiet:
        return
    s = report["summary"]
    click.echo("")
    click.echo(f"{'arm':<22}{'seeds':>6}{'mIoU':>17}{'FWIoU':>17}{'acc':>17}")
    for a in report["arms"]:
        st = s["arms"][a]
        cells = "".join(f"{_pm(st[m]['mean'], st[m]['std']):>17}" for m in ("miou", "fwiou", "acc"))
        click.echo(f"{a:<22}{st['n']:>6}{cells}")
    comps = [c for c in s["comparisons"] if c["reference"] == "real"]
    if comps:
        click.echo("")
        click.echo("vs real (paired by seed): relative change % (absolute points), paired t-test p")
        for c in comps:
            cells = "  ".join(
                f"d-{m} {_num(c[m]['relative_pct'], '+.2f')}% ({_num(c[m]['points'], '+.2f')} pt, "
                f"p={_num(c[m]['p_ttest'], '.3g')})"
                for m in ("miou", "fwiou", "acc")
            )
            click.echo(f"  {c['arm']:<20}{cells}")
    for item in s["noise"]["comparisons"]:
        click.echo(item["text"])
    sweep = report.get("sweep", {}).get("rows", [])
    if sweep:
        click.echo("")
        click.echo("size sweep / replace curve (paired by seed): mIoU arm vs reference, d-mIoU % (points, p)")
        for r in sweep:
            c = r["comparison"]["miou"]
            arm, ref = r["arm_stats"]["miou"], r["reference_stats"]["miou"]
            click.echo(
                f"  {r['arm']:<28} vs {r['reference']:<12} {_pm(arm['mean'], arm['std'])} vs "
                f"{_num(ref['mean'], '.4f')}  d-mIoU {_num(c['relative_pct'], '+.2f')}% "
                f"({_num(c['points'], '+.2f')} pt, p={_num(c['p_ttest'], '.3g')})"
            )
    conv = report.get("validation", {}).get("arms", {})
    if any(v["recorded"] for v in conv.values()):
        click.echo("")
        click.echo("converged? (" + report["validation"]["rule"] + ")")
        for a, v in conv.items():
            if v["recorded"]:
                click.echo(
                    f"  {a:<28} {v['converged']} of {v['recorded']} seeds converged, best val mIoU "
                    f"{_pm(v['best_val_miou']['mean'], v['best_val_miou']['std'])} at step "
                    f"{_num(v['best_step']['mean'], '.0f')}"
                )
    n_sweep = len(report.get("config", {}).get("sweep_arms", []))
    expected = (len(report["arms"]) + n_sweep) * seeds
    if len(report["runs"]) < expected:
        click.echo(f"{len(report['runs'])} of {expected} runs finished; run the same command again to continue.")
    click.echo(f"report: {Path(out) / 'report.html'}")


def _fractions(text: str, option: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InputError(None, f"{option} must be comma-separated numbers, got {text!r}") from None


def _num(v: float | None, fmt: str) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _pm(mean: float, std: float) -> str:
    return f"{_num(mean, '.4f')} ± {_num(std, '.4f')}"
