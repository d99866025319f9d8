"""Benchmark report: statistics over seeds, paired comparisons, CSVs, PNG plots and a self-contained HTML page.

Input: the run files written by :mod:`rsaug.benchmark.runner` (one JSON per arm and seed, each with the confusion
matrix of the real test split). Everything shown is recomputed from those files; nothing is assumed.

Statistics:

* per arm: mean and sample standard deviation (ddof = 1) over seeds of mIoU, FWIoU, accuracy and per-class IoU;
* per comparison (arm B vs arm A, paired by seed): the per-seed differences B - A (mean, std, standard
  error), a paired t-test (two-sided, ``scipy.stats.ttest_rel``), a sign count (+ / - / 0) with an exact
  two-sided sign test, and the d-metrics: the relative change of the means ``(mean_B - mean_A) / mean_A``
  in percent (the paper's d-mIoU, d-FWIoU, d-acc) and the absolute change in percentage points;
* the noise verdict: the effect is called *resolved* when ``|mean difference| > 2 x standard error of the
  paired differences`` (and the paired t-test p < 0.05 when at least 3 seeds exist); the baseline's
  seed-to-seed standard deviation is compared with the effect too, so the reader sees what pairing gained.

Output files (all written atomically): ``report.json``, ``runs.csv``, ``arms.csv``, ``comparisons.csv``,
``per_class_iou.csv``, ``class_shares.csv``, ``metrics_by_arm.png``, ``per_class_iou.png``,
``class_shares.png``, ``paired_differences.png`` and ``report.html`` (images embedded as base64 data URIs, no
scripts, no external resources).
"""
from __future__ import annotations

import base64
import csv
import html
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rsaug.benchmark.config import BenchmarkConfig
from rsaug.core.files import atomic_path, read_json, strict_json, write_json
from rsaug.segmentation.config import preset

METRICS = ("miou", "fwiou", "acc")
METRIC_LABELS = {"miou": "mIoU", "fwiou": "FWIoU", "acc": "accuracy"}
BASELINE = "real"


# ----------------------------------------------------------------------------------------------- statistics
def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof = 1; NaN for a single value)."""
    v = np.asarray([x for x in values if x is not None and not np.isnan(x)], dtype=np.float64)
    if len(v) == 0:
        return float("nan"), float("nan")
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")


def paired_comparison(a: dict[int, float], b: dict[int, float]) -> dict[str, Any]:
    """Compare arm B with arm A on the seeds both have (B - A, paired by seed).

    Args:
        a: Seed -> metric of the reference arm.
        b: Seed -> metric of the compared arm.

    Returns:
        ``n``, ``seeds``, ``diffs``, ``mean_diff``, ``std_diff``, ``se_diff``, ``t``, ``p_ttest``,
        ``n_pos`` / ``n_neg`` / ``n_zero``, ``p_sign``, ``mean_a``, ``mean_b``, ``relative_pct`` (change of the
        means relative to A, percent), ``points`` (absolute change x 100, percentage points), and
        ``resolved`` (|mean diff| > 2 SE, and p < 0.05 when n >= 3).
    """
    from scipy import stats

    seeds = sorted(set(a) & set(b))
    da = np.array([a[s] for s in seeds], dtype=np.float64)
    db = np.array([b[s] for s in seeds], dtype=np.float64)
    d = db - da
    n = len(seeds)
    out: dict[str, Any] = {"n": n, "seeds": seeds, "diffs": d.tolist()}
    if n == 0:
        out.update(mean_diff=float("nan"), std_diff=float("nan"), se_diff=float("nan"), t=float("nan"),
                   p_ttest=float("nan"), n_pos=0, n_neg=0, n_zero=0, p_sign=float("nan"), mean_a=float("nan"),
                   mean_b=float("nan"), relative_pct=float("nan"), points=float("nan"), resolved=False)
        return out
    mean_d = float(d.mean())
    std_d = float(d.std(ddof=1)) if n > 1 else float("nan")
    se = std_d / math.sqrt(n) if n > 1 else float("nan")
    if n > 1 and std_d > 0:
        res = stats.ttest_rel(db, da)
        t, p = float(res.statistic), float(res.pvalue)
    elif n > 1:  # identical differences: exact
        t, p = (float("inf") if mean_d else float("nan")), (0.0 if mean_d else 1.0)
    else:
        t, p = float("nan"), float("nan")
    n_pos, n_neg = int((d > 0).sum()), int((d < 0).sum())
    n_zero = n - n_pos - n_neg
    p_sign = float(stats.binomtest(n_pos, n_pos + n_neg, 0.5).pvalue) if n_pos + n_neg > 0 else 1.0
    mean_a, mean_b = float(da.mean()), float(db.mean())
    rel = (mean_b - mean_a) / mean_a * 100 if mean_a != 0 else float("nan")
    resolved = bool(n > 1 and not math.isnan(se) and abs(mean_d) > 2 * se and (n < 3 or p < 0.05))
    out.update(mean_diff=mean_d, std_diff=std_d, se_diff=se, t=t, p_ttest=p, n_pos=n_pos, n_neg=n_neg,
               n_zero=n_zero, p_sign=p_sign, mean_a=mean_a, mean_b=mean_b, relative_pct=rel,
               points=(mean_b - mean_a) * 100, resolved=resolved)
    return out


def _runs_by_arm(runs: list[dict[str, Any]], arms: Sequence[str]) -> dict[str, dict[int, dict[str, Any]]]:
    """Run results of ``arms`` as arm -> seed -> run."""
    by_arm: dict[str, dict[int, dict[str, Any]]] = {a: {} for a in arms}
    for r in runs:
        if r["arm"] in by_arm:
            by_arm[r["arm"]][int(r["seed"])] = r
    return by_arm


def _arm_stats(rs: dict[int, dict[str, Any]], class_names: Sequence[str]) -> dict[str, Any]:
    """Mean / std / per-seed values of every metric and per-class IoU mean / std of one arm's runs."""
    st: dict[str, Any] = {"n": len(rs), "seeds": sorted(rs)}
    for m in METRICS:
        vals = [rs[s]["scores"][m] for s in sorted(rs)]
        st[m] = dict(zip(("mean", "std"), mean_std(vals)))
        st[m]["values"] = vals
    ious = np.array([[np.nan if v is None else v for v in rs[s]["scores"]["iou"]] for s in sorted(rs)],
                    dtype=np.float64).reshape(len(rs), len(class_names))
    with np.errstate(all="ignore"), _quiet():
        st["iou_mean"] = np.nanmean(ious, axis=0).tolist() if len(rs) else [float("nan")] * len(class_names)
        st["iou_std"] = (np.nanstd(ious, axis=0, ddof=1).tolist() if len(rs) > 1
                         else [float("nan")] * len(class_names))
    return st


def _metric_comparisons(ref: dict[int, dict[str, Any]], arm: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """:func:`paired_comparison` of every metric, ``arm`` against ``ref`` (seed -> run)."""
    return {m: paired_comparison({s: r["scores"][m] for s, r in ref.items()},
                                 {s: r["scores"][m] for s, r in arm.items()}) for m in METRICS}


def summarize(runs: list[dict[str, Any]], arms: Sequence[str], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-arm statistics and paired comparisons from run results.

    Args:
        runs: Run results (``arm``, ``seed``, ``scores`` with ``miou``/``fwiou``/``acc``/``iou``).
        arms: Arm names in display order.
        class_names: Class names (order of the per-class IoU lists).

    Returns:
        ``arms`` (per-arm mean/std/n/per-seed values/per-class IoU mean and std), ``comparisons`` (every
        non-baseline arm vs the baseline, plus every ``real+X`` arm vs every other arm), and ``noise``
        (baseline spread vs effects).
    """
    by_arm = _runs_by_arm(runs, arms)
    arm_stats = {arm: _arm_stats(by_arm[arm], class_names) for arm in arms}
    pairs: list[tuple[str, str]] = []
    if BASELINE in arms:
        pairs += [(BASELINE, a) for a in arms if a != BASELINE]
    for b in arms:
        if b.startswith("real+"):
            pairs += [(a, b) for a in arms if a not in (b, BASELINE) and (b, a) not in pairs and (a, b) not in pairs]
    comparisons = []
    for a, b in pairs:
        comp: dict[str, Any] = {"reference": a, "arm": b, **_metric_comparisons(by_arm[a], by_arm[b])}
        comp["iou_points"] = [
            paired_comparison({s: _nan(r["scores"]["iou"][k]) for s, r in by_arm[a].items()},
                              {s: _nan(r["scores"]["iou"][k]) for s, r in by_arm[b].items()})["points"]
            for k in range(len(class_names))
        ]
        comparisons.append(comp)
    return {"arms": arm_stats, "comparisons": comparisons, "noise": noise_verdict(arm_stats, comparisons)}


def noise_verdict(arm_stats: dict[str, Any], comparisons: list[dict[str, Any]]) -> dict[str, Any]:
    """Did the protocol make run-to-run noise smaller than the effects? (stated for mIoU).

    Returns:
        ``baseline_std_points`` (seed-to-seed std of the baseline mIoU, points), and per comparison against the
        baseline: the effect (points), the std and standard error of the paired differences, whether the
        effect is resolved, and a sentence saying so.
    """
    base = arm_stats.get(BASELINE, {}).get("miou", {})
    base_std = base.get("std", float("nan")) * 100
    items = []
    for c in comparisons:
        if c["reference"] != BASELINE:
            continue
        m = c["miou"]
        eff, sd, se = m["points"], m["std_diff"] * 100, m["se_diff"] * 100
        if m["n"] < 2:
            text = (f"{c['arm']} vs {BASELINE}: only {m['n']} paired seed(s); the noise cannot be estimated and "
                    "no difference is claimed.")
        elif m["resolved"]:
            text = (f"{c['arm']} vs {BASELINE}: the effect ({eff:+.2f} points mIoU) is larger than the noise: "
                    f"2 x standard error of the paired differences is {2 * se:.2f} points (paired t-test "
                    f"p = {m['p_ttest']:.3g}, {m['n_pos']}/{m['n']} seeds improve).")
        else:
            text = (f"{c['arm']} vs {BASELINE}: the effect ({eff:+.2f} points mIoU) is NOT larger than the noise: "
                    f"2 x standard error of the paired differences is {2 * se:.2f} points (paired t-test "
                    f"p = {m['p_ttest']:.3g}, {m['n_pos']}/{m['n']} seeds improve); no difference is claimed.")
        items.append({"arm": c["arm"], "effect_points": eff, "paired_std_points": sd, "paired_se_points": se,
                      "baseline_std_points": base_std, "resolved": bool(m["resolved"]), "text": text})
    return {"baseline_std_points": base_std, "comparisons": items}


def summarize_sweep(runs: list[dict[str, Any]], sweep: Sequence[dict[str, Any]],
                    class_names: Sequence[str]) -> dict[str, Any]:
    """The training-set-size sweep (Table III) and the replace-vs-augment curve, paired by seed.

    Size rows compare ``real+<name>@f`` with ``real@f`` (and, at f = 1, ``real+<name>`` with ``real``);
    replace rows compare ``replace-<name>@r`` with ``real`` (all real tiles).

    Returns:
        ``rows``: dicts with ``curve`` (``size`` / ``replace``), ``fraction`` (real share kept, or share
        replaced), ``synthetic``, ``reference``, ``arm``, per-arm stats ``reference_stats`` / ``arm_stats``
        (mean/std/n per metric) and ``comparison`` (:func:`paired_comparison` per metric).
    """
    if not sweep:
        return {"rows": []}
    by_arm = _runs_by_arm(runs, sorted({r["arm"] for r in runs}))
    rows = []

    def row(curve: str, fraction: float, syn: str, ref: str, arm: str) -> None:
        if ref not in by_arm or arm not in by_arm:
            return
        pick = (lambda st: {m: {k: st[m][k] for k in ("mean", "std")} | {"n": st["n"]} for m in METRICS})
        rows.append({"curve": curve, "fraction": fraction, "synthetic": syn, "reference": ref, "arm": arm,
                     "reference_stats": pick(_arm_stats(by_arm[ref], class_names)),
                     "arm_stats": pick(_arm_stats(by_arm[arm], class_names)),
                     "comparison": _metric_comparisons(by_arm[ref], by_arm[arm])})

    syns = sorted({a["synthetic"] for a in sweep if a.get("synthetic")})
    fractions = sorted({a["real_fraction"] for a in sweep if a["kind"] != "replace"})
    for f in fractions + [1.0]:
        for n in syns:
            row("size", f, n, BASELINE if f >= 1 else f"real@{f:g}", f"real+{n}" if f >= 1 else f"real+{n}@{f:g}")
    for a in sweep:
        if a["kind"] == "replace":
            row("replace", round(1.0 - a["real_fraction"], 6), a["synthetic"], BASELINE, a["name"])
    return {"rows": rows}


def _sweep_csv_rows(sw: dict[str, Any]) -> list[list[Any]]:
    rows = [["curve", "fraction", "synthetic", "arm", "reference", "n"]
            + [f"{m}_{w}" for m in METRICS for w in ("arm_mean", "arm_std", "reference_mean", "relative_pct",
                                                    "points", "p_ttest")]]
    for r in sw["rows"]:
        c, a, ref = r["comparison"], r["arm_stats"], r["reference_stats"]
        rows.append([r["curve"], r["fraction"], r["synthetic"], r["arm"], r["reference"], c["miou"]["n"]]
                    + [v for m in METRICS for v in (a[m]["mean"], a[m]["std"], ref[m]["mean"],
                                                    c[m]["relative_pct"], c[m]["points"], c[m]["p_ttest"])])
    return rows


def class_shares(counts: dict[str, Sequence[int]]) -> dict[str, list[float]]:
    """Pixel share of every class (fractions summing to 1) for each named count vector."""
    out = {}
    for name, c in counts.items():
        c = np.asarray(c, dtype=np.float64)
        out[name] = (c / c.sum()).tolist() if c.sum() > 0 else [0.0] * len(c)
    return out


# ----------------------------------------------------------------------------------------------- files
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
    report = {
        "title": title,
        "config": config or {},
        "class_names": list(class_names),
        "arms": list(arms),
        "runs": [{k: v for k, v in r.items() if k != "confusion_matrix"} | {"confusion_matrix": r.get("confusion_matrix")}
                 for r in runs],
        "summary": summary,
        "class_counts": {k: [int(x) for x in v] for k, v in class_counts.items()},
        "class_shares": shares,
        "sweep": summarize_sweep(runs, list(sweep or []), class_names),
        "files": {},
    }
    _write_csvs(out, runs, arms, class_names, summary, shares)
    if report["sweep"]["rows"]:
        _write_csv(out / "sweep.csv", _sweep_csv_rows(report["sweep"]))
    plots = {
        "metrics_by_arm": plot_metrics_by_arm(summary, arms),
        "paired_differences": plot_paired_differences(summary),
        "per_class_iou": plot_per_class_iou(summary, arms, class_names),
        "class_shares": plot_class_shares(shares, class_names),
        "size_sweep": plot_sweep(report["sweep"], "size"),
        "replace_curve": plot_sweep(report["sweep"], "replace"),
    }
    for name, png in plots.items():
        if png is not None:
            _write_bytes(out / f"{name}.png", png)
            report["files"][name] = f"{name}.png"
    gallery_html = _gallery_html(gallery or [], palette)
    report["files"].update({"html": "report.html", "json": "report.json"})
    write_json(out / "report.json", strict_json(report))
    page = render_html(report, plots, gallery_html)
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(page, encoding="utf-8")
    return report


def _write_csvs(out: Path, runs: list[dict[str, Any]], arms: Sequence[str], class_names: Sequence[str],
                summary: dict[str, Any], shares: dict[str, list[float]]) -> None:
    rows = [["arm", "seed", "miou", "fwiou", "acc", "steps", "samples", "train_seconds"]]
    for r in sorted(runs, key=lambda r: (list(arms).index(r["arm"]) if r["arm"] in arms else 99, r["seed"])):
        info = r.get("train", {})
        rows.append([r["arm"], r["seed"], *(r["scores"][m] for m in METRICS), info.get("steps"), info.get("samples"),
                     info.get("seconds")])
    _write_csv(out / "runs.csv", rows)
    rows = [["arm", "n_seeds"] + [f"{m}_{s}" for m in METRICS for s in ("mean", "std")]]
    for a in arms:
        st = summary["arms"][a]
        rows.append([a, st["n"], *(st[m][s] for m in METRICS for s in ("mean", "std"))])
    _write_csv(out / "arms.csv", rows)
    rows = [["arm", "reference", "metric", "n", "relative_change_pct", "absolute_change_points", "mean_diff",
             "std_diff", "se_diff", "t", "p_ttest", "n_pos", "n_neg", "p_sign", "resolved"]]
    for c in summary["comparisons"]:
        for m in METRICS:
            s = c[m]
            rows.append([c["arm"], c["reference"], m, s["n"], s["relative_pct"], s["points"], s["mean_diff"],
                         s["std_diff"], s["se_diff"], s["t"], s["p_ttest"], s["n_pos"], s["n_neg"], s["p_sign"],
                         s["resolved"]])
    _write_csv(out / "comparisons.csv", rows)
    rows = [["class"] + [f"{a}_mean" for a in arms] + [f"{a}_std" for a in arms]]
    for k, n in enumerate(class_names):
        rows.append([n] + [summary["arms"][a]["iou_mean"][k] for a in arms]
                    + [summary["arms"][a]["iou_std"][k] for a in arms])
    _write_csv(out / "per_class_iou.csv", rows)
    rows = [["class"] + list(shares)]
    for k, n in enumerate(class_names):
        rows.append([n] + [shares[s][k] for s in shares])
    _write_csv(out / "class_shares.csv", rows)


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        for r in rows:
            w.writerow(["" if v is None else (f"{v:.6g}" if isinstance(v, float) else v) for v in r])


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


# ----------------------------------------------------------------------------------------------- plots
def _fig_png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_sweep(sw: dict[str, Any], curve: str) -> bytes | None:
    """mIoU (mean +- std over seeds) against the real share kept (``size``) or the share replaced
    (``replace``), per synthetic set, with the reference arms."""
    rows = [r for r in sw.get("rows", []) if r["curve"] == curve]
    if not rows:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for n in sorted({r["synthetic"] for r in rows}):
        rs = sorted((r for r in rows if r["synthetic"] == n), key=lambda r: r["fraction"])
        xs = [r["fraction"] for r in rs]
        ax.errorbar(xs, [r["arm_stats"]["miou"]["mean"] for r in rs], yerr=[_nan(r["arm_stats"]["miou"]["std"])
                    for r in rs], marker="o", capsize=3, label=rs[0]["arm"].split("@")[0] if curve == "size"
                    else f"replace with {n}")
    if curve == "size":
        rs = sorted({r["fraction"]: r for r in rows}.values(), key=lambda r: r["fraction"])
        ax.errorbar([r["fraction"] for r in rs], [r["reference_stats"]["miou"]["mean"] for r in rs],
                    yerr=[_nan(r["reference_stats"]["miou"]["std"]) for r in rs], marker="s", capsize=3,
                    color="black", label="real only")
        ax.set_xlabel("share of the real training tiles used")
    else:
        ref = rows[0]["reference_stats"]["miou"]
        ax.axhline(ref["mean"], color="black", lw=1, label="all real tiles")
        ax.set_xlabel("share of real training tiles replaced by synthetic ones")
    ax.set_ylabel("test mIoU")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _fig_png(fig)


def plot_metrics_by_arm(summary: dict[str, Any], arms: Sequence[str]) -> bytes:
    """Grouped bars (mean +- std over seeds) of mIoU, FWIoU and accuracy per arm, with every seed as a dot."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 1.4 * len(arms), 3.6))
    width = 0.8 / len(METRICS)
    for j, m in enumerate(METRICS):
        xs = np.arange(len(arms)) + (j - 1) * width
        means = [summary["arms"][a][m]["mean"] for a in arms]
        stds = [np.nan_to_num(summary["arms"][a][m]["std"]) for a in arms]
        ax.bar(xs, means, width, yerr=stds, capsize=3, label=METRIC_LABELS[m], alpha=0.8)
        for x, a in zip(xs, arms):
            vals = summary["arms"][a][m]["values"]
            ax.plot([x] * len(vals), vals, "k.", ms=4)
    ax.set_xticks(np.arange(len(arms)), arms, rotation=15)
    ax.set_ylabel("score on the real test split")
    ax.set_ylim(0, 1)
    ax.set_title("Scores per arm (bars: mean ± std over seeds; dots: seeds)")
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    return _fig_png(fig)


def plot_paired_differences(summary: dict[str, Any]) -> bytes | None:
    """Per-seed mIoU differences (points) of every arm vs the baseline, with mean ± 2 SE."""
    comps = [c for c in summary["comparisons"] if c["reference"] == BASELINE]
    if not comps:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(1.6 + 1.5 * len(comps), 3.4))
    for i, c in enumerate(comps):
        m = c["miou"]
        d = np.asarray(m["diffs"]) * 100
        ax.plot(np.full(len(d), i) + np.linspace(-0.08, 0.08, len(d)) if len(d) else [], d, "o", color="C0", ms=5)
        if m["n"] > 1:
            ax.errorbar(i + 0.22, m["mean_diff"] * 100, yerr=2 * m["se_diff"] * 100, fmt="s", color="C3", capsize=4)
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(np.arange(len(comps)), [f"{c['arm']}\n- {BASELINE}" for c in comps])
    ax.set_ylabel("Δ mIoU (points), paired by seed")
    ax.set_title("Paired differences (dots: seeds; red: mean ± 2 SE)")
    return _fig_png(fig)


def plot_per_class_iou(summary: dict[str, Any], arms: Sequence[str], class_names: Sequence[str]) -> bytes:
    """Fig. 9 style: per-class IoU (mean over seeds, std as error bars) of every arm."""
    plt = _plt()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.55 * k * max(1, len(arms)) / 2 + 2), 3.8))
    width = 0.8 / len(arms)
    for j, a in enumerate(arms):
        xs = np.arange(k) + (j - (len(arms) - 1) / 2) * width
        ax.bar(xs, np.nan_to_num(summary["arms"][a]["iou_mean"]), width,
               yerr=np.nan_to_num(summary["arms"][a]["iou_std"]), capsize=2, label=a)
    ax.set_xticks(np.arange(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("IoU (real test split)")
    ax.set_ylim(0, 1)
    ax.set_title("Per-class IoU per arm (mean ± std over seeds)")
    ax.legend(fontsize=8, ncols=min(4, len(arms)))
    return _fig_png(fig)


def plot_class_shares(shares: dict[str, list[float]], class_names: Sequence[str]) -> bytes:
    """Fig. 8 style: pixel share of each class in the real training set vs real + synthetic training sets."""
    plt = _plt()
    k = len(class_names)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.5 * k + 2), 3.6))
    width = 0.8 / max(1, len(shares))
    for j, (name, sh) in enumerate(shares.items()):
        xs = np.arange(k) + (j - (len(shares) - 1) / 2) * width
        ax.bar(xs, np.asarray(sh) * 100, width, label=name)
    ax.set_xticks(np.arange(k), class_names, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("share of labelled training pixels (%)")
    ax.set_title("Class pixel shares of the training sets")
    ax.legend(fontsize=8)
    return _fig_png(fig)


# ----------------------------------------------------------------------------------------------- gallery / HTML
def _to_rgb(img: np.ndarray) -> np.ndarray:
    """(C, H, W) any dtype -> (H, W, 3) uint8 for display (first three bands, 2-98 % stretch unless uint8)."""
    img = np.asarray(img)
    x = img[:3] if img.shape[0] >= 3 else np.repeat(img[:1], 3, axis=0)
    if x.dtype == np.uint8:
        return np.moveaxis(x, 0, -1)
    x = x.astype(np.float64)
    lo, hi = np.percentile(x, 2), np.percentile(x, 98)
    return np.moveaxis((np.clip((x - lo) / max(hi - lo, 1e-9), 0, 1) * 255).astype(np.uint8), 0, -1)


def png_data_uri(rgb: np.ndarray) -> str:
    """Encode an (H, W, 3) uint8 array as a ``data:image/png;base64,...`` URI."""
    import matplotlib.image as mpimg

    buf = io.BytesIO()
    mpimg.imsave(buf, np.ascontiguousarray(rgb), format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _gallery_html(gallery: list[dict[str, Any]], palette: np.ndarray | None) -> str:
    if not gallery:
        return "<p>No synthetic samples to show (no synthetic tile set in this benchmark).</p>"
    pal = palette if palette is not None else np.zeros((256, 3), np.uint8)
    rows = []
    for g in gallery:
        cells = [f"<td><img alt='mask' src='{png_data_uri(pal[np.asarray(g['mask'])])}'></td>"]
        cells.append(f"<td><img alt='real' src='{png_data_uri(_to_rgb(g['real']))}'></td>" if g.get("real") is not None
                     else "<td>(source tile not in the real set)</td>")
        for s in g.get("synthetic", []):
            cells.append(f"<td><img alt='synthetic' src='{png_data_uri(_to_rgb(s))}'></td>")
        rows.append(f"<tr><th>{html.escape(str(g.get('tile_id', '')))}<br><small>{html.escape(str(g.get('source', '')))}"
                    f"</small></th>{''.join(cells)}</tr>")
    ncols = max(len(g.get("synthetic", [])) for g in gallery)
    head = "<tr><th>tile</th><th>mask</th><th>real</th>" + "".join(
        f"<th>synthetic {i + 1}</th>" for i in range(ncols)) + "</tr>"
    return f"<table class='gallery'>{head}{''.join(rows)}</table>"


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def render_html(report: dict[str, Any], plots: dict[str, bytes | None], gallery_html: str) -> str:
    """The self-contained report page (no scripts; images as data URIs)."""
    s = report["summary"]
    arms = report["arms"]
    e = html.escape
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{e(report['title'])}</title>",
             "<style>body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;"
             "margin:1em 0}td,th{border:1px solid #bbb;padding:3px 7px;text-align:right}th{background:#eee}"
             "td:first-child,th:first-child{text-align:left}.ok{color:#070}.no{color:#a00}"
             "table.gallery img{width:160px;image-rendering:pixelated}img.plot{max-width:100%}</style></head><body>",
             f"<h1>{e(report['title'])}</h1>"]
    cfg = report.get("config", {})
    seg = cfg.get("segmenter", {})
    if cfg:
        parts.append("<h2>Protocol</h2><p>TorchGeo <code>SemanticSegmentationTask</code> U-Net, backbone "
                     f"<code>{e(str(seg.get('backbone')))}</code>, random initialisation; "
                     f"{_fmt(seg.get('iterations'))} steps, batch {_fmt(seg.get('batch_size'))}, "
                     f"{_fmt(seg.get('crop'))}-px crops, AdamW lr {_fmt(seg.get('lr'))} with {e(str(seg.get('schedule')))}"
                     " schedule, identical for every arm. Seed <i>s</i> = the same initialisation and the same "
                     "real-tile draw sequence in every arm; comparisons are paired by seed. Evaluation: every pixel "
                     "of every tile of the real test split, unknown pixels ignored. "
                     f"Preset: {e(str(cfg.get('preset')))}. Real tiles: <code>{e(str(cfg.get('real')))}</code>; "
                     f"synthetic sets: {e(', '.join(f'{k} = {v}' for k, v in cfg.get('synthetic', {}).items()) or 'none')}.</p>")
        reduced = protocol_reductions(cfg)
        if reduced:
            parts.append(f"<p><b>Reduced protocol</b> compared with preset {e(str(cfg.get('preset')))}: "
                         + e("; ".join(reduced)) + ". Its numbers are noisier and less converged than those of a "
                         "full preset run.</p>")
    parts.append("<h2>Scores per arm</h2><table><tr><th>arm</th><th>seeds</th>" + "".join(
        f"<th>{METRIC_LABELS[m]} mean ± std</th>" for m in METRICS) + "</tr>")
    for a in arms:
        st = s["arms"][a]
        parts.append(f"<tr><td>{e(a)}</td><td>{st['n']}</td>" + "".join(
            f"<td>{_fmt(st[m]['mean'])} ± {_fmt(st[m]['std'])}</td>" for m in METRICS) + "</tr>")
    parts.append("</table>")
    parts.append("<h2>Paired comparisons (d-metrics)</h2><p>Relative change = change of the mean relative to the "
                 "reference arm (the paper's d-mIoU / d-FWIoU / d-acc, %); absolute change in percentage points; "
                 "per-seed differences with mean ± std, paired t-test and sign count.</p>"
                 "<table><tr><th>arm vs reference</th><th>metric</th><th>seeds</th><th>relative change (%)</th>"
                 "<th>absolute change (points)</th><th>paired diff. mean ± std (points)</th><th>t-test p</th>"
                 "<th>seeds +/−</th><th>resolved?</th></tr>")
    for c in s["comparisons"]:
        for m in METRICS:
            x = c[m]
            cls = "ok" if x["resolved"] else "no"
            parts.append(f"<tr><td>{e(c['arm'])} vs {e(c['reference'])}</td><td>{METRIC_LABELS[m]}</td><td>{x['n']}</td>"
                         f"<td>{_fmt(x['relative_pct'], 2)}</td><td>{_fmt(x['points'], 2)}</td>"
                         f"<td>{_fmt(x['mean_diff'] * 100, 2)} ± {_fmt(x['std_diff'] * 100, 2)}</td>"
                         f"<td>{_fmt(x['p_ttest'], 3)}</td><td>{x['n_pos']}/{x['n_neg']}</td>"
                         f"<td class='{cls}'>{'yes' if x['resolved'] else 'no'}</td></tr>")
    parts.append("</table>")
    nz = s["noise"]
    parts.append(f"<h2>Noise vs effect</h2><p>Seed-to-seed standard deviation of the baseline mIoU: "
                 f"{_fmt(nz['baseline_std_points'], 2)} points. An effect is called resolved when |mean paired "
                 "difference| &gt; 2 standard errors of the paired differences (and paired t-test p &lt; 0.05 with "
                 "3 or more seeds).</p><ul>" + "".join(f"<li>{e(i['text'])}</li>" for i in nz["comparisons"]) + "</ul>")
    for key, cap in (("metrics_by_arm", "Scores per arm"), ("paired_differences", "Paired differences"),
                     ("per_class_iou", "Per-class IoU (Fig. 9 style)"),
                     ("class_shares", "Class pixel shares (Fig. 8 style)")):
        if plots.get(key):
            uri = "data:image/png;base64," + base64.b64encode(plots[key]).decode("ascii")
            parts.append(f"<h2>{e(cap)}</h2><img class='plot' alt='{e(cap)}' src='{uri}'>")
    parts.append(_sweep_html(report.get("sweep", {}), plots))
    names = report["class_names"]
    parts.append("<h2>Per-class IoU (mean over seeds)</h2><table><tr><th>class</th>" + "".join(
        f"<th>{e(a)}</th>" for a in arms) + "".join(f"<th>share {e(k)} (%)</th>" for k in report["class_shares"])
        + "</tr>")
    for k, n in enumerate(names):
        parts.append(f"<tr><td>{e(n)}</td>" + "".join(f"<td>{_fmt(s['arms'][a]['iou_mean'][k])}</td>" for a in arms)
                     + "".join(f"<td>{_fmt(v[k] * 100, 2)}</td>" for v in report["class_shares"].values()) + "</tr>")
    parts.append("</table><h2>Samples: mask / real / synthetic</h2>" + gallery_html)
    parts.append("<h2>Runs</h2><table><tr><th>arm</th><th>seed</th><th>mIoU</th><th>FWIoU</th><th>acc</th>"
                 "<th>steps</th><th>samples</th><th>draws per source</th><th>train s</th></tr>")
    for r in sorted(report["runs"], key=lambda r: (arms.index(r["arm"]) if r["arm"] in arms else 99, r["seed"])):
        t = r.get("train", {})
        parts.append(f"<tr><td>{e(r['arm'])}</td><td>{r['seed']}</td>" + "".join(
            f"<td>{_fmt(r['scores'][m])}</td>" for m in METRICS) + f"<td>{_fmt(t.get('steps'))}</td>"
            f"<td>{_fmt(t.get('samples'))}</td><td>{e(', '.join(f'{k}: {v}' for k, v in t.get('draws', {}).items()))}</td>"
            f"<td>{_fmt(t.get('seconds'), 0)}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _sweep_html(sw: dict[str, Any], plots: dict[str, bytes | None]) -> str:
    e = html.escape
    parts = []
    for curve, title, what in (
            ("size", "Training-set-size sweep (Table III)", "real tiles kept"),
            ("replace", "Replacing real tiles with synthetic ones (companion study, Fig. 3)", "share replaced")):
        rows = [r for r in sw.get("rows", []) if r["curve"] == curve]
        if not rows:
            continue
        parts.append(f"<h2>{e(title)}</h2><table><tr><th>arm vs reference</th><th>{e(what)}</th><th>seeds</th>"
                     "<th>mIoU arm</th><th>mIoU reference</th>" + "".join(
                         f"<th>d-{METRIC_LABELS[m]} % (points, p)</th>" for m in METRICS) + "<th>resolved?</th></tr>")
        for r in rows:
            c = r["comparison"]
            parts.append(
                f"<tr><td>{e(r['arm'])} vs {e(r['reference'])}</td><td>{r['fraction']:g}</td><td>{c['miou']['n']}</td>"
                f"<td>{_fmt(r['arm_stats']['miou']['mean'])} ± {_fmt(r['arm_stats']['miou']['std'])}</td>"
                f"<td>{_fmt(r['reference_stats']['miou']['mean'])} ± {_fmt(r['reference_stats']['miou']['std'])}</td>"
                + "".join(f"<td>{_fmt(c[m]['relative_pct'], 2)} ({_fmt(c[m]['points'], 2)}, "
                          f"{_fmt(c[m]['p_ttest'], 3)})</td>" for m in METRICS)
                + f"<td class='{'ok' if c['miou']['resolved'] else 'no'}'>{'yes' if c['miou']['resolved'] else 'no'}"
                "</td></tr>")
        parts.append("</table>")
        key = "size_sweep" if curve == "size" else "replace_curve"
        if plots.get(key):
            uri = "data:image/png;base64," + base64.b64encode(plots[key]).decode("ascii")  # type: ignore[arg-type]
            parts.append(f"<img class='plot' alt='{e(title)}' src='{uri}'>")
    return "".join(parts)


# ----------------------------------------------------------------------------------------------- helpers
def _nan(v: Any) -> float:
    return float("nan") if v is None else float(v)


class _quiet:
    def __enter__(self) -> None:
        import warnings

        self._w = warnings.catch_warnings()
        self._w.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc: Any) -> None:
        self._w.__exit__(*exc)


def protocol_reductions(cfg: dict[str, Any]) -> list[str]:
    """Where a benchmark's protocol (its saved config) does less than its named preset.

    Returns:
        Human-readable items such as ``"2 seeds instead of 3"``; empty when nothing was reduced or no preset
        was named.
    """
    name = cfg.get("preset")
    if not name:
        return []
    try:
        ref = preset(str(name))
    except Exception:  # an unknown preset name in an old report
        return []
    seg = cfg.get("segmenter", {})
    out = []
    default_seeds = BenchmarkConfig.__dataclass_fields__["seeds"].default
    if int(cfg.get("seeds", default_seeds)) < default_seeds:
        out.append(f"{cfg.get('seeds')} seeds instead of {default_seeds}")
    if int(seg.get("iterations", ref.iterations)) < ref.iterations:
        out.append(f"{seg.get('iterations')} U-Net steps instead of {ref.iterations}")
    return out


def load_report(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``report.json`` of a benchmark output directory."""
    return read_json(Path(out_dir) / "report.json")
