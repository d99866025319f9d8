"""Synthetic tile sets and whole-scene synthesis: georeferencing, provenance, resume, vary-class, bad input."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.core.errors import InputError
from rsaug.gan.inference import file_sha256
from rsaug.integrations.torchgeo import TileSetDataset
from rsaug.io.tileset import TileSet
from rsaug.synthesis import (
    feather_weights,
    load_plan,
    plan_synthesis,
    sample_seed,
    synthesize_scene,
    synthesize_tileset,
    window_starts,
)
from tests.conftest import CHESAPEAKE_TILE, GID15
from tests.integrations.test_torchgeo import untrained_generator

warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)
LC = CHESAPEAKE_TILE / "m_3907833_nw_17_1_lc.tif"


@pytest.fixture(scope="module")
def ches_gen():
    torch.set_num_threads(2)
    return untrained_generator("chesapeake", 4)


@pytest.fixture(scope="module")
def ches_syn(chesapeake_tileset: Path, ches_gen, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("syn") / "ches"
    ts = TileSet.open(chesapeake_tileset)
    synthesize_tileset(ts, ches_gen, out, plan_synthesis(ts, samples_per_mask=2, seed=5), batch_size=6, writers=2)
    return out


def run(*args: str):
    return CliRunner().invoke(cli, ["synthesize", *map(str, args)])


# ---------------------------------------------------------------------------- tile sets
def test_synthetic_tiles_keep_source_georeferencing(chesapeake_tileset: Path, ches_syn: Path) -> None:
    src, syn = TileSet.open(chesapeake_tileset), TileSet.open(ches_syn)
    assert syn.synthetic and syn.georeferenced and syn.bands == 4 and syn.dtype == "uint8"
    n_train = int((src.index["split"] == "train").sum())
    assert len(syn.index) == 2 * n_train and set(syn.index["split"]) == {"train"}
    assert syn.description["split_counts"]["train"] == 2 * n_train
    by_id = src.index.set_index("tile_id")
    for _, row in syn.index.iterrows():
        s_row = by_id.loc[row["source_tile"]]
        with (
            rasterio.open(syn.image_path(row)) as im,
            rasterio.open(syn.mask_path(row)) as mk,
            rasterio.open(src.mask_path(s_row)) as ref,
        ):
            for ds in (im, mk):
                assert ds.crs == ref.crs and ds.crs.to_epsg() == 26917
                assert ds.transform == ref.transform and ds.shape == ref.shape
            assert im.count == 4 and im.dtypes == ("uint8",) * 4
            np.testing.assert_array_equal(mk.read(1), ref.read(1))
            assert mk.nodata == 255
        assert row.geometry.equals_exact(s_row.geometry, 1e-6)
        for col in [c for c in src.index.columns if c.startswith("px_")]:
            assert row[col] == s_row[col]


def test_provenance_in_index_and_tags(ches_syn: Path, ches_gen) -> None:
    syn = TileSet.open(ches_syn)
    for col in ("source_tile", "sample", "seed", "checkpoint_sha256", "synthetic"):
        assert col in syn.index.columns
    assert syn.index["synthetic"].all()
    assert set(syn.index["checkpoint_sha256"]) == {ches_gen.checkpoint_sha256}
    row = syn.index.iloc[3]
    assert row["seed"] == sample_seed(5, row["source_tile"], int(row["sample"]))
    assert row["tile_id"] == f"{row['source_tile']}_syn{int(row['sample']):03d}"
    with rasterio.open(syn.image_path(row)) as im:
        tags = im.tags()
    assert tags["RSAUG_SYNTHETIC"] == "true"
    assert tags["RSAUG_CHECKPOINT_SHA256"] == ches_gen.checkpoint_sha256
    assert tags["RSAUG_SOURCE_TILE"] == row["source_tile"] and tags["RSAUG_SAMPLE"] == str(row["sample"])
    assert tags["RSAUG_SEED"] == str(row["seed"]) and tags["RSAUG_RUN_SEED"] == "5"
    desc = syn.description
    assert desc["synthetic"] is True and desc["synthesis"]["checkpoint_sha256"] == ches_gen.checkpoint_sha256
    assert (ches_syn / "plan.json").is_file() and (ches_syn / "synthesis.json").is_file()
    # samples of one mask differ (different noise), and the image is what the generator makes for that seed
    a, b = (syn.read_image(r) for _, r in syn.index[syn.index["source_tile"] == row["source_tile"]].iterrows())
    assert not np.array_equal(a, b)
    src_mask = syn.read_mask(row)
    expect = ches_gen.to_raster(ches_gen.generate(src_mask, noise=ches_gen.sample_noise(1, seed=int(row["seed"]))))
    np.testing.assert_array_equal(syn.read_image(row), expect[0])


def test_resume_reproduces_the_same_tiles(chesapeake_tileset: Path, ches_syn: Path, ches_gen, tmp_path) -> None:
    ts = TileSet.open(chesapeake_tileset)
    out = tmp_path / "syn"
    shutil.copytree(ches_syn, out)
    ids = sorted(p.name for p in (out / "images").iterdir())
    for name in ids[:3]:  # simulate a run killed before these tiles and the index were written
        (out / "images" / name).unlink()
    (out / "index.gpkg").unlink()
    (out / "tileset.json").unlink()
    plan = plan_synthesis(ts, samples_per_mask=2, seed=5)
    with pytest.raises(InputError, match="not empty"):
        synthesize_tileset(ts, ches_gen, out, plan)
    with pytest.raises(InputError, match="different plan"):
        synthesize_tileset(ts, ches_gen, out, plan_synthesis(ts, samples_per_mask=1, seed=5), resume=True)
    res = synthesize_tileset(ts, ches_gen, out, plan, resume=True)
    assert res.generated == 3 and res.resumed == len(ids) - 3
    for name in ids:  # the same noise per sample; other batch sizes may flip a rounding by 1 DN
        a = rasterio.open(out / "images" / name).read().astype(int)
        b = rasterio.open(ches_syn / "images" / name).read().astype(int)
        assert np.abs(a - b).max() <= 1 and (a != b).mean() < 1e-3
    assert len(TileSet.open(out).index) == len(ids)
    assert not list(out.rglob(".rsaug-tmp-*"))


def test_bad_generator_for_tile_set(chesapeake_tileset: Path, gid15_tileset: Path, tmp_path) -> None:
    wrong_bands = untrained_generator("chesapeake", 3)
    ts = TileSet.open(chesapeake_tileset)
    with pytest.raises(InputError, match="3 bands"):
        synthesize_tileset(ts, wrong_bands, tmp_path / "a", plan_synthesis(ts))
    with pytest.raises(InputError, match="class scheme"):
        synthesize_tileset(gid15_tileset, untrained_generator("chesapeake", 3), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


# ---------------------------------------------------------------------------- whole scene
def test_window_layout_and_feathering() -> None:
    assert window_starts(260, 64, 16) == [0, 48, 96, 144, 192, 196]
    assert window_starts(50, 64, 16) == [0]
    starts, size, n = window_starts(300, 64, 16), 64, 300
    total = np.zeros(n)
    for j, s in enumerate(starts):
        before = starts[j - 1] + size - s if j else 0
        after = s + size - starts[j + 1] if j + 1 < len(starts) else 0
        total[s : s + size] += feather_weights(size, before, after)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)  # a partition of unity: no seams from the weights


def test_whole_scene_covers_the_mask_grid(ches_gen, tmp_path) -> None:
    out = tmp_path / "scene.tif"
    synthesize_scene(LC, ches_gen, out, window=128, overlap=32, seed=3, batch_size=4)
    with rasterio.open(LC) as m, rasterio.open(out) as s:
        assert (s.crs, s.transform, s.width, s.height) == (m.crs, m.transform, m.width, m.height)
        assert s.count == 4 and s.dtypes[0] == "uint8"
        assert s.colorinterp[3].name != "alpha"  # the NIR band (GDAL's default would mask pixels with it)
        assert s.tags()["RSAUG_SYNTHETIC"] == "true"
        img = s.read()
        raw = m.read(1)
    # windows start at 0, 96, 132: where only the first window contributes, the scene equals that window
    # generated on its own
    labels = ches_gen.scheme.encode(raw)
    noise = ches_gen.sample_noise(1, seed=3)
    first = ches_gen.to_raster(ches_gen.generate(labels[:128, :128], noise=noise))[0]
    np.testing.assert_array_equal(img[:, :96, :96], first[:, :96, :96])
    # the blended overlap with the right-hand neighbour lies between both windows (no visible seam)
    second = ches_gen.to_raster(ches_gen.generate(labels[:128, 96:224], noise=noise))[0].astype(float)
    band = img[:, :96, 96:128].astype(float)
    lo = np.minimum(first[:, :96, 96:128], second[:, :96, :32]) - 1
    hi = np.maximum(first[:, :96, 96:128], second[:, :96, :32]) + 1
    assert np.all((band >= lo) & (band <= hi))
    assert (tmp_path / "scene.json").is_file()
    with pytest.raises(InputError, match="exists"):
        synthesize_scene(LC, ches_gen, out, window=128)


# ---------------------------------------------------------------------------- CLI with the trained checkpoint
def _vary_pick(ts: TileSet) -> tuple[str, str]:
    """A training tile and a class covering 10-40 % of it (deterministic)."""
    train = ts.split("train")
    for _, row in train.iterrows():
        counts = np.array([row[f"px_{n}"] for n in ts.scheme.names], dtype=float)
        share = counts / (row["width"] * row["height"])
        for k in np.argsort(-share):
            if 0.1 <= share[k] <= 0.4:
                return row["tile_id"], ts.scheme.names[k]
    raise AssertionError("no suitable tile")


def test_cli_synthesize_rare_classes(tiny_checkpoint: Path, gid15_tileset: Path, tmp_path) -> None:
    out = tmp_path / "syn"
    ts = TileSet.open(gid15_tileset)
    ids = ts.split("train")["tile_id"].tolist()[:8]
    args = [
        "-c",
        tiny_checkpoint,
        gid15_tileset,
        "-o",
        out,
        "--double-rare-classes",
        "--allow-absent",
        "--device",
        "cpu",
        "--batch-size",
        "4",
        "--seed",
        "1",
    ]
    for t in ids:
        args += ["--tile-id", t]
    res = run(*args)
    assert res.exit_code == 0, res.output
    assert "Synthesis plan: double rare classes" in res.output and "Synthetic tile set written" in res.output
    syn = TileSet.open(out)
    assert syn.synthetic and len(syn.index) > 0 and set(syn.index["source_tile"]) <= set(ids)
    sha = file_sha256(tiny_checkpoint)
    assert set(syn.index["checkpoint_sha256"]) == {sha}
    plan = load_plan(out / "plan.json")
    for name in plan.rare:
        k = plan.class_names.index(name)
        assert plan.counts_after[k] >= 2 * plan.counts_before[k]
    row = syn.index.iloc[0]
    assert syn.read_image(row).dtype == np.uint8 and syn.read_image(row).shape[0] == 3
    np.testing.assert_array_equal(
        syn.read_mask(row), ts.read_mask(ts.index.set_index("tile_id").loc[row["source_tile"]])
    )
    # the synthetic set loads like a real one
    sample = TileSetDataset(out, "train")[0]
    assert sample["image"].dtype == torch.float32 and sample["mask"].dtype == torch.int64 and sample["synthetic"]


def test_cli_vary_class_changes_that_class(tiny_checkpoint: Path, gid15_tileset: Path, tmp_path) -> None:
    ts = TileSet.open(gid15_tileset)
    tile, cls = _vary_pick(ts)
    out = tmp_path / "vary"
    res = run(
        "-c",
        tiny_checkpoint,
        gid15_tileset,
        "-o",
        out,
        "--vary-class",
        cls,
        "--samples-per-mask",
        3,
        "--tile-id",
        tile,
        "--device",
        "cpu",
        "-q",
    )
    assert res.exit_code == 0, res.output
    syn = TileSet.open(out)
    assert len(syn.index) == 3 and set(syn.index["vary_class"]) == {cls}
    imgs = [syn.read_image(r).astype(float) for _, r in syn.index.iterrows()]
    region = syn.read_mask(syn.index.iloc[0]) == ts.scheme.index_of(cls)
    inside, outside = [], []
    for i in range(3):
        for j in range(i + 1, 3):
            d = np.abs(imgs[i] - imgs[j]).mean(axis=0)
            inside.append(d[region].mean())
            outside.append(d[~region].mean())
    assert np.mean(inside) > 3 * np.mean(outside), (inside, outside)


def test_cli_whole_scene_and_dry_run(tiny_checkpoint: Path, gid15_tileset: Path, tmp_path) -> None:
    mask = GID15 / "labels_index" / "river_003.tif"
    if not mask.exists():
        mask = sorted((GID15 / "labels_index").glob("*.tif"))[0]
    out = tmp_path / "scene.tif"
    res = run(
        "-c", tiny_checkpoint, "--scene-mask", mask, "-o", out, "--window", 64, "--overlap", 16, "--device", "cpu"
    )
    assert res.exit_code == 0, res.output
    with rasterio.open(mask) as m, rasterio.open(out) as s:
        assert (s.width, s.height, s.count, s.dtypes[0]) == (m.width, m.height, 3, "uint8")
        assert s.transform == m.transform and s.crs == m.crs
    plan_json = tmp_path / "plan.json"
    res = run(gid15_tileset, "--double-rare-classes", "--dry-run", "--plan-json", plan_json, "-o", tmp_path / "x")
    assert res.exit_code == 0, res.output
    assert "rare" in res.output and plan_json.is_file() and not (tmp_path / "x").exists()


def test_cli_bad_inputs(tiny_checkpoint: Path, gid15_tileset: Path, chesapeake_tileset: Path, tmp_path) -> None:
    out = tmp_path / "out"
    cases = [
        (["-c", tiny_checkpoint, chesapeake_tileset, "-o", out], "class scheme"),
        (["-c", tmp_path / "missing.ckpt", gid15_tileset, "-o", out], "missing.ckpt"),
        (["-c", tiny_checkpoint, tmp_path / "nope", "-o", out], "tile set directory not found"),
        (["-c", tiny_checkpoint, gid15_tileset, "-o", out, "--vary-class", "volcano"], "volcano"),
        (
            ["-c", tiny_checkpoint, gid15_tileset, "-o", out, "--double-rare-classes", "--samples-per-mask", "2"],
            "samples-per-mask",
        ),
        (
            [
                "-c",
                tiny_checkpoint,
                gid15_tileset,
                "-o",
                out,
                "--double-rare-classes",
                "--rare-share",
                "0.05",
                "--tile-id",
                TileSet.open(gid15_tileset).split("train")["tile_id"].iloc[0],
            ],
            "impossible plan",
        ),
        (["-c", tiny_checkpoint, "--scene-mask", tmp_path / "none.tif", "-o", tmp_path / "s.tif"], "none.tif"),
    ]
    for args, msg in cases:
        res = run(*args)
        assert res.exit_code == 2, (args, res.output)
        assert res.output.startswith("Error: ") and msg in res.output, res.output
        assert "Traceback" not in res.output
        assert not out.exists() and not (tmp_path / "s.tif").exists()
    # a missing source mask: error before anything is written
    broken = tmp_path / "broken"
    shutil.copytree(gid15_tileset, broken)
    ts = TileSet.open(broken)
    first = ts.split("train").iloc[0]
    ts.mask_path(first).unlink()
    res = run("-c", tiny_checkpoint, broken, "-o", out, "--tile-id", first["tile_id"], "--device", "cpu")
    assert res.exit_code == 2 and "source mask tile not found" in res.output and not out.exists()
    # a non-empty output directory is refused
    out.mkdir()
    (out / "keep.txt").write_text("x")
    res = run("-c", tiny_checkpoint, gid15_tileset, "-o", out, "--tile-id", ts.split("train")["tile_id"].iloc[1])
    assert res.exit_code == 2 and "not empty" in res.output
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]
