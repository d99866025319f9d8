"""``rsaug demo``: the whole pipeline on the bundled real sample (the README's main command).

tile -> train -> synthesize --double-rare-classes -> evaluate -> filter (the recommended recipe: per-class
histogram alignment + FreeMask pixel filtering with the evaluation's real-only U-Net) -> benchmark-augmentation
-> report.html.
Each stage is the ordinary subcommand reading the previous stage's files, so every stage can be inspected
and re-run on its own; re-running the demo resumes (finished stages are kept).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from rsaug.core.files import clear_directory
from rsaug.core.locks import output_lock
from rsaug.io.sample import gid15_sample, sample_root

from .common import BadInput, device_option, guarded, seed_option

# Sized so the demo finishes within 20 minutes on 2 CPU cores (plus the one-off set-up); measured 2026-12-02:
# 19 min 42 s on a slow 2-core machine (U-Net step 0.43 s), 14 min on a faster one before the filter stage (README).
DEMO_TILE_SIZE = 112
DEMO_TRAIN_STEPS = 400
DEMO_BENCH_SEEDS = 2
DEMO_BENCH_ITERATIONS = 150


def _run(command: click.Command, args: list[str], title: str) -> float:
    click.secho(f"\n=== {title}", bold=True)
    click.echo("rsaug " + command.name + " " + " ".join(args))
    t0 = time.perf_counter()
    command.main(args=args, prog_name=f"rsaug {command.name}", standalone_mode=False)
    return time.perf_counter() - t0


@click.command("demo")
@click.option(
    "--out",
    "-o",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("demo_out"),
    show_default=True,
    help="Directory for every stage's output (tiles/, run/, synthetic/, evaluation/, filtered/, benchmark/).",
)
@click.option(
    "--steps",
    type=int,
    default=DEMO_TRAIN_STEPS,
    show_default=True,
    help="Training steps of the CSEBGAN (cpu-small preset).",
)
@click.option(
    "--bench-seeds",
    type=int,
    default=DEMO_BENCH_SEEDS,
    show_default=True,
    help="Seeds per benchmark arm (cpu-small uses 3; the demo fewer, and its report says so).",
)
@click.option(
    "--bench-iterations",
    type=int,
    default=DEMO_BENCH_ITERATIONS,
    show_default=True,
    help="U-Net optimiser steps per benchmark run (and of the real-data U-Net of the evaluation).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    default=False,
    help="Start from scratch (delete OUT first) instead of resuming finished stages.",
)
@seed_option
@device_option
@guarded
def command(
    out: Path, steps: int, bench_seeds: int, bench_iterations: int, overwrite: bool, seed: int, device: str
) -> None:
    """Run the whole pipeline on the bundled real sample (45 GID-15 tiles) and print where the report is."""
    # the demo holds OUT's lock; every stage locks its own subdirectory (OUT/tiles, OUT/run, ...), never OUT
    with output_lock(out, "demo"):
        if overwrite:
            clear_directory(out)  # not rmtree: OUT's lock file must stay while the lock is held
        _stages(out, steps, bench_seeds, bench_iterations, seed, device)


def _stages(out: Path, steps: int, bench_seeds: int, bench_iterations: int, seed: int, device: str) -> None:
    from . import benchmark, evaluate, filter, synthesize, tile, train

    images, labels = gid15_sample()
    click.echo(f"Sample: {sample_root()} (licences and citations in its README.md)")
    tiles, run, syn = out / "tiles", out / "run", out / "synthetic"
    evaluation, filtered, bench = out / "evaluation", out / "filtered", out / "benchmark"
    common = ["--seed", str(seed)]
    times: dict[str, float] = {}

    if not (tiles / "tileset.json").is_file():
        times["tile"] = _run(
            tile.command,
            [
                str(images),
                str(labels),
                "-o",
                str(tiles),
                "--mask-suffix",
                "_15label",
                "--scheme",
                "gid15",
                "--tile-size",
                str(DEMO_TILE_SIZE),
                *common,
            ],
            "1/6 tile",
        )
    train_args = [
        str(tiles),
        "-o",
        str(run),
        "--preset",
        "cpu-small",
        "--steps",
        str(steps),
        "--device",
        device,
        *common,
    ]
    if (run / "checkpoints" / "last.ckpt").is_file():  # (a run killed early may hold only its lock file)
        train_args.append("--resume")
    times["train"] = _run(train.command, train_args, "2/6 train CSEBGAN")
    ckpt = run / "checkpoints" / "last.ckpt"
    syn_args = [
        "--checkpoint",
        str(ckpt),
        str(tiles),
        "-o",
        str(syn),
        "--double-rare-classes",
        "--device",
        device,
        *common,
    ]
    if syn.exists():
        syn_args.append("--resume")
    times["synthesize"] = _run(synthesize.command, syn_args, "3/6 synthesize --double-rare-classes")
    if not (evaluation / "evaluation.json").is_file():
        times["evaluate"] = _run(
            evaluate.command,
            [
                str(ckpt),
                "--tiles",
                str(tiles),
                "-o",
                str(evaluation),
                "--label",
                "CSEBGAN (demo)",
                "--segmenter-iterations",
                str(bench_iterations),
                "--diversity-masks",
                "8",
                "--csd-masks",
                "4",
                "--device",
                device,
                *common,
            ],
            "4/6 evaluate",
        )
    if not (filtered / "tileset.json").is_file():
        times["filter"] = _run(
            filter.command,
            [
                str(syn),
                "-o",
                str(filtered),
                "--real",
                str(tiles),
                "--align",
                "histogram",
                "--align-per-class",
                *(
                    ["--segmenter", str(evaluation / "segmenter.pt")]
                    if (evaluation / "segmenter.pt").is_file()
                    else ["--train-segmenter", "cpu-small", "--segmenter-iterations", str(bench_iterations)]
                ),
                "--overwrite",
                "--device",
                device,
                *common,
            ],
            "5/6 filter: per-class histogram alignment + FreeMask pixel filtering (the recommended recipe)",
        )
    times["benchmark"] = _run(
        benchmark.command,
        [
            str(tiles),
            "-o",
            str(bench),
            "--synthetic",
            f"csebgan={filtered}",
            "--arms",
            "real,real+synthetic,classic",
            "--seeds",
            str(bench_seeds),
            "--iterations",
            str(bench_iterations),
            "--preset",
            "cpu-small",
            "--device",
            device,
            *common,
        ],
        "6/6 benchmark-augmentation",
    )
    report = bench / "report.html"
    if not report.is_file():
        raise BadInput(f"{report}: the benchmark did not write its report")
    click.secho("\nDemo finished.", bold=True)
    for stage, secs in times.items():
        click.echo(f"  {stage:<11} {secs:7.1f} s")
    click.echo(f"Report:     {report.resolve()}")
    click.echo(f"Evaluation: {(evaluation / 'evaluation.html').resolve()}")
