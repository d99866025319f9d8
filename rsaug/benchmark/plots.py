"""The benchmark report's PNG plots (matplotlib, imported lazily, Agg backend): scores per arm, paired
differences, per-class IoU (Fig. 9 style), class pixel shares (Fig. 8 style), the size sweep, the replace curve and
the validation curves.

Every function returns the PNG bytes (``None`` when there is nothing to plot).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import numpy as np

from rsaug.benchmark.statistics import BASELINE, METRIC_LABELS, METRICS, nan_if_none


def _fig_png(fig: Any) -> bytes:
    """PNG bytes of a figure (110 dpi, tight bounding box); the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _plt() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend."""
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
    groups = sorted({r["arm"].split("@")[0] if curve == "size" else str(r["synthetic"]) for r in rows})
    for n in groups:
        rs = sorted(
            (r for r in rows if (r["arm"].split("@")[0] if curve == "size" else str(r["synthetic"])) == n),
            key=lambda r: r["fraction"],
        )
        xs = [r["fraction"] for r in rs]
        ax.errorbar(
            xs,
            [r["arm_stats"]["miou"]["mean"] for r in rs],
            yerr=[nan_if_none(r["arm_stats"]["miou"]["std"]) for r in rs],
            marker="o",
            capsize=3,
            label=n if curve == "size" else f"replace with {n}",
        )
    if curve == "size":
        rs = sorted({r["fraction"]: r for r in rows}.values(), key=lambda r: r["fraction"])
        ax.errorbar(
            [r["fraction"] for r in rs],
            [r["reference_stats"]["miou"]["mean"] for r in rs],
            yerr=[nan_if_none(r["reference_stats"]["miou"]["std"]) for r in rs],
            marker="s",
            capsize=3,
            color="black",
            label="real only",
        )
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
        ax.bar(
            xs,
            np.nan_to_num(summary["arms"][a]["iou_mean"]),
            width,
            yerr=np.nan_to_num(summary["arms"][a]["iou_std"]),
            capsize=2,
            label=a,
        )
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


def plot_val_curves(curves: dict[str, dict[int, list[list[float]]]]) -> bytes | None:
    """Validation mIoU against training step for every arm: the mean over seeds as a bold line (at the steps
    every seed evaluated), each seed as a light line of the same colour."""
    curves = {a: c for a, c in curves.items() if c}
    if not curves:
        return None
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    for i, (arm, by_seed) in enumerate(curves.items()):
        colour = f"C{i % 10}"
        for curve in by_seed.values():
            ax.plot([p[0] for p in curve], [p[1] for p in curve], color=colour, lw=0.8, alpha=0.3)
        common = sorted(set.intersection(*({p[0] for p in c} for c in by_seed.values())))
        if common:
            mean = [np.mean([{p[0]: p[1] for p in c}[s] for c in by_seed.values()]) for s in common]
            ax.plot(common, mean, color=colour, lw=2, marker=".", label=f"{arm} ({len(by_seed)} seeds)")
    ax.set_xlabel("training step")
    ax.set_ylabel("validation mIoU")
    ax.set_title("Validation curves (bold: mean over seeds; light: seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncols=2)
    return _fig_png(fig)
