"""Quality per CPU-minute: how good each generator is after 10, 30, 60 and 120 minutes of CPU training.

For every model of ``--models`` (default CSEBGAN and the SPADE baseline) the script

1. calibrates: a short ``rsaug train`` (``--calib-steps`` steps into ``OUT/<model>/calib``) whose ``log.csv``
   ``time`` column gives the seconds per training step;
2. trains ONE run (``OUT/<model>/run``) of ``S = largest budget / (s per step)`` steps, rounded up to a multiple
   of ``--checkpoint-every``, keeping every ``step_XXXXXX.ckpt``; when the run is slower than the calibration
   said, it is stopped (SIGTERM, a resumable checkpoint) as soon as a checkpoint covers the largest budget, and
   the report says so (the learning-rate schedule stays the one of the S-step run);
3. picks, for every budget ``b``, the checkpoint whose elapsed training time (``log.csv`` ``time``, summed over
   resumed invocations) is closest to ``b`` minutes without passing it by more than one checkpoint interval,
   and records the minutes actually trained. The work done after each checkpoint (re-estimating ``G_ema``'s
   BatchNorm statistics, 64 generator passes on ``cpu-small``; saving) and sample step is left out of these
   minutes (the step after it counts as a median step; ``wall_minutes`` keeps it): frequent snapshots would
   otherwise cost the run a large share of its budget (``--include-checkpoint-time`` counts it);
4. evaluates all snapshots of the model in one ``rsaug evaluate`` call (``OUT/<model>/eval``): FID and FID
   minus the real-vs-real floor, mIoU of a U-Net trained on real tiles (and its mIoU on the real tiles), LPIPS
   diversity and the radiometry error (mean over bands of |generated - real band mean| in DN, largest
   |std error| in %). Without ``--segmenter`` the first evaluation trains the U-Net, copied to
   ``OUT/segmenter.pt`` and reused by every later evaluation.

Writes ``OUT/quality_per_minute.{json,csv,png}`` and ``OUT/README.md``, and prints a summary with the minutes
at which each model reaches the baseline's (SPADE's) FID-floor of the largest budget.

The snapshots of one run sized for the largest budget are not runs sized for the smaller budgets: the
learning-rate schedule (and the EMA) of a 120-minute run at minute 10 differ from those of a 10-minute run.
"Minutes" are wall-clock minutes of the training loop on this machine (``log.csv`` ``time``; model building
excluded), i.e. CPU-minutes when trained on CPU (``--device cpu``, the default); rsaug runs with
``OMP_WAIT_POLICY=PASSIVE`` unless ``--omp-active``. Measure on an otherwise idle machine.

Everything is resumable: a finished run (``summary.json``) is not trained again, a killed one continues with
``--resume``, an ``evaluation.json`` holding exactly the wanted snapshots is not recomputed.

Usage::

    .venv/bin/python bench/bench_gan_quality.py TILES -o OUT
    .venv/bin/python bench/bench_gan_quality.py TILES -o OUT --budgets 10,30 --train-args "--spatial-noise 0.25"
    .venv/bin/python bench/bench_gan_quality.py TILES -o OUT --dry-run   # calibrates, then only prints
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
NOTE = (
    "snapshots of one run sized for the largest budget: the learning-rate schedule and EMA at an earlier "
    "snapshot differ from those of a run sized for that budget; minutes are the training loop's wall-clock "
    "time (log.csv 'time', summed over resumed invocations; without the work after checkpoint and sample steps "
    "unless --include-checkpoint-time, see the config's 'minutes')"
)
CSV_COLUMNS = [
    "model",
    "budget_min",
    "minutes",
    "step",
    "fid",
    "fid_floor",
    "fid_minus_floor",
    "seg_miou",
    "real_miou",
    "miou_ratio",
    "lpips",
    "rad_mean_abs_mean_error_dn",
    "rad_max_abs_std_error_pct",
    "rad_class_mean_abs_error_dn",
    "rad_floor_class_mean_abs_error_dn",
    "checkpoint",
]


# ------------------------------------------------------------------------------------------------ helpers
def rsaug_command() -> list[str]:
    """The ``rsaug`` CLI of this interpreter: the console script beside it, else ``python -c`` on ``cli``."""
    script = Path(sys.executable).parent / "rsaug"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-c", "import sys; from rsaug.cli.main import cli; sys.exit(cli(prog_name='rsaug'))"]


def fmt_budget(b: float) -> str:
    """``10.0`` -> ``"10"``, ``0.5`` -> ``"0.5"``."""
    return f"{b:g}"


def run(cmd: list[str], what: str) -> None:
    """Run ``cmd`` (output shown), exiting with its status if it fails."""
    print(f"$ {shlex.join(cmd)}", flush=True)
    t = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode:
        sys.exit(f"{what} failed (exit status {proc.returncode})")
    print(f"  ({what}: {time.perf_counter() - t:.0f} s)", flush=True)


def budget_covered(run_dir: Path, budget_min: float, include_checkpoint_time: bool) -> bool:
    """Whether a step checkpoint of the run lies at or after ``budget_min`` minutes of training."""
    if not (run_dir / "log.csv").is_file():
        return False
    try:
        wall, net = training_seconds(run_dir)
    except (OSError, ValueError, KeyError):
        return False
    elapsed = wall if include_checkpoint_time else net
    return any(elapsed.get(s, 0.0) >= budget_min * 60 for s in step_checkpoints(run_dir))


def train_until_covered(cmd: list[str], run_dir: Path, budget_min: float, include_checkpoint_time: bool) -> bool:
    """Run the training command until it finishes or a checkpoint covers ``budget_min`` minutes, whichever
    comes first; in the second case the run is stopped with SIGTERM (``rsaug train`` saves a resumable
    checkpoint). Returns whether it was stopped there; exits if the training fails.
    """
    print(f"$ {shlex.join(cmd)}", flush=True)
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT)
    stopped = False
    while proc.poll() is None:
        time.sleep(15)
        if not stopped and budget_covered(run_dir, budget_min, include_checkpoint_time):
            print(f"\n  (the {fmt_budget(budget_min)}-min budget is covered: stopping the run)", flush=True)
            proc.send_signal(signal.SIGTERM)
            stopped = True
    if proc.returncode and not stopped:
        sys.exit(f"training failed (exit status {proc.returncode})")
    print(f"  (training: {time.perf_counter() - t:.0f} s)", flush=True)
    return stopped


def read_json(path: Path) -> Any:
    """Parsed JSON of ``path``, or ``None`` when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def training_seconds(run_dir: Path) -> tuple[dict[int, float], dict[int, float]]:
    """Cumulative seconds at each step of a run's ``log.csv``: ``(wall, net)``.

    ``wall`` is the ``time`` column, which restarts near 0 in every resumed invocation (such resets are summed
    over). ``net`` leaves out what the run does after a checkpoint or sample step (re-estimating ``G_ema``'s
    BatchNorm statistics over ``ema_bn_batches`` batches, saving, the sample grid), which lands in the next
    step's time: such a step counts as the median step. Checkpoints every 50 steps would otherwise add far more
    time (measured: ~140 s each on ``cpu-small``, against 5-14 s per step) than a normally checkpointed run spends.
    """
    train = (read_json(run_dir / "config.json") or {}).get("train", {})
    every = [int(v) for v in (train.get("checkpoint_every"), train.get("sample_every")) if v]
    rows: list[tuple[int, float]] = []
    with (run_dir / "log.csv").open(newline="") as f:
        rows = [(int(r["step"]), float(r["time"])) for r in csv.DictReader(f) if r.get("time")]
    deltas: list[tuple[int, float, bool]] = []  # step, seconds, after an overhead step
    prev = -1.0
    for step, raw in rows:
        after = step > 1 and any((step - 1) % e == 0 for e in every)
        deltas.append((step, raw - prev if 0 <= prev <= raw else raw, after))
        prev = raw
    plain = [d for _, d, after in deltas if not after]
    median = statistics.median(plain) if plain else 0.0
    wall: dict[int, float] = {}
    net: dict[int, float] = {}
    w = n = 0.0
    for step, d, after in deltas:
        w += d
        n += min(d, median) if after else d
        wall[step], net[step] = w, n
    return wall, net


def seconds_per_step(run_dir: Path) -> float:
    """Seconds per step of a calibration run, leaving out the first step (warm-up) and the last (sampling)."""
    _, t = training_seconds(run_dir)
    steps = sorted(t)
    if len(steps) < 4:
        sys.exit(f"{run_dir}: calibration logged {len(steps)} steps; give --calib-steps of at least 4")
    first, last = steps[0], steps[-2]
    return (t[last] - t[first]) / (last - first)


def step_checkpoints(run_dir: Path) -> dict[int, Path]:
    """``{step: path}`` of the run's ``checkpoints/step_XXXXXX.ckpt`` files."""
    out = {}
    for p in (run_dir / "checkpoints").glob("step_*.ckpt"):
        try:
            out[int(p.stem.split("_", 1)[1])] = p
        except ValueError:
            continue
    return out


def pick_snapshots(
    ckpts: dict[int, Path], elapsed: dict[int, float], wall: dict[int, float], budgets: list[float], interval_s: float
) -> list[dict[str, Any]]:
    """For each budget, the checkpoint closest in ``elapsed`` time without passing it by more than ``interval_s``."""
    timed = sorted((elapsed[s], s) for s in ckpts if s in elapsed)
    if not timed:
        sys.exit("no step checkpoint has a log.csv time; is the run empty?")
    picks = []
    for b in budgets:
        target = b * 60
        ok = [(t, s) for t, s in timed if t <= target + interval_s]
        t, s = min(ok or timed[:1], key=lambda ts: abs(ts[0] - target))
        picks.append(
            {
                "budget_min": b,
                "minutes": t / 60,
                "wall_minutes": wall[s] / 60,
                "step": s,
                "checkpoint": str(ckpts[s]),
                "within_tolerance": bool(ok),
            }
        )
    return picks


def metrics(entry: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """The numbers of one ``evaluation.json`` checkpoint entry that this benchmark plots."""
    seg = entry.get("segmentation") or {}
    real_seg = reference.get("segmentation") or {}
    miou, real = seg.get("miou"), real_seg.get("miou")
    bands = ((entry.get("radiometry") or {}).get("overall")) or []
    floor = reference.get("fid_floor") or {}
    class_dn = ((entry.get("radiometry") or {}).get("summary") or {}).get("class_mean_abs_error_dn")
    floor_dn = ((reference.get("radiometry_floor") or {}).get("summary") or {}).get("class_mean_abs_error_dn")
    return {
        "fid": entry.get("fid"),
        "fid_floor": floor.get("fid"),
        "fid_minus_floor": entry.get("fid_minus_floor"),
        "seg_miou": miou,
        "real_miou": real,
        "miou_ratio": miou / real if miou is not None and real else None,
        "lpips": (entry.get("diversity") or {}).get("lpips"),
        "rad_mean_abs_mean_error_dn": (sum(abs(b["mean_error_dn"]) for b in bands) / len(bands) if bands else None),
        "rad_max_abs_std_error_pct": max(abs(b["std_error_pct"]) for b in bands) if bands else None,
        # per class (pixel-weighted |mean error|), and the same between two real sets (the radiometry floor)
        "rad_class_mean_abs_error_dn": class_dn,
        "rad_floor_class_mean_abs_error_dn": floor_dn,
    }


def reach_minutes(points: list[tuple[float, float | None]], target: float) -> tuple[float, bool] | None:
    """First minute at which a lower-is-better curve is <= target (linear between snapshots).

    Returns:
        ``(minutes, at_first)`` (``at_first``: already at the first snapshot, so possibly earlier), or ``None``
        when no snapshot reaches the target.
    """
    pts = [(m, v) for m, v in sorted(points) if v is not None]
    for i, (m, v) in enumerate(pts):
        if v <= target:
            if i == 0:
                return m, True
            m0, v0 = pts[i - 1]
            return (m0 + (m - m0) * (v0 - target) / (v0 - v) if v0 != v else m), False
    return None


# ------------------------------------------------------------------------------------------------ stages
def plan_steps(args: argparse.Namespace, model: str, rsaug: list[str]) -> dict[str, Any]:
    """Calibrate (once) and size the run: ``{s_per_step, steps, ...}`` stored in ``OUT/<model>/plan.json``."""
    mdir = args.out / model
    plan_file = mdir / "plan.json"
    budget_max = max(args.budgets)
    plan = read_json(plan_file)
    stored = read_json(mdir / "run" / "config.json")
    if plan and stored:  # a run exists: its size wins
        if int(stored["total_steps"]) != plan["steps"]:
            print(f"  note: {mdir / 'run'} has {stored['total_steps']} steps; using them", flush=True)
            plan["steps"] = int(stored["total_steps"])
        return dict(plan)
    calib = mdir / "calib"
    log = calib / "log.csv"
    calib_cmd = [
        *rsaug,
        "train",
        str(args.tiles),
        "-o",
        str(calib),
        "--model",
        model,
        "--preset",
        args.preset,
        "--steps",
        str(args.calib_steps),
        "--checkpoint-every",
        str(args.calib_steps),
        "--keep-checkpoints",
        "1",
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        "-q",
        *shlex.split(args.train_args),
    ]
    if not (read_json(calib / "summary.json") and log.is_file()):
        shutil.rmtree(calib, ignore_errors=True)  # a killed calibration is redone from scratch
        run(calib_cmd, f"{model} calibration")
    sps = seconds_per_step(calib)
    c = args.checkpoint_every
    steps = max(c, math.ceil(budget_max * 60 / sps / c) * c)  # the largest budget is reached
    if stored:
        steps = int(stored["total_steps"])
    plan = {
        "model": model,
        "calibration_command": calib_cmd,
        "calib_steps": args.calib_steps,
        "s_per_step": sps,
        "budget_max_min": budget_max,
        "checkpoint_every": c,
        "steps": steps,
        "expected_minutes": steps * sps / 60,
    }
    mdir.mkdir(parents=True, exist_ok=True)
    plan_file.write_text(json.dumps(plan, indent=2) + "\n")
    return plan


def train_command(args: argparse.Namespace, model: str, steps: int, rsaug: list[str]) -> list[str]:
    """The ``rsaug train`` command of the model's run (``--resume`` added when it has a checkpoint)."""
    run_dir = args.out / model / "run"
    cmd = [
        *rsaug,
        "train",
        str(args.tiles),
        "-o",
        str(run_dir),
        "--model",
        model,
        "--preset",
        args.preset,
        "--steps",
        str(steps),
        "--checkpoint-every",
        str(args.checkpoint_every),
        "--keep-checkpoints",
        "0",
        "--seed",
        str(args.seed),
        "--device",
        args.device,
        *shlex.split(args.train_args),
    ]
    if (run_dir / "checkpoints" / "last.ckpt").is_file():
        cmd.append("--resume")
    return cmd


def run_finished(run_dir: Path) -> bool:
    """Whether the run wrote ``summary.json`` at its last step."""
    summary, config = read_json(run_dir / "summary.json"), read_json(run_dir / "config.json")
    return bool(summary and config and int(summary["steps"]) == int(config["total_steps"]))


def evaluate_command(
    args: argparse.Namespace, model: str, snaps: list[dict[str, Any]], segmenter: Path | None, rsaug: list[str]
) -> tuple[list[str], list[str], list[str]]:
    """``(command, checkpoints, labels)`` of the one ``rsaug evaluate`` call of a model (distinct checkpoints)."""
    ckpts: list[str] = []
    labels: list[str] = []
    for s in snaps:
        if s["checkpoint"] not in ckpts:
            ckpts.append(s["checkpoint"])
            labels.append(f"{model} {fmt_budget(s['budget_min'])} min (step {s['step']})")
    cmd = [*rsaug, "evaluate", *ckpts, "--tiles", str(args.tiles), "-o", str(args.out / model / "eval")]
    for lab in labels:
        cmd += ["--label", lab]
    cmd += ["--split", args.split, "--fid-floor-split", args.fid_floor_split, "--device", args.device]
    if segmenter is not None:
        cmd += ["--segmenter", str(segmenter)]
    cmd += shlex.split(args.eval_args)
    return cmd, ckpts, labels


def evaluation_done(eval_dir: Path, ckpts: list[str], labels: list[str]) -> dict[str, Any] | None:
    """The stored ``evaluation.json`` if it holds exactly these checkpoints and labels, else ``None``."""
    res = read_json(eval_dir / "evaluation.json")
    if not res:
        return None
    got = [(e.get("checkpoint"), e.get("label")) for e in res.get("checkpoints", [])]
    return res if got == list(zip(ckpts, labels)) else None


# ------------------------------------------------------------------------------------------------ outputs
def plot(results: dict[str, Any], path: Path) -> None:
    """2x2 panels of the four quality numbers against training minutes, one line per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [
        ("fid_minus_floor", "FID - floor (lower is better)"),
        ("miou_ratio", "segmentation mIoU / real mIoU (higher is better)"),
        ("lpips", "LPIPS diversity (higher is better)"),
        ("rad_mean_abs_mean_error_dn", "radiometry error (lower is better)"),
    ]
    fig, axes = plt.subplots(2, 2, figsize=(11, 8), constrained_layout=True)
    for ax, (key, title) in zip(axes.flat, panels):
        twin = ax.twinx() if key == "rad_mean_abs_mean_error_dn" else None
        for i, (model, m) in enumerate(results["models"].items()):
            color = f"C{i}"
            snaps = [s for s in m["snapshots"] if s.get(key) is not None]
            ax.plot([s["minutes"] for s in snaps], [s[key] for s in snaps], "o-", color=color, label=model)
            if twin is not None:
                snaps = [s for s in m["snapshots"] if s.get("rad_max_abs_std_error_pct") is not None]
                twin.plot(
                    [s["minutes"] for s in snaps],
                    [s["rad_max_abs_std_error_pct"] for s in snaps],
                    "s--",
                    color=color,
                    alpha=0.6,
                    label=f"{model} max |std err| %",
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training minutes (CPU)")
        ax.grid(alpha=0.3)
        ax.ticklabel_format(axis="y", useOffset=False)
        if twin is not None:
            ax.set_ylabel("mean over bands of |mean error| (DN), solid")
            twin.set_ylabel("max over bands of |std error| (%), dashed")
        ax.legend(fontsize=8)
    fig.suptitle("Quality per CPU-minute (" + NOTE.split(":")[0] + ")", fontsize=10)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def summary_lines(results: dict[str, Any], baseline: str | None) -> list[str]:
    """Per model, the minutes at which it reaches the baseline's FID-floor of the largest budget."""
    if baseline is None:
        return []
    base = results["models"][baseline]["snapshots"]
    last = max(base, key=lambda s: s["budget_min"])
    target = last.get("fid_minus_floor")
    if target is None:
        return [f"no FID-floor for {baseline} (FID or its floor off)"]
    lines = []
    for model, m in results["models"].items():
        if model == baseline:
            continue
        x = reach_minutes([(s["minutes"], s.get("fid_minus_floor")) for s in m["snapshots"]], target)
        if x is None:
            where = "not within the budgets"
        elif x[1]:
            where = f"at its first snapshot ({x[0]:.1f} minutes) or earlier"
        else:
            where = f"at {x[0]:.1f} minutes (interpolated)"
        lines.append(
            f"{model.upper()} reaches {baseline.upper()}'s {fmt_budget(last['budget_min'])}-minute FID-floor "
            f"({target:.2f}) {where}"
        )
    return lines


def write_outputs(results: dict[str, Any], out: Path) -> None:
    """``quality_per_minute.{json,csv,png}`` and ``README.md`` in ``out``."""
    (out / "quality_per_minute.json").write_text(json.dumps(results, indent=2) + "\n")
    with (out / "quality_per_minute.csv").open("w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        wr.writeheader()
        for model, m in results["models"].items():
            for s in m["snapshots"]:
                wr.writerow({"model": model, **s})
    plot(results, out / "quality_per_minute.png")
    num = lambda v, f: "–" if v is None else format(v, f)
    rows = [
        "| model | budget (min) | trained (min) | step | FID | FID - floor | mIoU / real | LPIPS | "
        "mean abs mean err (DN) | max abs std err (%) | per class mean abs err (DN; floor) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for model, m in results["models"].items():
        for s in m["snapshots"]:
            rows.append(
                f"| {model} | {fmt_budget(s['budget_min'])} | {s['minutes']:.1f} | {s['step']} | "
                f"{num(s.get('fid'), '.2f')} | {num(s.get('fid_minus_floor'), '.2f')} | "
                f"{num(s.get('miou_ratio'), '.3f')} | {num(s.get('lpips'), '.4f')} | "
                f"{num(s.get('rad_mean_abs_mean_error_dn'), '.1f')} | "
                f"{num(s.get('rad_max_abs_std_error_pct'), '.1f')} | "
                f"{num(s.get('rad_class_mean_abs_error_dn'), '.1f')} "
                f"({num(s.get('rad_floor_class_mean_abs_error_dn'), '.1f')}) |"
            )
    cfg = results["config"]
    text = [
        "# Quality per CPU-minute",
        "",
        f"`{cfg['command']}` ({results['date']}, rsaug {results['rsaug_version']}, {cfg['cpu_count']} CPUs).",
        "",
        f"Note: {NOTE}.",
        "",
        *rows,
        "",
        *[f"- {line}" for line in results["summary"]],
        *[
            f"- {model}: the run, sized for {m['planned_steps']} steps by the calibration "
            f"({m['calibration_s_per_step']:.3f} s/step), ran at {m['run_s_per_step']:.3f} s/step and was stopped "
            f"at step {m['steps']} once a checkpoint covered the largest budget; its learning-rate schedule is the "
            f"one of the {m['planned_steps']}-step run."
            for model, m in results["models"].items()
            if m.get("stopped_at_budget")
        ],
        "",
        "Files: `quality_per_minute.json` (all numbers and commands), `quality_per_minute.csv`, "
        "`quality_per_minute.png`.",
        "",
    ]
    (out / "README.md").write_text("\n".join(text))


# ------------------------------------------------------------------------------------------------ main
def parse_list(values: list[str], kind: type) -> list[Any]:
    """``["a,b", "c"]`` -> ``[kind(a), kind(b), kind(c)]``."""
    return [kind(v) for item in values for v in item.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("tiles", type=Path, help="tile set (from `rsaug tile`) to train and evaluate on")
    p.add_argument("-o", "--out", type=Path, required=True, help="output directory (runs, evaluations, report)")
    p.add_argument("--models", nargs="+", default=["csebgan", "spade"], help="models (default: csebgan spade)")
    p.add_argument(
        "--budgets", nargs="+", default=["10,30,60,120"], help="training budgets in minutes (default: 10,30,60,120)"
    )
    p.add_argument("--checkpoint-every", type=int, default=50, help="checkpoint interval (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="training seed (default: %(default)s)")
    p.add_argument("--preset", default="cpu-small", help="training preset (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="device of training and evaluation (default: %(default)s)")
    p.add_argument("--split", default="test", help="evaluated split (default: %(default)s)")
    p.add_argument("--fid-floor-split", default="train", help="split of the FID floor, or none (default: %(default)s)")
    p.add_argument("--segmenter", type=Path, help="U-Net for segmentation fidelity (default: train one once)")
    p.add_argument("--calib-steps", type=int, default=20, help="steps of the calibration run (default: %(default)s)")
    p.add_argument("--baseline", default="spade", help="model the others are compared to (default: %(default)s)")
    p.add_argument(
        "--train-args",
        default="",
        help='extra `rsaug train` options, e.g. "--spatial-noise 0.25" (one word: --train-args=--no-conductor)',
    )
    p.add_argument(
        "--eval-args",
        default="",
        help='extra `rsaug evaluate` options, e.g. "--max-tiles 50" (one word: --eval-args=--no-fid)',
    )
    p.add_argument(
        "--include-checkpoint-time",
        action="store_true",
        help="count the time spent after checkpoint and sample steps (EMA BatchNorm re-estimation, saving, "
        "sample grids) as training minutes (default: left out, see training_seconds)",
    )
    p.add_argument(
        "--omp-active",
        action="store_true",
        help="keep OpenMP's default spin-waiting (by default rsaug runs with OMP_WAIT_POLICY=PASSIVE, as in "
        "bench_train_step.py: spinning threads steal the cores on a shared machine)",
    )
    p.add_argument("--dry-run", action="store_true", help="calibrate, then only print the commands and step counts")
    args = p.parse_args(argv)
    args.models = parse_list(args.models, str)
    args.budgets = sorted(parse_list(args.budgets, float))
    if not args.budgets or min(args.budgets) <= 0:
        p.error("budgets must be positive minutes")
    if args.checkpoint_every < 1 or args.calib_steps < 4:
        p.error("--checkpoint-every must be >= 1 and --calib-steps >= 4")
    if args.segmenter is not None and not args.segmenter.is_file():
        p.error(f"segmenter not found: {args.segmenter}")
    args.tiles, args.out = args.tiles.resolve(), args.out.resolve()
    if not (args.tiles / "tileset.json").is_file():
        p.error(f"not a tile set (no tileset.json): {args.tiles}")
    args.out.mkdir(parents=True, exist_ok=True)
    if not args.omp_active:
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # inherited by every rsaug subprocess
    rsaug = rsaug_command()

    plans = {}
    for model in args.models:
        plans[model] = plan_steps(args, model, rsaug)
        pl = plans[model]
        print(
            f"{model}: {pl['s_per_step']:.3f} s/step (calibration, {pl['calib_steps']} steps) -> "
            f"{pl['steps']} steps, ~{pl['expected_minutes']:.1f} min for the {fmt_budget(max(args.budgets))}-min "
            "budget",
            flush=True,
        )
    cmd_of = lambda model: train_command(args, model, plans[model]["steps"], rsaug)
    if args.dry_run:
        for model in args.models:
            done = run_finished(args.out / model / "run")
            print(("# finished, not trained again: " if done else "") + shlex.join(cmd_of(model)))
        print(
            "then, per model: rsaug evaluate <one step_XXXXXX.ckpt per budget> --tiles ... --label "
            f"'<model> <budget> min (step N)' --split {args.split} --fid-floor-split {args.fid_floor_split} "
            + (f"--segmenter {args.segmenter} " if args.segmenter else "")
            + args.eval_args
        )
        return 0

    shared_seg = args.out / "segmenter.pt"
    results: dict[str, Any] = {
        "benchmark": "quality per CPU-minute",
        "note": NOTE,
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "rsaug_version": None,
        "config": {
            "command": shlex.join(["python", "bench/bench_gan_quality.py", *(sys.argv[1:] if argv is None else argv)]),
            "tiles": str(args.tiles),
            "models": args.models,
            "budgets_min": args.budgets,
            "checkpoint_every": args.checkpoint_every,
            "seed": args.seed,
            "preset": args.preset,
            "device": args.device,
            "split": args.split,
            "fid_floor_split": args.fid_floor_split,
            "train_args": args.train_args,
            "eval_args": args.eval_args,
            "baseline": args.baseline if args.baseline in args.models else None,
            "cpu_count": os.cpu_count(),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "minutes": "log.csv time incl. checkpoint/sample overhead"
            if args.include_checkpoint_time
            else "log.csv time without the overhead after checkpoint and sample steps (wall_minutes: with it)",
        },
        "models": {},
    }
    for model in args.models:
        run_dir = args.out / model / "run"
        steps = plans[model]["steps"]
        cmd = train_command(args, model, steps, rsaug)
        finished = run_finished(run_dir)
        if finished:
            print(f"{model}: run finished, not trained again ({run_dir})", flush=True)
        elif budget_covered(run_dir, max(args.budgets), args.include_checkpoint_time):
            print(f"{model}: the run covers the largest budget, not trained further ({run_dir})", flush=True)
        else:
            train_until_covered(cmd, run_dir, max(args.budgets), args.include_checkpoint_time)
            finished = run_finished(run_dir)
        wall, net = training_seconds(run_dir)
        elapsed = wall if args.include_checkpoint_time else net
        last_step = max(elapsed)
        run_s = elapsed[last_step]
        interval_s = args.checkpoint_every * run_s / last_step
        snaps = pick_snapshots(step_checkpoints(run_dir), elapsed, wall, args.budgets, interval_s)
        seen: dict[int, float] = {}
        for s in snaps:
            if s["step"] in seen:
                print(
                    f"  note: {model}: budgets {fmt_budget(seen[s['step']])} and {fmt_budget(s['budget_min'])} min "
                    f"both pick step {s['step']}",
                    flush=True,
                )
            seen.setdefault(s["step"], s["budget_min"])
            if not s["within_tolerance"]:
                print(
                    f"  warning: {model}: the first checkpoint comes after {fmt_budget(s['budget_min'])} min "
                    "+ one interval; lower --checkpoint-every",
                    flush=True,
                )

        segmenter = args.segmenter or (shared_seg if shared_seg.is_file() else None)
        ecmd, ckpts, labels = evaluate_command(args, model, snaps, segmenter, rsaug)
        eval_dir = args.out / model / "eval"
        ev = evaluation_done(eval_dir, ckpts, labels)
        if ev is None:
            run(ecmd, f"{model} evaluation")
            ev = evaluation_done(eval_dir, ckpts, labels)
            if ev is None:
                sys.exit(f"{eval_dir / 'evaluation.json'} does not hold the evaluated snapshots")
        else:
            print(f"{model}: evaluation exists, not recomputed ({eval_dir})", flush=True)
        if args.segmenter is None and not shared_seg.is_file() and (eval_dir / "segmenter.pt").is_file():
            shutil.copyfile(eval_dir / "segmenter.pt", shared_seg)
        results["rsaug_version"] = ev.get("rsaug_version")
        by_ckpt = {e["checkpoint"]: e for e in ev["checkpoints"]}
        for s in snaps:
            entry = by_ckpt[s["checkpoint"]]
            s["label"] = entry["label"]
            s["notes"] = entry.get("notes", [])
            s.update(metrics(entry, ev.get("reference", {})))
        results["models"][model] = {
            "train_command": cmd,
            "evaluate_command": ecmd,
            "calibration_s_per_step": plans[model]["s_per_step"],
            "planned_steps": steps,
            "stopped_at_budget": not finished,
            "steps": last_step,
            "run_minutes": run_s / 60,
            "run_wall_minutes": wall[last_step] / 60,
            "run_s_per_step": run_s / last_step,
            "checkpoint_interval_min": interval_s / 60,
            "snapshots": snaps,
        }

    results["summary"] = summary_lines(results, results["config"]["baseline"])
    write_outputs(results, args.out)

    print("\nmodel     budget  trained  step     FID  FID-floor  mIoU/real   LPIPS  |dmean| DN  |std err| %")
    num = lambda v, f: "-" if v is None else format(v, f)
    for model, m in results["models"].items():
        for s in m["snapshots"]:
            print(
                f"{model:8s} {fmt_budget(s['budget_min']):>7s} {s['minutes']:8.2f} {s['step']:5d} "
                f"{num(s['fid'], '7.2f'):>7s} {num(s['fid_minus_floor'], '10.2f'):>10s} "
                f"{num(s['miou_ratio'], '10.3f'):>10s} {num(s['lpips'], '7.4f'):>7s} "
                f"{num(s['rad_mean_abs_mean_error_dn'], '11.1f'):>11s} "
                f"{num(s['rad_max_abs_std_error_pct'], '11.1f'):>11s}"
            )
        print(
            f"{model}: {m['steps']} steps in {m['run_minutes']:.1f} min ({m['run_s_per_step']:.3f} s/step; "
            f"calibration {m['calibration_s_per_step']:.3f})"
        )
    for line in results["summary"]:
        print(line)
    print(f"\n{NOTE}.\nwrote {args.out / 'quality_per_minute.json'} (.csv, .png, README.md)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
