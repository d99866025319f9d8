"""Report statistics on known numbers, report files, and the HTML page in headless Chromium."""
from __future__ import annotations

import base64
import io
import math
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rsaug.segmentation import confusion_matrix, scores
from rsaug.core.classes import BUILTIN_SCHEMES, IGNORE
from rsaug.benchmark.report import build_report, mean_std, paired_comparison, summarize
from rsaug.io.tileset import read_raster
from tests.conftest import GID15

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


# ----------------------------------------------------------------------------------------------- statistics
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


def test_per_class_iou_matches_hand_computation() -> None:
    # reference (rows) vs prediction (columns) built pixel by pixel, with unknown pixels that must be ignored
    pairs = [(0, 0)] * 5 + [(0, 1)] + [(1, 0)] * 2 + [(1, 1)] * 3 + [(1, 2)] + [(2, 2)] * 4
    target = np.array([t for t, _ in pairs] + [IGNORE] * 7, dtype=np.uint8)
    pred = np.array([p for _, p in pairs] + [2] * 7, dtype=np.int64)
    cm = confusion_matrix(pred, target, 3)
    assert cm.tolist() == [[5, 1, 0], [2, 3, 1], [0, 0, 4]]
    s = scores(cm)
    iou = [5 / (6 + 7 - 5), 3 / (6 + 4 - 3), 4 / (4 + 5 - 4)]
    assert s["iou"] == pytest.approx(iou)
    assert s["miou"] == pytest.approx(sum(iou) / 3)
    assert s["fwiou"] == pytest.approx(6 / 16 * iou[0] + 6 / 16 * iou[1] + 4 / 16 * iou[2])
    assert s["acc"] == pytest.approx(12 / 16)


# ----------------------------------------------------------------------------------------------- report files
def _real_runs() -> tuple[list[dict], list[str], np.ndarray]:
    """Runs whose confusion matrices compare real GID-15 masks with shifted copies of themselves
    (shift = a stand-in for an imperfect segmenter; different shifts per seed and arm)."""
    names = BUILTIN_SCHEMES["gid15"].names
    stems = sorted(p.stem for p in (GID15 / "labels_index").glob("*.tif"))[:6]
    scheme = BUILTIN_SCHEMES["gid15"]
    masks = [scheme.encode(read_raster(GID15 / "labels_index" / f"{s}.tif")[0]) for s in stems]
    runs = []
    for arm, base in (("real", 6), ("real+csebgan", 3), ("classic", 5)):
        for seed in range(3):
            cm = np.zeros((15, 15), np.int64)
            for m in masks:
                pred = np.roll(m, base + seed, axis=1)
                pred = np.where(pred == IGNORE, 0, pred)
                cm += confusion_matrix(pred, m, 15)
            sc = scores(cm, names)
            runs.append({"arm": arm, "seed": seed, "scores": {k: sc[k] for k in ("miou", "fwiou", "acc", "iou")},
                         "confusion_matrix": cm.tolist(), "train": {"steps": 10, "samples": 40, "seconds": 1.0,
                                                                    "draws": {"real": 40}}})
    gallery = [{"tile_id": stems[0], "source": "csebgan", "mask": masks[0],
                "real": read_raster(GID15 / "images" / f"{stems[0]}.tif"),
                "synthetic": [read_raster(GID15 / "images" / f"{stems[1]}.tif")]}]
    return runs, names, gallery


def test_summary_orders_and_pairs(tmp_path: Path) -> None:
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


def _console_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def _chromium_screenshot(html: Path, tmp: Path) -> tuple[Path, str]:
    shot = tmp / "shot.png"
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'profile'}", f"--screenshot={shot}", "--window-size=1200,2400",
         "--enable-logging=stderr", "--v=0", html.resolve().as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    return shot, proc.stderr


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install -y chromium)")
def test_report_files_and_html_in_headless_chromium(tmp_path: Path) -> None:
    runs, names, gallery = _real_runs()
    counts = {"real": list(range(1, 16)), "real+csebgan": [2 * x for x in range(1, 16)]}
    rep = build_report(tmp_path / "out", runs=runs, arms=["real", "real+csebgan", "classic"], class_names=names,
                       class_counts=counts, palette=BUILTIN_SCHEMES["gid15"].palette(), gallery=gallery,
                       config={"preset": "test"})
    out = tmp_path / "out"
    for f in ("report.json", "report.html", "runs.csv", "arms.csv", "comparisons.csv", "per_class_iou.csv",
              "class_shares.csv", "metrics_by_arm.png", "per_class_iou.png", "class_shares.png",
              "paired_differences.png"):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert rep["class_shares"]["real"] == pytest.approx(np.arange(1, 16) / 120)
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + len(runs)
    page = (out / "report.html").read_text()
    # self-contained: no external resources or scripts, every image is an embedded PNG that decodes
    assert "<script" not in page and "http://" not in page and "https://" not in page
    uris = re.findall(r"src='(data:image/png;base64,[^']+)'", page)
    assert len(uris) == 4 + 3  # four plots + mask, real, synthetic of one gallery row
    import matplotlib.image as mpimg

    for u in uris:
        img = mpimg.imread(io.BytesIO(base64.b64decode(u.split(",", 1)[1])), format="png")
        assert img.ndim == 3 and img.shape[0] > 10

    shot, stderr = _chromium_screenshot(out / "report.html", tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000, stderr[-2000:]
    assert _console_errors(stderr) == []

    # the check can fail: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>notAFunction();</script></body></html>")
    _, stderr_bad = _chromium_screenshot(bad, tmp_path / "bad")
    assert any("notAFunction" in ln for ln in _console_errors(stderr_bad))


def test_reduced_protocol_is_reported() -> None:
    """A run with fewer seeds or steps than its preset says so (the demo's report relies on it)."""
    from rsaug.benchmark.report import protocol_reductions

    assert protocol_reductions({"preset": "cpu-small", "seeds": 2, "segmenter": {"iterations": 150}}) == [
        "2 seeds instead of 3", "150 U-Net steps instead of 500"]
    assert protocol_reductions({"preset": "cpu-small", "seeds": 3, "segmenter": {"iterations": 500}}) == []
    assert protocol_reductions({"preset": None, "seeds": 1}) == []
