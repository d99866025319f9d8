"""Benchmark statistics on known numbers and on real GID-15 masks (:mod:`rsaug.benchmark.statistics`)."""

from __future__ import annotations

import math

import pytest

from rsaug.benchmark.statistics import mean_std, paired_comparison, protocol_reductions, summarize
from tests.benchmark.test_report import _real_runs


def test_paired_comparison_known_numbers() -> None:
    a = {0: 0.40, 1: 0.42, 2: 0.41}
    b = {0: 0.43, 1: 0.44, 2: 0.45}  # differences 0.03, 0.02, 0.04
    c = paired_comparison(a, b)
    assert c["n"] == 3 and c["seeds"] == [0, 1, 2]
    assert c["mean_diff"] == pytest.approx(0.03)
    assert c["std_diff"] == pytest.approx(0.01)
    assert c["se_diff"] == pytest.approx(0.01 / math.sqrt(3))
    t = 0.03 / (0.01 / math.sqrt(3))
    assert c["t"] == pytest.approx(t)
    # Student t with 2 degrees of freedom: two-sided p = 1 - t / sqrt(2 + t^2)
    assert c["p_ttest"] == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-6)
    assert (c["n_pos"], c["n_neg"], c["n_zero"]) == (3, 0, 0)
    assert c["p_sign"] == pytest.approx(0.25)
    assert c["relative_pct"] == pytest.approx((0.44 - 0.41) / 0.41 * 100)
    assert c["points"] == pytest.approx(3.0)
    assert c["resolved"] is True


def test_paired_comparison_noise_larger_than_effect_is_not_resolved() -> None:
    a = {0: 0.347, 1: 0.412, 2: 0.380}
    b = {0: 0.380, 1: 0.400, 2: 0.385}  # differences +0.033, -0.012, +0.005
    c = paired_comparison(a, b)
    assert c["n_pos"] == 2 and c["n_neg"] == 1
    assert c["resolved"] is False
    assert c["p_ttest"] > 0.05
    # only seeds present in both arms are paired
    c2 = paired_comparison({0: 0.1, 1: 0.2}, {1: 0.3, 2: 0.9})
    assert c2["n"] == 1 and c2["seeds"] == [1] and c2["resolved"] is False
    assert mean_std([0.1, 0.3]) == pytest.approx((0.2, math.sqrt(0.02)))


def test_summary_orders_and_pairs() -> None:
    runs, names, _ = _real_runs()
    s = summarize(runs, ["real", "real+csebgan", "classic"], names)
    assert s["arms"]["real"]["n"] == 3
    pairs = [(c["reference"], c["arm"]) for c in s["comparisons"]]
    assert ("real", "real+csebgan") in pairs and ("real", "classic") in pairs and ("classic", "real+csebgan") in pairs
    comp = next(c for c in s["comparisons"] if c["arm"] == "real+csebgan" and c["reference"] == "real")
    by = {(r["arm"], r["seed"]): r["scores"]["miou"] for r in runs}
    diffs = [by[("real+csebgan", k)] - by[("real", k)] for k in range(3)]
    assert comp["miou"]["diffs"] == pytest.approx(diffs)
    # smaller shifts = better masks: every seed improves
    assert comp["miou"]["n_pos"] == 3
    assert s["noise"]["comparisons"][0]["text"].startswith("real+csebgan vs real")


def test_reduced_protocol_is_reported() -> None:
    """A run with fewer seeds or steps than its preset says so (the demo's report relies on it)."""
    assert protocol_reductions({"preset": "cpu-small", "seeds": 2, "segmenter": {"iterations": 150}}) == [
        "2 seeds instead of 3",
        "150 U-Net steps instead of 500",
    ]
    assert protocol_reductions({"preset": "cpu-small", "seeds": 3, "segmenter": {"iterations": 500}}) == []
    assert protocol_reductions({"preset": None, "seeds": 1}) == []


def test_combination_arm_is_compared_with_classic_alone() -> None:
    """``classic+<syn>`` is paired with ``real`` and with ``classic`` (the issue: report the combination)."""
    runs, names, _ = _real_runs()
    combo = [dict(r, arm="classic+csebgan") for r in runs if r["arm"] == "real+csebgan"]
    s = summarize([*runs, *combo], ["real", "real+csebgan", "classic", "classic+csebgan"], names)
    pairs = [(c["reference"], c["arm"]) for c in s["comparisons"]]
    assert ("real", "classic+csebgan") in pairs and ("classic", "classic+csebgan") in pairs
    assert len(pairs) == len(set(pairs)) and not any(a == b for a, b in pairs)
    comp = next(c for c in s["comparisons"] if c["reference"] == "classic" and c["arm"] == "classic+csebgan")
    by = {(r["arm"], r["seed"]): r["scores"]["miou"] for r in [*runs, *combo]}
    assert comp["miou"]["diffs"] == pytest.approx([by[("classic+csebgan", k)] - by[("classic", k)] for k in range(3)])
