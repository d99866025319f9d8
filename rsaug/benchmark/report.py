"""Benchmark report files: ``report.json``, the CSVs, the PNG plots and ``report.html`` (all written atomically).

Input: the run files written by :mod:`rsaug.benchmark.runner` (one JSON per arm and seed, each with the confusion
matrix of the real test split). The numbers come from :mod:`rsaug.benchmark.statistics`, the plots from
:mod:`rsaug.benchmark.plots`, the page from :mod:`rsaug.benchmark.html`.

Output files: ``report.json``, ``runs.csv``, ``arms.csv``, ``comparisons.csv``, ``per_class_iou.csv``,
``class_shares.csv`` (and ``sweep.csv`` with a size sweep / replace curve, ``validation.csv`` with validation
curves), ``metrics_by_arm.png``, ``per_class_iou.png``, ``class_shares.png``, ``paired_differences.png`` (and
``size_sweep.png``, ``replace_curve.png``, ``val_curves.png``) and ``report.html`` (images embedded as base64
data URIs, no scripts, no external resources).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsaug.benchmark.html import gallery_html, render_html
from rsaug.benchmark.plots import (
    plot_class_shares,
    plot_metrics_by_arm,
    plot_paired_differences,
    plot_per_class_iou,
    plot_sweep,
    plot_val_curves,
)
from rsaug.benchmark.statistics import METRICS, class_shares, summarize, summarize_sweep, summarize_validation
from rsaug.core.files import atomic_path, read_json, strict_json, write_json


def build_report(
    out_dir: str | os.PathLike[str],
    *,
    runs: list[dict[str, Any]],
    arms: Sequence[str],
    class_names: Sequence[str],
    class_counts: dict[str, Sequence[int]],
    palette: np.ndarray | None = None,
    gallery: list[dict[str, Any]] | None = None,
    config: dict[str, Any] | None = None,
    title: str = "rsaug benchmark-augmentation",
    sweep: Sequence[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``report.json``, CSVs, PNG plots and ``report.html`` into ``out_dir``.

    Args:
        out_dir: Benchmark output directory.
        runs: Run results (see :func:`summarize`).
        arms: Arm names in display order.
        class_names: Class names.
        class_counts: Training pixel counts per class for ``real`` and for every ``real+X`` training set.
        palette: (256, 3) uint8 class palette for the gallery masks.
        gallery: Samples ``{"tile_id", "mask", "real", "synthetic": [...], "source"}`` (arrays (H, W) / (C, H, W)).
        config: Benchmark configuration (copied into the report).
        title: Page title.
        sweep: Arms of the size sweep / replace curve (``name``, ``kind``, ``synthetic``, ``real_fraction``),
            summarised by :func:`summarize_sweep` (their runs are in ``runs``).

    Returns:
        The report dictionary (also saved as ``report.json``).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, arms, class_names)
    shares = class_shares(class_counts)
    order = list(arms) + [a["name"] for a in sweep or [] if a["name"] not in arms]
    order += sorted({r["arm"] for r in runs} - set(order))
    validation = summarize_validation(runs, order)
    report: dict[str, Any] = {
        "title": title,
        "config": config or {},
        "class_names": list(class_names),
        "arms": list(arms),
        "runs": [
            {k: v for k, v in r.items() if k != "confusion_matrix"} | {"confusion_matrix": r.get("confusion_matrix")}
            for r in runs
        ],
        "summary": summary,
        "class_counts": {k: [int(x) for x in v] for k, v in class_counts.items()},
        "class_shares": shares,
        "sweep": summarize_sweep(runs, list(sweep or []), class_names),
        "validation": validation,
        "files": {},
    }
    _write_csvs(out, runs, arms, class_names, summary, shares)
    if report["sweep"]["rows"]:
        _write_csv(out / "sweep.csv", _sweep_csv_rows(report["sweep"]))
    if any(v["recorded"] for v in validation["arms"].values()):
        _write_csv(out / "validation.csv", _validation_csv_rows(validation))
    plots = {
        "metrics_by_arm": plot_metrics_by_arm(summary, arms),
        "paired_differences": plot_paired_differences(summary),
        "per_class_iou": plot_per_class_iou(summary, arms, class_names),
        "class_shares": plot_class_shares(shares, class_names),
        "size_sweep": plot_sweep(report["sweep"], "size"),
        "replace_curve": plot_sweep(report["sweep"], "replace"),
        "val_curves": plot_val_curves(validation["curves"]),
    }
    for name, png in plots.items():
        if png is not None:
            _write_bytes(out / f"{name}.png", png)
            report["files"][name] = f"{name}.png"
    gallery_page = gallery_html(gallery or [], palette)
    report["files"].update({"html": "report.html", "json": "report.json"})
    write_json(out / "report.json", strict_json(report))
    page = render_html(report, plots, gallery_page)
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return report


def _write_csvs(
    out: Path,
    runs: list[dict[str, Any]],
    arms: Sequence[str],
    class_names: Sequence[str],
    summary: dict[str, Any],
    shares: dict[str, list[float]],
) -> None:
    """``runs.csv``, ``arms.csv``, ``comparisons.csv``, ``per_class_iou.csv`` and ``class_shares.csv``."""
    rows: list[list[Any]] = [["arm", "seed", "miou", "fwiou", "acc", "steps", "samples", "train_seconds"]]
    for r in sorted(runs, key=lambda r: (list(arms).index(r["arm"]) if r["arm"] in arms else 99, r["seed"])):
        info = r.get("train", {})
        rows.append(
            [
                r["arm"],
                r["seed"],
                *(r["scores"][m] for m in METRICS),
                info.get("steps"),
                info.get("samples"),
                info.get("seconds"),
            ]
        )
    _write_csv(out / "runs.csv", rows)
    rows = [["arm", "n_seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]]
    for a in arms:
        st = summary["arms"][a]
        rows.append([a, st["n"], *(st[m][s] for m in METRICS for s in ("mean", "std"))])
    _write_csv(out / "arms.csv", rows)
    rows = [
        [
            "arm",
            "reference",
            "metric",
            "n",
            "relative_change_pct",
            "absolute_change_points",
            "mean_diff",
            "std_diff",
            "se_diff",
            "t",
            "p_ttest",
            "n_pos",
            "n_neg",
            "p_sign",
            "resolved",
        ]
    ]
    for c in summary["comparisons"]:
        for m in METRICS:
            s = c[m]
            rows.append(
                [
                    c["arm"],
                    c["reference"],
                    m,
                    s["n"],
                    s["relative_pct"],
                    s["points"],
                    s["mean_diff"],
                    s["std_diff"],
                    s["se_diff"],
                    s["t"],
                    s["p_ttest"],
                    s["n_pos"],
                    s["n_neg"],
                    s["p_sign"],
                    s["resolved"],
                ]
            )
    _write_csv(out / "comparisons.csv", rows)
    rows = [["class"] + [f"{a}_mean" for a in arms] + [f"{a}_std" for a in arms]]
    for k, n in enumerate(class_names):
        rows.append(
            [n] + [summary["arms"][a]["iou_mean"][k] for a in arms] + [summary["arms"][a]["iou_std"][k] for a in arms]
        )
    _write_csv(out / "per_class_iou.csv", rows)
    rows = [["class", *list(shares)]]
    for k, n in enumerate(class_names):
        rows.append([n] + [shares[s][k] for s in shares])
    _write_csv(out / "class_shares.csv", rows)


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
    """One CSV file (floats with 6 significant digits, ``None`` as an empty cell), written atomically."""
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        for r in rows:
            w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in r])


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _sweep_csv_rows(sw: dict[str, Any]) -> list[list[Any]]:
    """Rows of ``sweep.csv`` (header first) from :func:`~rsaug.benchmark.statistics.summarize_sweep`."""
    rows = [
        ["curve", "fraction", "synthetic", "arm", "reference", "n"]
        + [
            f"{m}_{w}"
            for m in METRICS
            for w in ("arm_mean", "arm_std", "reference_mean", "relative_pct", "points", "p_ttest")
        ]
    ]
    for r in sw["rows"]:
        c, a, ref = r["comparison"], r["arm_stats"], r["reference_stats"]
        rows.append(
            [r["curve"], r["fraction"], r["synthetic"], r["arm"], r["reference"], c["miou"]["n"]]
            + [
                v
                for m in METRICS
                for v in (
                    a[m]["mean"],
                    a[m]["std"],
                    ref[m]["mean"],
                    c[m]["relative_pct"],
                    c[m]["points"],
                    c[m]["p_ttest"],
                )
            ]
        )
    return rows


def _validation_csv_rows(val: dict[str, Any]) -> list[list[Any]]:
    """Rows of ``validation.csv`` (header first): one per run with a validation curve."""
    rows: list[list[Any]] = [["arm", "seed", "best_step", "best_val_miou", "converged", "selected_step", "curve"]]
    for arm, st in val["arms"].items():
        for seed, v in st["seeds"].items():
            curve = " ".join(f"{int(p[0])}:{p[1]:.4f}" for p in val["curves"][arm][seed])
            rows.append([arm, seed, v["best_step"], v["best_val_miou"], v["converged"], v.get("selected_step"), curve])
    return rows


def load_report(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``report.json`` of a benchmark output directory."""
    return read_json(Path(out_dir) / "report.json")
