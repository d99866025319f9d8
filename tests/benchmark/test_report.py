"""Report files (JSON, CSV, PNG) and the HTML page in headless Chromium."""

from __future__ import annotations

import base64
import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from rsaug.benchmark.report import build_report, load_report
from rsaug.core.classes import BUILTIN_SCHEMES, IGNORE
from rsaug.io.tileset import read_raster
from rsaug.segmentation import confusion_matrix, scores
from tests.conftest import GID15

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


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
            runs.append(
                {
                    "arm": arm,
                    "seed": seed,
                    "scores": {k: sc[k] for k in ("miou", "fwiou", "acc", "iou")},
                    "confusion_matrix": cm.tolist(),
                    "train": {"steps": 10, "samples": 40, "seconds": 1.0, "draws": {"real": 40}},
                }
            )
    gallery = [
        {
            "tile_id": stems[0],
            "source": "csebgan",
            "mask": masks[0],
            "real": read_raster(GID15 / "images" / f"{stems[0]}.tif"),
            "synthetic": [read_raster(GID15 / "images" / f"{stems[1]}.tif")],
        }
    ]
    return runs, names, gallery


def _console_errors(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln]


def _chromium_screenshot(html: Path, tmp: Path) -> tuple[Path, str]:
    shot = tmp / "shot.png"
    proc = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,2400",
            "--enable-logging=stderr",
            "--v=0",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return shot, proc.stderr


def _build(tmp_path: Path) -> tuple[dict, Path]:
    runs, names, gallery = _real_runs()
    counts = {"real": list(range(1, 16)), "real+csebgan": [2 * x for x in range(1, 16)]}
    rep = build_report(
        tmp_path / "out",
        runs=runs,
        arms=["real", "real+csebgan", "classic"],
        class_names=names,
        class_counts=counts,
        palette=BUILTIN_SCHEMES["gid15"].palette(),
        gallery=gallery,
        config={"preset": "test"},
    )
    return rep, tmp_path / "out"


def test_report_files_are_written_and_self_contained(tmp_path: Path) -> None:
    rep, out = _build(tmp_path)
    runs, _, _ = _real_runs()
    for f in (
        "report.json",
        "report.html",
        "runs.csv",
        "arms.csv",
        "comparisons.csv",
        "per_class_iou.csv",
        "class_shares.csv",
        "metrics_by_arm.png",
        "per_class_iou.png",
        "class_shares.png",
        "paired_differences.png",
    ):
        assert (out / f).is_file() and (out / f).stat().st_size > 0, f
    assert rep["class_shares"]["real"] == pytest.approx(np.arange(1, 16) / 120)
    assert len((out / "runs.csv").read_text().splitlines()) == 1 + len(runs)
    assert load_report(out)["summary"]["arms"]["real"]["n"] == 3
    page = (out / "report.html").read_text()
    # self-contained: no external resources or scripts, every image is an embedded PNG that decodes
    assert "<script" not in page and "http://" not in page and "https://" not in page
    uris = re.findall(r"src='(data:image/png;base64,[^']+)'", page)
    assert len(uris) == 4 + 3  # four plots + mask, real, synthetic of one gallery row
    import matplotlib.image as mpimg

    for u in uris:
        img = mpimg.imread(io.BytesIO(base64.b64decode(u.split(",", 1)[1])), format="png")
        assert img.ndim == 3 and img.shape[0] > 10


@pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (apt-get install -y chromium)")
def test_report_html_in_headless_chromium(tmp_path: Path) -> None:
    _, out = _build(tmp_path)
    shot, stderr = _chromium_screenshot(out / "report.html", tmp_path)
    assert shot.is_file() and shot.stat().st_size > 10_000, stderr[-2000:]
    assert _console_errors(stderr) == []

    # the check can fail: a page with a script error is caught
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>notAFunction();</script></body></html>")
    _, stderr_bad = _chromium_screenshot(bad, tmp_path / "bad")
    assert any("notAFunction" in ln for ln in _console_errors(stderr_bad))
