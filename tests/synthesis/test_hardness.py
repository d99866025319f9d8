"""Hardness-aware sampling (``rsaug synthesize --hard-classes-from``) on the real GID-15 tile fixture."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.core.errors import InputError
from rsaug.io.tileset import TileSet
from rsaug.synthesis import class_iou_from, load_plan, mask_hardness, plan_synthesis
from rsaug.synthesis.planner import pixel_matrix
from tests.conftest import ROOT

#: A real benchmark report (GID-15, cpu-small protocol): its ``real`` arm's per-class IoU.
REPORT = ROOT / "docs" / "results" / "gid15-cpu-small" / "report.json"


def _synth(*args: str):
    return CliRunner().invoke(cli, ["synthesize", *map(str, args)])


def test_hard_plan_favours_low_iou_classes(gid15_tileset: Path) -> None:
    ts = TileSet.open(gid15_tileset)
    iou = class_iou_from(REPORT, ts)
    assert iou.kind == "benchmark-report" and len(iou.iou) == 15
    expected = json.loads(REPORT.read_text())["summary"]["arms"]["real"]["iou_mean"]
    np.testing.assert_allclose([np.nan if v is None else v for v in iou.iou], expected, equal_nan=True)
    hard = plan_synthesis(ts, mode="hard", class_iou=iou.iou, hardness_source=str(REPORT), seed=3)
    plain = plan_synthesis(ts, samples_per_mask=1, seed=3)
    assert hard.to_dict() == plan_synthesis(ts, mode="hard", class_iou=iou.iou, hardness_source=str(REPORT),
                                            seed=3).to_dict()  # fmt: skip
    counts = [n for _, n in hard.tiles]
    assert min(counts) >= 1 and max(counts) == 4 and len(hard.tiles) == len(plain.tiles)
    added_h = np.array(hard.counts_after) - np.array(hard.counts_before)
    added_p = np.array(plain.counts_after) - np.array(plain.counts_before)
    present = added_p > 0
    growth = added_h[present] / added_p[present]  # synthetic pixels relative to plain mode, per class
    h = np.array(hard.hardness())[present]
    assert np.all(growth >= 1.0)
    # the hardest classes grow more than the easiest ones (rank correlation of hardness and growth)
    assert np.corrcoef(np.argsort(np.argsort(h)), np.argsort(np.argsort(growth)))[0, 1] > 0.5
    assert growth[np.argmax(h)] > growth[np.argmin(h)]
    # per mask: samples grow with the mask's hardness score
    rows = ts.split("train")
    score = dict(zip(rows["tile_id"].astype(str), mask_hardness(pixel_matrix(rows, ts.scheme), iou.iou)))
    by_n: dict[int, list[float]] = {}
    for t, n in hard.tiles:
        by_n.setdefault(n, []).append(score[t])
    means = [np.mean(by_n[n]) for n in sorted(by_n)]
    assert means == sorted(means)
    d = hard.to_dict()
    assert d["config"]["mode"] == "hard" and all("hardness" in c and "iou" in c for c in d["classes"])


def test_hard_plan_from_a_segmenter_via_cli(gid15_tileset: Path, real_segmenter: Path, tmp_path: Path) -> None:
    plan_json = tmp_path / "plan.json"
    res = _synth(gid15_tileset, "--hard-classes-from", real_segmenter, "--dry-run", "--plan-json", plan_json,
                 "--device", "cpu", "--max-samples-per-mask", "3")  # fmt: skip
    assert res.exit_code == 0, res.output
    plan = load_plan(plan_json)
    assert plan.config.mode == "hard" and plan.config.hardness_source.startswith("segmenter ")
    assert len(plan.config.class_iou) == 15 and max(n for _, n in plan.tiles) == 3
    assert all(v is None or 0.0 <= v <= 1.0 for v in plan.config.class_iou)
    saved = json.loads(plan_json.read_text())
    assert [c["iou"] for c in saved["classes"]] == plan.config.class_iou


def test_bad_hardness_sources(gid15_tileset: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"\x00\x01not a segmenter")
    nojson = tmp_path / "r.json"
    nojson.write_text('{"title": "x"}')
    other = tmp_path / "other.json"
    data = json.loads(REPORT.read_text())
    other.write_text(json.dumps({**data, "class_names": data["class_names"][::-1]}))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    for src in (garbage, nojson, other, broken, tmp_path / "missing.pt"):
        res = _synth(gid15_tileset, "--hard-classes-from", src, "--dry-run", "--device", "cpu")
        assert res.exit_code == 2, (src, res.output)
        assert len(res.output.strip().splitlines()) == 1 and str(src) in res.output, res.output
    res = _synth(gid15_tileset, "--hard-classes-from", REPORT, "--double-rare-classes", "--dry-run")
    assert res.exit_code == 2 and "only one of" in res.output
    res = _synth(gid15_tileset, "--hard-classes-from", REPORT, "--samples-per-mask", "2", "--dry-run")
    assert res.exit_code == 2 and "--hard-classes-from" in res.output and "--samples-per-mask" in res.output
    with pytest.raises(InputError):
        plan_synthesis(TileSet.open(gid15_tileset), mode="hard", class_iou=[0.5] * 3)
