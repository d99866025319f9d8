"""Benchmark statistics over seeds: per-arm mean / std, paired comparisons, the noise verdict, the size sweep.

Input: run results as written by :mod:`rsaug.benchmark.runner` (``arm``, ``seed``, ``scores``). Everything is
recomputed from them; nothing is assumed.

* per arm: mean and sample standard deviation (ddof = 1) over seeds of mIoU, FWIoU, accuracy and per-class IoU;
* per comparison (arm B vs arm A, paired by seed): the per-seed differences B - A (mean, std, standard
  error), a paired t-test (two-sided, ``scipy.stats.ttest_rel``), a sign count (+ / - / 0) with an exact
  two-sided sign test, and the d-metrics: the relative change of the means ``(mean_B - mean_A) / mean_A``
  in percent (the paper's d-mIoU, d-FWIoU, d-acc) and the absolute change in percentage points;
* the noise verdict: the effect is called *resolved* when ``|mean difference| > 2 x standard error of the
  paired differences`` (and the paired t-test p < 0.05 when at least 3 seeds exist); the baseline's
  seed-to-seed standard deviation is compared with the effect too, so the reader sees what pairing gained.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from rsaug.benchmark.config import preset_defaults
from rsaug.core.runtime import quiet
from rsaug.segmentation.config import CONVERGENCE_GAIN, CONVERGENCE_TAIL, preset

METRICS = ("miou", "fwiou", "acc")
METRIC_LABELS = {"miou": "mIoU", "fwiou": "FWIoU", "acc": "accuracy"}
BASELINE = "real"


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
        out.update(
            mean_diff=float("nan"),
            std_diff=float("nan"),
            se_diff=float("nan"),
            t=float("nan"),
            p_ttest=float("nan"),
            n_pos=0,
            n_neg=0,
            n_zero=0,
            p_sign=float("nan"),
            mean_a=float("nan"),
            mean_b=float("nan"),
            relative_pct=float("nan"),
            points=float("nan"),
            resolved=False,
        )
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
    out.update(
        mean_diff=mean_d,
        std_diff=std_d,
        se_diff=se,
        t=t,
        p_ttest=p,
        n_pos=n_pos,
        n_neg=n_neg,
        n_zero=n_zero,
        p_sign=p_sign,
        mean_a=mean_a,
        mean_b=mean_b,
        relative_pct=rel,
        points=(mean_b - mean_a) * 100,
        resolved=resolved,
    )
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
    ious = np.array(
        [[np.nan if v is None else v for v in rs[s]["scores"]["iou"]] for s in sorted(rs)], dtype=np.float64
    ).reshape(len(rs), len(class_names))
    with np.errstate(all="ignore"), quiet(RuntimeWarning):
        st["iou_mean"] = np.nanmean(ious, axis=0).tolist() if len(rs) else [float("nan")] * len(class_names)
        st["iou_std"] = np.nanstd(ious, axis=0, ddof=1).tolist() if len(rs) > 1 else [float("nan")] * len(class_names)
    return st


def _metric_comparisons(ref: dict[int, dict[str, Any]], arm: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """:func:`paired_comparison` of every metric, ``arm`` against ``ref`` (seed -> run)."""
    return {
        m: paired_comparison({s: r["scores"][m] for s, r in ref.items()}, {s: r["scores"][m] for s, r in arm.items()})
        for m in METRICS
    }


def summarize(runs: list[dict[str, Any]], arms: Sequence[str], class_names: Sequence[str]) -> dict[str, Any]:
    """Per-arm statistics and paired comparisons from run results.

    Args:
        runs: Run results (``arm``, ``seed``, ``scores`` with ``miou``/``fwiou``/``acc``/``iou``).
        arms: Arm names in display order.
        class_names: Class names (order of the per-class IoU lists).

    Returns:
        ``arms`` (per-arm mean/std/n/per-seed values/per-class IoU mean and std), ``comparisons`` (every
        non-baseline arm vs the baseline, every ``real+X`` arm vs every other arm, every ``classic+X`` arm vs
        ``classic``), and ``noise``
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
    for b in arms:  # the combination against classic augmentation alone
        if (
            b.startswith("classic+")
            and "classic" in arms
            and ("classic", b) not in pairs
            and (b, "classic") not in pairs
        ):
            pairs.append(("classic", b))
    comparisons = []
    for a, b in pairs:
        comp: dict[str, Any] = {"reference": a, "arm": b, **_metric_comparisons(by_arm[a], by_arm[b])}
        comp["iou_points"] = [
            paired_comparison(
                {s: nan_if_none(r["scores"]["iou"][k]) for s, r in by_arm[a].items()},
                {s: nan_if_none(r["scores"]["iou"][k]) for s, r in by_arm[b].items()},
            )["points"]
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
            text = (
                f"{c['arm']} vs {BASELINE}: only {m['n']} paired seed(s); the noise cannot be estimated and "
                "no difference is claimed."
            )
        elif m["resolved"]:
            text = (
                f"{c['arm']} vs {BASELINE}: the effect ({eff:+.2f} points mIoU) is larger than the noise: "
                f"2 x standard error of the paired differences is {2 * se:.2f} points (paired t-test "
                f"p = {m['p_ttest']:.3g}, {m['n_pos']}/{m['n']} seeds improve)."
            )
        else:
            text = (
                f"{c['arm']} vs {BASELINE}: the effect ({eff:+.2f} points mIoU) is NOT larger than the noise: "
                f"2 x standard error of the paired differences is {2 * se:.2f} points (paired t-test "
                f"p = {m['p_ttest']:.3g}, {m['n_pos']}/{m['n']} seeds improve); no difference is claimed."
            )
        items.append(
            {
                "arm": c["arm"],
                "effect_points": eff,
                "paired_std_points": sd,
                "paired_se_points": se,
                "baseline_std_points": base_std,
                "resolved": bool(m["resolved"]),
                "text": text,
            }
        )
    return {"baseline_std_points": base_std, "comparisons": items}


def summarize_sweep(
    runs: list[dict[str, Any]], sweep: Sequence[dict[str, Any]], class_names: Sequence[str]
) -> dict[str, Any]:
    """The training-set-size sweep (Table III) and the replace-vs-augment curve, paired by seed.

    Size rows compare ``real+<name>@f`` (and ``classic@f`` when the sweep has it) with ``real@f`` (and, at
    f = 1, ``real+<name>`` / ``classic`` with ``real``); replace rows compare ``replace-<name>@r`` with ``real``
    (all real tiles).

    Returns:
        ``rows``: dicts with ``curve`` (``size`` / ``replace``), ``fraction`` (real share kept, or share
        replaced), ``synthetic`` (``None`` for the classic rows), ``reference``, ``arm``, per-arm stats
        ``reference_stats`` / ``arm_stats`` (mean/std/n per metric) and ``comparison`` (:func:`paired_comparison`
        per metric).
    """
    if not sweep:
        return {"rows": []}
    by_arm = _runs_by_arm(runs, sorted({r["arm"] for r in runs}))
    rows = []

    def row(curve: str, fraction: float, syn: str | None, ref: str, arm: str) -> None:
        if ref not in by_arm or arm not in by_arm:
            return
        pick = lambda st: {m: {k: st[m][k] for k in ("mean", "std")} | {"n": st["n"]} for m in METRICS}
        rows.append(
            {
                "curve": curve,
                "fraction": fraction,
                "synthetic": syn,
                "reference": ref,
                "arm": arm,
                "reference_stats": pick(_arm_stats(by_arm[ref], class_names)),
                "arm_stats": pick(_arm_stats(by_arm[arm], class_names)),
                "comparison": _metric_comparisons(by_arm[ref], by_arm[arm]),
            }
        )

    # real+<name> arms (with their mixing recipes, if any) by name without the "@f" of the sweep
    syn_arms = {a["name"].rsplit("@", 1)[0]: a["synthetic"] for a in sweep if a["kind"] == "real+synthetic"}
    fractions = sorted({a["real_fraction"] for a in sweep if a["kind"] != "replace"})
    classic = any(a["kind"] == "classic" for a in sweep)
    for f in [*fractions, 1.0]:
        for name, n in sorted(syn_arms.items()):
            row("size", f, n, BASELINE if f >= 1 else f"real@{f:g}", name if f >= 1 else f"{name}@{f:g}")
            if classic and name.startswith("classic+"):  # the combination against classic alone
                row("size", f, n, "classic" if f >= 1 else f"classic@{f:g}", name if f >= 1 else f"{name}@{f:g}")
        if classic:
            row("size", f, None, BASELINE if f >= 1 else f"real@{f:g}", "classic" if f >= 1 else f"classic@{f:g}")
    for a in sweep:
        if a["kind"] == "replace":
            row("replace", round(1.0 - a["real_fraction"], 6), a["synthetic"], BASELINE, a["name"])
    return {"rows": rows}


def summarize_validation(runs: list[dict[str, Any]], arms: Sequence[str]) -> dict[str, Any]:
    """Validation curves and convergence per arm (from the ``train`` bookkeeping of each run).

    Runs written without validation (``val_every`` = 0, or before validation existed) count as *not
    recorded*. A run's ``converged`` follows :func:`rsaug.segmentation.config.converged` (``None``: the curve
    is too short to tell).

    Args:
        runs: Run results.
        arms: Arm names in display order (arms without runs are left out).

    Returns:
        ``rule`` (the convergence rule in words), ``arms``: per arm ``runs``, ``recorded`` (runs with a
        validation curve), ``converged`` (runs that converged), ``all_converged`` (``None`` when nothing was
        recorded), ``best_step`` and ``best_val_miou`` (mean / std over the recorded runs); ``curves``: arm ->
        seed -> ``[[step, mIoU], ...]``.
    """
    by_arm = _runs_by_arm(runs, arms)
    out: dict[str, Any] = {
        "rule": (
            f"converged = the best validation mIoU in the last {CONVERGENCE_TAIL:.0%} of the steps is less than "
            f"{CONVERGENCE_GAIN * 100:g} points above the best validation mIoU before them"
        ),
        "arms": {},
        "curves": {},
    }
    for arm in arms:
        rs = by_arm[arm]
        if not rs:
            continue
        rec = {s: r["train"] for s, r in sorted(rs.items()) if "val_curve" in r.get("train", {})}
        best_steps = [float(t["best_step"]) for t in rec.values()]
        best_mious = [float(t["best_val_miou"]) for t in rec.values()]
        out["arms"][arm] = {
            "runs": len(rs),
            "recorded": len(rec),
            "converged": sum(t.get("converged") is True for t in rec.values()),
            "all_converged": (all(t.get("converged") is True for t in rec.values()) if rec else None),
            "best_step": dict(zip(("mean", "std"), mean_std(best_steps))),
            "best_val_miou": dict(zip(("mean", "std"), mean_std(best_mious))),
            "seeds": {
                s: {k: t.get(k) for k in ("best_step", "best_val_miou", "converged", "selected_step")}
                for s, t in rec.items()
            },
        }
        out["curves"][arm] = {s: t["val_curve"] for s, t in rec.items()}
    return out


def class_shares(counts: dict[str, Sequence[int]]) -> dict[str, list[float]]:
    """Pixel share of every class (fractions summing to 1) for each named count vector."""
    out = {}
    for name, counts_k in counts.items():
        c = np.asarray(counts_k, dtype=np.float64)
        out[name] = (c / c.sum()).tolist() if c.sum() > 0 else [0.0] * len(c)
    return out


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
    default_seeds = int(preset_defaults(str(name))["seeds"])
    if int(cfg.get("seeds", default_seeds)) < default_seeds:
        out.append(f"{cfg.get('seeds')} seeds instead of {default_seeds}")
    if int(seg.get("iterations", ref.iterations)) < ref.iterations:
        out.append(f"{seg.get('iterations')} U-Net steps instead of {ref.iterations}")
    return out


def nan_if_none(v: Any) -> float:
    """``v`` as a float, NaN for ``None`` (a class absent from the test split)."""
    return float("nan") if v is None else float(v)
