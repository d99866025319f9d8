"""``rsaug demo``: the whole pipeline on the bundled real sample (the README's main command).

tile -> train (or the bundled generator) -> synthesize --double-rare-classes -> evaluate -> filter (the
recommended recipe: per-class histogram alignment + FreeMask pixel filtering with the evaluation's real-only
U-Net) -> benchmark-augmentation -> report.html.
Each stage is the ordinary subcommand reading the previous stage's files, so every stage can be inspected
and re-run on its own; re-running the demo resumes (finished stages are kept).
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from rsaug.core.files import clear_directory, read_json, write_json
from rsaug.core.locks import LOCK_FILE, output_lock
from rsaug.io.sample import gid15_generator, gid15_sample, sample_root

from .common import BadInput, device_option, guarded, seed_option

# Sized so the demo finishes within 20 minutes on 2 CPU cores (plus the one-off set-up); measured 2026-12-02:
# 19 min 42 s on a slow 2-core machine (U-Net step 0.43 s), 14 min on a faster one before the filter stage (README).
DEMO_TILE_SIZE = 112
DEMO_TRAIN_STEPS = 400
DEMO_BENCH_SEEDS = 2
DEMO_BENCH_ITERATIONS = 150
#: ``OUT/demo.json``: the options that decide the stages' outputs, checked when a demo is resumed.
DEMO_FILE = "demo.json"


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
    "--generator",
    type=click.Choice(["bundled", "train"]),
    default="bundled",
    show_default=True,
    help="bundled: synthesize with the CSEBGAN generator shipped in the package (cpu-long preset, trained on "
    "shared GID-15 tiles disjoint from the sample; its data card is printed); train: train a cpu-small CSEBGAN "
    "on the sample's tiles first (--steps).",
)
@click.option(
    "--steps",
    type=int,
    default=DEMO_TRAIN_STEPS,
    show_default=True,
    help="Training steps of the CSEBGAN (cpu-small preset) with --generator train.",
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
    out: Path,
    generator: str,
    steps: int,
    bench_seeds: int,
    bench_iterations: int,
    overwrite: bool,
    seed: int,
    device: str,
) -> None:
    """Run the whole pipeline on the bundled real sample (45 GID-15 tiles) and print where the report is."""
    steps_given = click.get_current_context().get_parameter_source("steps") != click.core.ParameterSource.DEFAULT
    if generator == "bundled" and steps_given:
        raise BadInput("--steps sets the training of --generator train; the bundled generator is already trained")
    if generator == "bundled" and not gid15_generator().is_file():
        raise BadInput(f"{gid15_generator()}: the bundled generator is missing; use --generator train")
    options = {
        "generator": generator,
        "steps": steps if generator == "train" else None,
        "bench_iterations": bench_iterations,  # also the evaluation's U-Net (a finished evaluation is kept)
        "seed": seed,
    }
    # the demo holds OUT's lock; every stage locks its own subdirectory (OUT/tiles, OUT/run, ...), never OUT
    with output_lock(out, "demo"):
        if overwrite:
            clear_directory(out)  # not rmtree: OUT's lock file must stay while the lock is held
        _check_resume(out, options)
        _stages(out, generator, steps, bench_seeds, bench_iterations, seed, device)


def _check_resume(out: Path, options: dict[str, object]) -> None:
    """Record the demo's options in OUT/demo.json, or check that a resumed demo used the same ones (the stages
    keep their finished outputs, so another generator or seed would mix two demos)."""
    path = out / DEMO_FILE
    if path.is_file():
        earlier = read_json(path)
        diff = [f"{k} {earlier.get(k)!r} (now {v!r})" for k, v in options.items() if earlier.get(k) != v]
        if diff:
            raise BadInput(f"{out}: this demo was run with {', '.join(diff)}; use --overwrite to start again")
    elif out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir()):
        raise BadInput(f"{out}: not a demo directory of this rsaug version (no {DEMO_FILE}); use --overwrite")
    else:
        write_json(path, options)


def _stages(
    out: Path, generator: str, steps: int, bench_seeds: int, bench_iterations: int, seed: int, device: str
) -> None:
    from . import benchmark, evaluate, filter, synthesize, tile, train
    from .export import score_line

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
    if generator == "bundled":
        ckpt = gid15_generator()
        card = read_json(Path(f"{ckpt}.json"))
        training, data = card.get("training") or {}, card.get("training_data") or {}
        click.secho("\n=== 2/6 train: skipped, the bundled generator is used (--generator train trains one)", bold=True)
        click.echo(
            f"{ckpt.name}: {(card.get('model') or {}).get('family')}, preset {training.get('preset')}, "
            f"{training.get('steps')} steps on {(data.get('splits') or {}).get('train')} GID-15 training tiles "
            "disjoint from the sample"
        )
        scores = card.get("evaluation")
        if scores:
            click.echo(f"  its scores ({scores.get('split')} split of its own tile set): {score_line(scores)}")
    else:
        ckpt = _train(train.command, tiles, run, steps, device, common, times)
    label = "CSEBGAN (bundled cpu-long generator)" if generator == "bundled" else "CSEBGAN (demo)"
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
                label,
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


def _train(
    train: click.Command, tiles: Path, run: Path, steps: int, device: str, common: list[str], times: dict[str, float]
) -> Path:
    """Stage 2 with ``--generator train``: a cpu-small CSEBGAN on the sample's tiles (resumed if interrupted)."""
    args = [str(tiles), "-o", str(run), "--preset", "cpu-small", "--steps", str(steps), "--device", device, *common]
    if (run / "checkpoints" / "last.ckpt").is_file():  # (a run killed early may hold only its lock file)
        args.append("--resume")
    times["train"] = _run(train, args, "2/6 train CSEBGAN")
    return run / "checkpoints" / "last.ckpt"
