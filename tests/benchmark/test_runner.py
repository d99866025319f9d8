"""Benchmark bookkeeping on a tiny real run, resume, the size sweep, and bad inputs through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rsaug.benchmark import BenchmarkConfig, collect_runs, run_benchmark
from rsaug.benchmark.arms import real_subset
from rsaug.benchmark.runner import generate_synthetic
from rsaug.cli.benchmark import command
from rsaug.core.errors import InputError
from rsaug.core.progress import Reporter
from rsaug.io.tileset import TileSet
from rsaug.segmentation import SegmenterConfig

TINY = SegmenterConfig(iterations=3, batch_size=4, crop=64, eval_batch_size=8, threads=1)


@pytest.fixture(scope="module")
def synthetic_set(gid15_tileset: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real synthetic tile set: the tiny CSEBGAN checkpoint applied to the training masks (rsaug.synthesis)."""
    out = tmp_path_factory.mktemp("bench_syn") / "syn"
    return generate_synthetic(TileSet.open(gid15_tileset), str(tiny_checkpoint), out, device="cpu", seed=0)


@pytest.fixture(scope="module")
def tiny_run(gid15_tileset: Path, synthetic_set: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny benchmark (4 arms x 2 seeds), first interrupted after 3 runs, then resumed."""
    out = tmp_path_factory.mktemp("bench") / "out"
    cfg = BenchmarkConfig(
        real=str(gid15_tileset),
        synthetic={"csebgan": str(synthetic_set)},
        arms=["real", "real+synthetic", "classic", "synthetic-only"],
        seeds=2,
        segmenter=TINY,
    )
    log1: list[str] = []
    run_benchmark(cfg, out, device="cpu", reporter=Reporter(message=log1.append), max_runs=3)
    first = {p: p.read_bytes() for p in (out / "runs").rglob("*.json")}
    log2: list[str] = []
    cfg2 = BenchmarkConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    report = run_benchmark(cfg2, out, device="cpu", reporter=Reporter(message=log2.append))
    return {"out": out, "cfg": cfg, "first": first, "log1": log1, "log2": log2, "report": report}


def _trained(log: list[str]) -> list[str]:
    return [ln.split(":")[0] for ln in log if "mIoU" in ln]


def test_every_arm_gets_the_same_iterations(tiny_run: dict, gid15_tileset: Path) -> None:
    runs = collect_runs(tiny_run["out"])
    arms = {r["arm"] for r in runs}
    assert arms == {"real", "real+csebgan", "classic", "csebgan-only"}
    assert len(runs) == 8
    real = TileSet.open(gid15_tileset)
    n_test = int((real.index["split"] == "test").sum())
    syn_n = len(TileSet.open(tiny_run["cfg"].synthetic["csebgan"]).index)
    for r in runs:
        t = r["train"]
        assert t["steps"] == TINY.iterations and t["samples"] == TINY.iterations * TINY.batch_size
        assert sum(t["draws"].values()) == TINY.iterations * TINY.batch_size
        assert r["test_tiles"] == n_test
        cm = np.asarray(r["confusion_matrix"])
        # every labelled pixel of the real test split is evaluated, unknown pixels are not
        assert cm.sum() == sum(int(real.split("test")[f"px_{c}"].sum()) for c in real.scheme.names)
        assert np.asarray(r["scores"]["class_pixels"]).tolist() == cm.sum(1).tolist()
        if r["arm"] == "csebgan-only":
            assert set(t["draws"]) == {"csebgan"}
        elif r["arm"] == "real+csebgan":
            assert set(t["draws"]) == {"real", "csebgan"} and t["draws"]["csebgan"] > 0
            assert syn_n > 0
        else:
            assert set(t["draws"]) == {"real"}
    rep = tiny_run["report"]
    assert rep["summary"]["arms"]["real"]["n"] == 2
    assert (tiny_run["out"] / "report.html").is_file()
    assert rep["class_counts"]["real+csebgan"] != rep["class_counts"]["real"]


def test_resume_skips_finished_runs(tiny_run: dict) -> None:
    assert len(_trained(tiny_run["log1"])) == 3
    # seed-major order: both seeds' pairs complete early
    assert _trained(tiny_run["log1"]) == ["real seed 0", "real+csebgan seed 0", "classic seed 0"]
    assert len(_trained(tiny_run["log2"])) == 5
    assert not set(_trained(tiny_run["log1"])) & set(_trained(tiny_run["log2"]))
    for p, data in tiny_run["first"].items():
        assert p.read_bytes() == data  # finished runs untouched
    log3: list[str] = []
    run_benchmark(tiny_run["cfg"], tiny_run["out"], device="cpu", reporter=Reporter(message=log3.append))
    assert _trained(log3) == []


def test_different_protocol_in_same_output_is_refused(tiny_run: dict) -> None:
    cfg = BenchmarkConfig.from_dict(tiny_run["cfg"].to_dict())
    cfg.segmenter.iterations = 4
    with pytest.raises(InputError, match="different benchmark protocol"):
        run_benchmark(cfg, tiny_run["out"], device="cpu")


def test_size_sweep_and_replace_curve(gid15_tileset: Path, synthetic_set: Path, tmp_path: Path) -> None:
    """Table III sweep and replace curve: nested subsets, synthetic tiles only from the right masks, sizes kept."""
    out = tmp_path / "sweep"
    cfg = BenchmarkConfig(
        real=str(gid15_tileset),
        synthetic={"csebgan": str(synthetic_set)},
        arms=["real", "real+synthetic"],
        seeds=2,
        segmenter=TINY,
        real_fractions=[0.5],
        replace_fractions=[0.5],
    )
    report = run_benchmark(cfg, out, device="cpu")
    runs = {(r["arm"], r["seed"]): r for r in collect_runs(out)}
    assert {a for a, _ in runs} == {"real", "real+csebgan", "real@0.5", "real+csebgan@0.5", "replace-csebgan@0.5"}
    assert len(runs) == 10
    real = TileSet.open(gid15_tileset)
    syn = TileSet.open(synthetic_set)
    n = int((real.index["split"] == "train").sum())
    half = round(0.5 * n)
    per_mask = syn.index.groupby("source_tile").size()
    train_ids = list(real.split("train")["tile_id"])
    kept = {train_ids[i] for i in real_subset(n, 0.5, 0)}
    for seed in (0, 1):
        assert runs[("real", seed)]["train_tiles"] == {"real": n, "synthetic": 0}
        assert runs[("real@0.5", seed)]["train_tiles"] == {"real": half, "synthetic": 0}
        assert runs[("real+csebgan@0.5", seed)]["train_tiles"] == {
            "real": half,
            "synthetic": int(per_mask[per_mask.index.isin(kept)].sum()),
        }
        # replace: the removed half's masks come back as synthetic tiles (one per mask here), size unchanged
        assert runs[("replace-csebgan@0.5", seed)]["train_tiles"] == {
            "real": half,
            "synthetic": int(per_mask[~per_mask.index.isin(kept)].sum()),
        }
        assert sum(runs[("replace-csebgan@0.5", seed)]["train_tiles"].values()) == n
        for arm in ("real@0.5", "real+csebgan@0.5", "replace-csebgan@0.5"):
            r = runs[(arm, seed)]
            assert r["train"]["steps"] == TINY.iterations  # same iterations as every other arm
    assert set(real_subset(n, 0.25, 0)) <= set(real_subset(n, 0.5, 0))  # nested subsets
    assert len(real_subset(n, 0.5, 0)) == half
    rows = report["sweep"]["rows"]
    assert [(r["curve"], r["fraction"], r["arm"], r["reference"]) for r in rows] == [
        ("size", 0.5, "real+csebgan@0.5", "real@0.5"),
        ("size", 1.0, "real+csebgan", "real"),
        ("replace", 0.5, "replace-csebgan@0.5", "real"),
    ]
    for r in rows:  # paired differences recomputed by hand
        a = [runs[(r["arm"], s)]["scores"]["miou"] for s in (0, 1)]
        b = [runs[(r["reference"], s)]["scores"]["miou"] for s in (0, 1)]
        assert r["comparison"]["miou"]["diffs"] == pytest.approx([x - y for x, y in zip(a, b)])
    assert report["summary"]["arms"].keys() == {"real", "real+csebgan"}  # the main table is unchanged
    for f in ("sweep.csv", "size_sweep.png", "replace_curve.png"):
        assert (out / f).is_file(), f
    page = (out / "report.html").read_text()
    assert "Training-set-size sweep" in page and "Replacing real tiles" in page


# ----------------------------------------------------------------------------------------------- CLI bad inputs
def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(command, list(args))
    return res.exit_code, res.output  # click >= 8.2: stdout and stderr as the user sees them


def test_cli_bad_inputs(tmp_path: Path, gid15_tileset: Path, chesapeake_tileset: Path) -> None:
    out = tmp_path / "out"
    cases = [
        ([str(tmp_path / "nope"), "-o", str(out)], "tile set directory not found"),
        (
            [str(gid15_tileset), "-o", str(out), "-s", f"x={tmp_path / 'missing'}"],
            "synthetic tile set directory not found",
        ),
        ([str(gid15_tileset), "-o", str(out), "-s", f"ches={chesapeake_tileset}"], "class scheme"),
        ([str(gid15_tileset), "-o", str(out), "-c", str(tmp_path / "none.ckpt")], "checkpoint not found"),
        ([str(gid15_tileset), "-o", str(out), "--arms", "real,bogus"], "unknown arm"),
        ([str(gid15_tileset), "-o", str(out), "--crop", "50"], "multiple of 32"),
        ([str(gid15_tileset), "-o", str(out), "--test-split", "holdout"], "no 'holdout' tiles"),
        ([str(gid15_tileset), "-o", str(out), "--seeds", "0"], "seeds must be"),
        ([str(gid15_tileset), "-o", str(out), "--real-fractions", "0.5,1.5"], "strictly between 0 and 1"),
        ([str(gid15_tileset), "-o", str(out), "--real-fractions", "half"], "comma-separated numbers"),
        ([str(gid15_tileset), "-o", str(out), "--replace-fractions", "0.5"], "needs a synthetic set"),
        (
            [str(gid15_tileset), "-o", str(out), "--device", "cuda:7"]
            if not torch.cuda.is_available()
            else [str(gid15_tileset), "-o", str(out), "--device", "nonsense"],
            "device",
        ),
    ]
    for args, msg in cases:
        code, text = _cli(*args)
        assert code == 2, (args, text)
        assert "Error:" in text and msg in text, (args, text)
        assert "Traceback" not in text
        assert not out.exists(), args  # nothing written


def test_cli_band_mismatch(tmp_path: Path, gid15_tileset: Path) -> None:
    """A synthetic set with the right scheme but a different band count is refused."""
    import shutil

    syn = tmp_path / "syn"
    shutil.copytree(gid15_tileset, syn)
    desc = json.loads((syn / "tileset.json").read_text())
    desc["bands"] = 4
    (syn / "tileset.json").write_text(json.dumps(desc))
    code, text = _cli(str(gid15_tileset), "-o", str(tmp_path / "out"), "-s", f"s={syn}")
    assert code == 2 and "4 bands" in text, text


def test_recipe_arms_train_with_their_recipe(gid15_tileset: Path, synthetic_set: Path, tmp_path: Path) -> None:
    """Recipe arms draw and weight as their names say; the report compares them with real like any arm."""
    cfg = BenchmarkConfig(
        real=str(gid15_tileset),
        synthetic={"csebgan": str(synthetic_set)},
        arms=["real", "real+csebgan", "real+csebgan~pretrain0.5~w0.5", "real+csebgan~anneal"],
        seeds=1,
        segmenter=SegmenterConfig(iterations=4, batch_size=4, crop=64, eval_batch_size=8, threads=1),
        synthetic_fraction=0.5,
        real_fractions=[0.5],
    )
    report = run_benchmark(cfg, tmp_path / "out", device="cpu")
    runs = {r["arm"]: r for r in collect_runs(tmp_path / "out")}
    pre = runs["real+csebgan~pretrain0.5~w0.5"]["train"]
    assert pre["recipe"] == {"schedule": "pretrain", "finetune": 0.5, "weight": 0.5}
    assert pre["draws"]["real"] >= 8  # the last half of the 16 draws are real
    assert "recipe" not in runs["real+csebgan"]["train"]
    assert runs["real+csebgan~anneal"]["train"]["recipe"]["schedule"] == "anneal"
    assert "real+csebgan~anneal@0.5" in runs and runs["real+csebgan~anneal@0.5"]["train"]["recipe"]
    compared = {c["arm"] for c in report["summary"]["comparisons"] if c["reference"] == "real"}
    assert {"real+csebgan~pretrain0.5~w0.5", "real+csebgan~anneal"} <= compared
    sweep_arms_compared = {r["arm"] for r in report["sweep"]["rows"]}
    assert {"real+csebgan~anneal@0.5", "real+csebgan@0.5"} <= sweep_arms_compared
