"""The convergent protocol: validation curves and convergence in run files and the report, ``--test-tiles`` with
its leakage check, the preset's benchmark defaults, and bad inputs through the CLI."""

from __future__ import annotations

import json
import shutil
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from rsaug.benchmark import BenchmarkConfig, check_test_tiles, collect_runs, run_benchmark, sweep_arms
from rsaug.benchmark.arms import Arm
from rsaug.benchmark.report import build_report
from rsaug.cli.benchmark import command
from rsaug.core.errors import InputError
from rsaug.io.tileset import TileSet
from rsaug.segmentation import SegmenterConfig
from rsaug.tiling import TileOptions, tile_scenes
from tests.conftest import GID15
from tests.fixtures_tiles import gid15_fixture_stems, gid15_pairs

TINY_VAL = SegmenterConfig(
    iterations=4,
    batch_size=4,
    crop=64,
    eval_batch_size=8,
    threads=1,
    decoder_channels=[32, 16, 16, 16, 16],
    val_every=2,
    select="best-val",
)


def _tile(stems: list[str], out: Path, size: int = 112) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tile_scenes(gid15_pairs(stems), out, TileOptions(tile_size=size, scheme="gid15", split="4:1:1", seed=0))
    return out


@pytest.fixture(scope="module")
def other_scenes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GID-15 tile set cut from scenes that are not in the ``gid15_tileset`` fixture (another "region")."""
    used = set(gid15_fixture_stems())
    stems = sorted(p.stem for p in (GID15 / "images").glob("*.tif") if p.stem not in used)[:3]
    return _tile(stems, tmp_path_factory.mktemp("other") / "tiles")


@pytest.fixture(scope="module")
def same_scenes(gid15_tileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tile set cut (at 112 px) from scenes whose 224-px tiles are in the training split of ``gid15_tileset``."""
    real = TileSet.open(gid15_tileset)
    train = real.split("train")
    stems = sorted(Path(str(p)).stem for p in train["source_image"])[:2]
    return _tile(stems, tmp_path_factory.mktemp("same") / "tiles")


@pytest.fixture(scope="module")
def val_run(gid15_tileset: Path, other_scenes: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Tiny benchmark (real, classic x 2 seeds) with validation every 2 of 4 steps, tested on another tile set."""
    out = tmp_path_factory.mktemp("bench_val") / "out"
    cfg = BenchmarkConfig(
        real=str(gid15_tileset), arms=["real", "classic"], seeds=2, segmenter=TINY_VAL, test_tiles=str(other_scenes)
    )
    report = run_benchmark(cfg, out, device="cpu")
    return {"out": out, "cfg": cfg, "report": report}


def test_run_files_record_val_curves(val_run: dict, gid15_tileset: Path, other_scenes: Path) -> None:
    runs = collect_runs(val_run["out"])
    assert {(r["arm"], r["seed"]) for r in runs} == {(a, s) for a in ("real", "classic") for s in (0, 1)}
    n_val = int((TileSet.open(gid15_tileset).index["split"] == "val").sum())
    n_test = len(TileSet.open(other_scenes).index)
    for r in runs:
        t = r["train"]
        assert [p[0] for p in t["val_curve"]] == [2, 4]
        assert t["best_val_miou"] == max(p[1] for p in t["val_curve"])
        assert t["selected_step"] == t["best_step"] and t["select"] == "best-val"
        assert "converged" in t and r["val_tiles"] == n_val == t["val_tiles"]
        assert r["test_tiles"] == n_test and r["test_set"] == str(other_scenes)  # every tile of --test-tiles


def test_report_has_val_curves_and_convergence_table(val_run: dict) -> None:
    out, rep = val_run["out"], val_run["report"]
    val = rep["validation"]
    assert set(val["arms"]) == {"real", "classic"}
    for arm, st in val["arms"].items():
        runs = [r for r in rep["runs"] if r["arm"] == arm]
        assert st["runs"] == st["recorded"] == 2
        assert st["converged"] == sum(r["train"]["converged"] is True for r in runs)
        assert st["all_converged"] == all(r["train"]["converged"] is True for r in runs)
        assert set(val["curves"][arm]) == {0, 1}
    saved = json.loads((out / "report.json").read_text())
    assert saved["validation"]["arms"]["real"]["recorded"] == 2
    assert (out / "val_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len((out / "validation.csv").read_text().splitlines()) == 1 + 4
    page = (out / "report.html").read_text()
    assert "Validation curves and convergence" in page and "converged?" in page
    assert "alt='Validation curves'" in page
    assert "Validation mIoU on the real val split every 2 steps; weights evaluated: best-val" in page
    assert "Test tiles: <code>" in page
    assert saved["config"]["test_set"] is not None and saved["config"]["val_tiles"] > 0


def test_old_run_files_stay_readable(tmp_path: Path) -> None:
    """Run files without validation keys (written before it existed): 'not recorded', no curve plot."""
    runs = [
        {
            "arm": "real",
            "seed": s,
            "scores": {"miou": 0.3 + s / 100, "fwiou": 0.4, "acc": 0.5, "iou": [0.3, 0.3]},
            "confusion_matrix": [[5, 1], [1, 5]],
            "train": {"steps": 10, "samples": 40, "seconds": 1.0, "draws": {"real": 40}},
        }
        for s in range(2)
    ]
    rep = build_report(tmp_path, runs=runs, arms=["real"], class_names=["a", "b"], class_counts={"real": [1, 1]})
    assert rep["validation"]["arms"]["real"]["recorded"] == 0
    assert rep["validation"]["arms"]["real"]["all_converged"] is None
    assert not (tmp_path / "val_curves.png").exists() and not (tmp_path / "validation.csv").exists()
    assert "not recorded" in (tmp_path / "report.html").read_text()


def test_leakage_check(gid15_tileset: Path, same_scenes: Path, other_scenes: Path) -> None:
    real = TileSet.open(gid15_tileset)
    check_test_tiles(real, TileSet.open(other_scenes), {})  # other scenes: accepted
    with pytest.raises(InputError, match=r"test tile\(s\) come from scenes that also feed training") as exc:
        check_test_tiles(real, TileSet.open(same_scenes), {})
    leaking = list(TileSet.open(same_scenes).index["tile_id"])
    assert str(exc.value.path) == str(same_scenes)
    assert str(len(leaking)) in exc.value.problem and leaking[0] in exc.value.problem  # names them
    # the real tile set itself (its test split's scenes are not training scenes, but its train split's are)
    with pytest.raises(InputError, match="feed training"):
        check_test_tiles(real, real, {})


def test_sweep_has_classic_arms() -> None:
    arms = [Arm("real", "real"), Arm("real+s", "real+synthetic", "s"), Arm("classic", "classic")]
    assert [a.name for a in sweep_arms(arms, [0.25], [])] == ["real@0.25", "real+s@0.25", "classic@0.25"]
    assert [a.name for a in sweep_arms(arms[:2], [0.25], [])] == ["real@0.25", "real+s@0.25"]


# ----------------------------------------------------------------------------------------------- CLI
def _cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(command, list(args))
    return res.exit_code, res.output


def test_cli_preset_sets_benchmark_defaults(gid15_tileset: Path, tmp_path: Path) -> None:
    """--preset cpu-converge: 5 seeds, the 0.25 size sweep, real/real+synthetic/classic; flags override."""
    out = tmp_path / "conv"
    code, text = _cli(str(gid15_tileset), "-o", str(out), "--preset", "cpu-converge", "--max-runs", "0", "-q")
    assert code == 0, text
    cfg = json.loads((out / "benchmark_config.json").read_text())
    assert cfg["config"]["seeds"] == 5 and cfg["config"]["real_fractions"] == [0.25]
    assert cfg["config"]["arms"] == ["real", "classic"]  # real+synthetic dropped: no synthetic data given
    assert [a["name"] for a in cfg["sweep_arms"]] == ["real@0.25", "classic@0.25"]
    seg = cfg["config"]["segmenter"]
    assert seg["select"] == "best-val" and seg["val_every"] > 0 and cfg["protocol_key"]["val_split"] == "val"
    out2 = tmp_path / "conv2"
    code, text = _cli(
        str(gid15_tileset), "-o", str(out2), "--preset", "cpu-converge", "--max-runs", "0", "-q",
        "--seeds", "2", "--real-fractions", "0.5", "--select", "last", "--val-every", "0",
    )  # fmt: skip
    assert code == 0, text
    cfg = json.loads((out2 / "benchmark_config.json").read_text())["config"]
    assert cfg["seeds"] == 2 and cfg["real_fractions"] == [0.5]
    assert cfg["segmenter"]["select"] == "last" and cfg["segmenter"]["val_every"] == 0
    out3 = tmp_path / "small"
    code, text = _cli(str(gid15_tileset), "-o", str(out3), "--max-runs", "0", "-q")
    assert code == 0, text
    cfg = json.loads((out3 / "benchmark_config.json").read_text())
    assert cfg["config"]["seeds"] == 3 and cfg["config"]["real_fractions"] == []
    assert "val_split" not in cfg["protocol_key"] and "val_every" not in cfg["protocol_key"]["segmenter"]


def test_cli_bad_test_tiles_and_validation(
    tmp_path: Path, gid15_tileset: Path, chesapeake_tileset: Path, same_scenes: Path
) -> None:
    four_bands = tmp_path / "four"
    shutil.copytree(gid15_tileset, four_bands)
    desc = json.loads((four_bands / "tileset.json").read_text())
    desc["bands"] = 4
    (four_bands / "tileset.json").write_text(json.dumps(desc))
    out = tmp_path / "out"
    base = [str(gid15_tileset), "-o", str(out), "--arms", "real"]
    cases = [
        (["--test-tiles", str(chesapeake_tileset)], f"{chesapeake_tileset}: test tile set has class scheme"),
        (["--test-tiles", str(four_bands)], f"{four_bands}: test tile set has 4 bands"),
        (["--test-tiles", str(same_scenes)], "come from scenes that also feed training"),
        (["--test-tiles", str(tmp_path / "missing")], "test tile set directory not found"),
        (["--val-every", "2", "--val-split", "holdout"], "no 'holdout' tiles for the validation curves"),
        (["--val-every", "2", "--val-split", ""], "validation curves"),
        (["--preset", "cpu-converge", "--val-split", "test"], "selecting the weights on the evaluated split"),
        (["--val-every", "-1"], "--val-every must be in [0, iterations"),
        (["--val-every", "501"], "--val-every must be in [0, iterations"),
        (["--select", "best-val"], "--select best-val needs validation during training (--val-every > 0)"),
    ]
    for args, msg in cases:
        code, text = _cli(*base, *args)
        assert code == 2, (args, text)
        assert "Error:" in text and msg in text, (args, text)
        assert "Traceback" not in text and len(text.strip().splitlines()) == 1, (args, text)
        assert not out.exists(), args  # nothing written


def test_synthetic_set_from_test_masks_is_refused(gid15_tileset: Path, tmp_path: Path) -> None:
    """A 'synthetic' set whose masks come from the evaluated split leaks test labels into training."""
    import geopandas as gpd

    real = TileSet.open(gid15_tileset)
    syn = tmp_path / "syn"
    shutil.copytree(gid15_tileset, syn)
    idx = gpd.read_file(syn / "index.gpkg", layer="tiles")
    test_ids = list(real.split("test")["tile_id"])
    idx["source_tile"] = [test_ids[i % len(test_ids)] for i in range(len(idx))]
    idx["synthetic"] = True
    idx.to_file(syn / "index.gpkg", layer="tiles", driver="GPKG")
    desc = json.loads((syn / "tileset.json").read_text())
    desc["synthetic"] = True
    (syn / "tileset.json").write_text(json.dumps(desc))
    cfg = BenchmarkConfig(real=str(gid15_tileset), synthetic={"x": str(syn)}, arms=["real+synthetic"])
    with pytest.raises(InputError, match=r"was made from .* mask\(s\) of the 'test' split"):
        run_benchmark(replace(cfg), tmp_path / "out", device="cpu")
    assert not (tmp_path / "out").exists()


def test_tileset_fingerprint_is_pixel_content(tmp_path: Path) -> None:
    """Re-cutting the same scenes elsewhere keeps the fingerprint (new files, new GeoPackage, other paths), so a
    benchmark re-created on a fresh machine resumes; one changed pixel, or a moved split, changes it."""
    import rasterio

    from rsaug.benchmark.runner import _tileset_fingerprint
    from rsaug.io.tileset import write_index

    stems = gid15_fixture_stems()[:2]
    a = _tile(stems, tmp_path / "a")
    b = _tile(stems, tmp_path / "elsewhere" / "b")
    fa = _tileset_fingerprint(TileSet.open(a))
    assert fa == _tileset_fingerprint(TileSet.open(b))

    ts = TileSet.open(b)
    path = ts.mask_path(ts.index.iloc[0])
    with rasterio.open(path, "r+") as ds:
        m = ds.read(1)
        m[0, 0] = (int(m[0, 0]) + 1) % 15
        ds.write(m, 1)
    fb = _tileset_fingerprint(TileSet.open(b))
    assert fb != fa

    c = _tile(stems, tmp_path / "c")
    ts = TileSet.open(c)
    index = ts.index.copy()
    index.loc[index.index[0], "split"] = "test" if index.loc[index.index[0], "split"] != "test" else "train"
    write_index(c, index)
    assert _tileset_fingerprint(TileSet.open(c)) not in (fa, fb)
