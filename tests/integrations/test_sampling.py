"""Sampling rsaug tile sets with TorchGeo: grid and random samplers at the tile size, whole tiles by id, mixing.

Real data only: the georeferenced pair (EPSG:32620, 0.33 m) and the georeferenced Chesapeake tile (EPSG:26917,
23.6 m x 29.5 m pixels), cut at several tile sizes including odd ones. Every sample is compared with the GeoTIFF
pixels read by rasterio.
"""

from __future__ import annotations

import itertools
import json
import re
import warnings
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import ConcatDataset, DataLoader
from torchgeo.datasets import stack_samples
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler
from torchgeo.trainers import SemanticSegmentationTask

from rsaug.core.errors import InputError
from rsaug.integrations import (
    GeoSampledDataset,
    MixingSampler,
    TileSampler,
    TileSetImages,
    TileSetMasks,
    check_sampler,
    collate_samples,
    geo_dataset,
    geo_datasets,
    grid_sampler,
    random_sampler,
    snap_footprints,
)
from rsaug.io.tileset import TileSet, count_column
from rsaug.synthesis import plan_synthesis, synthesize_tileset
from rsaug.tiling import TileOptions, tile_scenes
from tests.conftest import GEOREF_PAIR, ROOT
from tests.fixtures_tiles import chesapeake_pair
from tests.integrations.test_torchgeo import untrained_generator

warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)

ROADS = {
    "name": "roads",
    "classes": [
        {"name": "background", "value": 0, "color": [0, 0, 0]},
        {"name": "road", "value": 1, "color": [255, 255, 0]},
        {"name": "building", "value": 2, "color": [255, 0, 0]},
    ],
    "unknown_values": [],
    "unknown_color": [255, 255, 255],
}
CASES = [("georef", 32), ("georef", 100), ("georef", 127), ("georef", 128), ("chesapeake", 32), ("chesapeake", 127)]


@pytest.fixture(scope="module")
def make_tiles(tmp_path_factory: pytest.TempPathFactory):
    """``make_tiles(kind, size)``: the georeferenced pair or the Chesapeake tile cut at ``size`` px (cached)."""
    base = tmp_path_factory.mktemp("sampling")
    scheme = base / "roads.json"
    scheme.write_text(json.dumps(ROADS))
    cache: dict[tuple[str, int], Path] = {}

    def make(kind: str, size: int) -> Path:
        if (kind, size) not in cache:
            pair = (GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif") if kind == "georef" else chesapeake_pair()
            root = base / f"{kind}{size}"
            opts = TileOptions(
                tile_size=size,
                scheme=str(scheme) if kind == "georef" else "chesapeake",
                split="4:1:1",
                seed=0,
                max_unknown=1.0,
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tile_scenes([pair], root, opts)
            cache[kind, size] = root
        return cache[kind, size]

    return make


@pytest.fixture(scope="module")
def chesapeake_pair_sets(make_tiles, tmp_path_factory: pytest.TempPathFactory):
    """``sets(size)``: (real, synthetic) Chesapeake tile sets at ``size`` px, two synthetic samples per mask."""
    cache: dict[int, tuple[Path, Path]] = {}

    def sets(size: int) -> tuple[Path, Path]:
        if size not in cache:
            torch.set_num_threads(2)
            real = make_tiles("chesapeake", size)
            ts = TileSet.open(real)
            syn = tmp_path_factory.mktemp(f"syn{size}") / "syn"
            gen = untrained_generator("chesapeake", 4)
            synthesize_tileset(ts, gen, syn, plan_synthesis(ts, samples_per_mask=2), batch_size=8)
            cache[size] = (real, syn)
        return cache[size]

    return sets


class Truth:
    """Every tile file of some tile sets, read with rasterio: pixels and true georeferencing."""

    def __init__(self, *roots: Path) -> None:
        self.tiles: list[dict] = []
        for root in roots:
            ts = TileSet.open(root)
            for _, row in ts.index.iterrows():
                with rasterio.open(ts.image_path(row)) as src:
                    image, bounds, res = src.read(), src.bounds, src.res
                with rasterio.open(ts.mask_path(row)) as src:
                    mask = src.read(1)
                self.tiles.append(
                    {
                        "id": str(row["tile_id"]),
                        "synthetic": ts.synthetic,
                        "sample": int(row["sample"]) if "sample" in row.index else None,
                        "split": row["split"],
                        "image": image,
                        "mask": mask,
                        "bounds": bounds,
                        "res": res,
                    }
                )

    def containing(self, sample: dict) -> list[tuple[dict, int, int]]:
        """Tiles holding the sample's query on their pixel grid, with the (row, col) offset of the query."""
        x, y = sample["bounds"][0], sample["bounds"][1]
        out = []
        for t in self.tiles:
            b, (rx, ry) = t["bounds"], t["res"]
            col, row = (x.start - b.left) / rx, (b.top - y.stop) / ry
            w, h = (x.stop - x.start) / rx, (y.stop - y.start) / ry
            if min(col, row) < -1e-3 or col + w > t["image"].shape[2] + 1e-3 or row + h > t["image"].shape[1] + 1e-3:
                continue
            assert abs(col - round(col)) < 1e-4 and abs(row - round(row)) < 1e-4, "query off the pixel grid"
            assert abs(w - round(w)) < 1e-4 and abs(h - round(h)) < 1e-4
            out.append((t, round(row), round(col)))
        return out

    def check(self, sample: dict, size: int) -> dict:
        """The one tile whose pixels the sample holds (raises if none or several)."""
        image, mask = sample["image"].numpy(), sample["mask"].numpy()
        assert image.shape[1:] == (size, size) and mask.shape == (size, size)
        hits = []
        for t, r, c in self.containing(sample):
            window = t["image"][:, r : r + size, c : c + size]
            if window.shape[1:] == (size, size) and np.array_equal(window.astype(np.float32), image):
                np.testing.assert_array_equal(t["mask"][r : r + size, c : c + size], mask)
                hits.append(t)
        assert len(hits) == 1, f"{len(hits)} tiles match a sample at {sample['bounds'][:2]}"
        return hits[0]


def _pair(root: Path, split: str | None = None):
    return TileSetImages(root, split=split) & TileSetMasks(root, split=split)


@pytest.mark.parametrize(("kind", "size"), CASES)
def test_grid_at_tile_size_yields_every_tile_once(make_tiles, kind: str, size: int) -> None:
    root = make_tiles(kind, size)
    truth = Truth(root)
    ds = _pair(root)
    sampler = GridGeoSampler(ds, size=size, stride=size)  # TorchGeo's own sampler
    assert len(sampler) == len(truth.tiles) == len(ds.index)
    seen = [truth.check(ds[q], size)["id"] for q in sampler]
    assert sorted(seen) == sorted(t["id"] for t in truth.tiles)  # every tile exactly once
    assert len(grid_sampler(ds, size=size, stride=size)) == len(truth.tiles)
    rnd = RandomGeoSampler(ds, size=size)  # every tile is eligible, and a patch at the tile size is a whole tile
    assert len(rnd.bounds) == len(truth.tiles)


@pytest.mark.parametrize(("kind", "size"), CASES)
def test_random_patches_at_tile_size_and_half(make_tiles, kind: str, size: int) -> None:
    root = make_tiles(kind, size)
    truth = Truth(root)
    ds = _pair(root)
    for patch in (size, size // 2):
        sampler = RandomGeoSampler(ds, size=patch, length=12, generator=torch.Generator().manual_seed(size))
        for q in sampler:
            sample = ds[q]
            tile = truth.check(sample, patch)
            if patch == size:  # a whole tile: its footprint
                b = tile["bounds"]
                x, y = q[0], q[1]
                assert np.allclose([x.start, y.start, x.stop, y.stop], list(b), rtol=0, atol=1e-6 * tile["res"][0])


def test_footprints_and_res_are_exact(make_tiles) -> None:
    for kind, size in CASES:
        ds = TileSetImages(make_tiles(kind, size), split=None)
        xres, yres = ds.res
        for xmin, ymin, xmax, ymax in ds.index.geometry.bounds.itertuples(index=False):
            assert xmax - xmin == size * xres and ymax - ymin == size * yres
        with rasterio.open(ds.index["filepath"].iloc[0]) as src:
            assert abs(xres - src.res[0]) < 1e-8 * src.res[0] and abs(yres - src.res[1]) < 1e-8 * src.res[1]
        masks = TileSetMasks(make_tiles(kind, size), split=None, res=ds.res)
        assert masks.res == ds.res and list(masks.footprints.values()) == list(ds.footprints.values())
    # two grids with different phases stay apart; neighbours on one grid share their edges exactly
    bounds = np.array([[10.1, 0.0, 10.4, 0.3], [10.4, 0.0, 10.7, 0.3], [10.15, 0.3, 10.45, 0.6]])
    snapped, grids = snap_footprints(bounds, np.array([[3, 3]] * 3))
    assert len(grids) == 2 and snapped[0, 2] == snapped[1, 0]
    assert np.allclose(snapped, bounds, atol=1e-12)


@pytest.mark.parametrize("size", [32, 100])
def test_real_and_synthetic_mixed_through_concat(chesapeake_pair_sets, size: int) -> None:
    real, syn = chesapeake_pair_sets(size)
    truth = Truth(real, syn)
    real_ds, syn_ds = geo_dataset(real, "train"), geo_datasets(syn, "train")
    assert len(syn_ds) == 2
    n_real_tiles = sum(1 for t in truth.tiles if not t["synthetic"] and t["split"] == "train")
    for patch, make in ((size, lambda d: grid_sampler(d, size=size, stride=size)), (size // 2, None)):
        parts = [
            GeoSampledDataset(
                d,
                make(d)
                if make
                else random_sampler(d, size=patch, length=10, generator=torch.Generator().manual_seed(1)),
            )
            for d in [real_ds, *syn_ds]
        ]
        if make:
            assert [len(p) for p in parts] == [n_real_tiles] * 3  # every training tile once per dataset
        mixed = ConcatDataset(parts)
        n_real = len(parts[0])
        mixing = MixingSampler(n_real, len(mixed) - n_real, ratio=0.5, seed=0)
        loader = DataLoader(mixed, batch_size=4, sampler=mixing, collate_fn=collate_samples)
        n_syn = 0
        for i, batch in zip(mixing, (s for b in loader for s in _unbatch(b))):
            part = int(np.searchsorted(mixed.cumulative_sizes, i, side="right"))
            sample = dict(mixed[i])
            assert torch.equal(sample["image"], batch["image"]) and torch.equal(sample["mask"], batch["mask"])
            tile = truth.check(sample, patch)  # exactly its own file, never a blend
            assert tile["synthetic"] == bool(sample["synthetic"]) == (part > 0)
            assert tile["split"] == "train" and (tile["sample"] == part - 1 if part else tile["sample"] is None)
            n_syn += int(tile["synthetic"])
        assert n_syn == mixing.counts[1] > 0


def _unbatch(batch: dict):
    for j in range(len(batch["image"])):
        yield {"image": batch["image"][j], "mask": batch["mask"][j]}


def test_tile_sampler_by_id(chesapeake_pair_sets) -> None:
    real, _ = chesapeake_pair_sets(32)
    truth = Truth(real)
    ds = geo_dataset(real, split=None)
    ts = TileSet.open(real)
    sampler = TileSampler(ds, split="train", seed=3)
    train_ids = sorted(ts.split("train")["tile_id"])
    order = sampler.draw()
    assert sorted(order) == train_ids and order != sorted(order)  # a shuffled permutation of one split
    assert order == TileSampler(ds, split="train", seed=3).draw()
    sampler.set_epoch(1)
    assert sampler.draw() != order
    loader = DataLoader(ds, sampler=sampler, batch_size=5, collate_fn=stack_samples)
    got = []
    for batch in loader:
        assert batch["image"].shape[1:] == (4, 32, 32) and batch["mask"].shape[1:] == (32, 32)
        for j in range(len(batch["image"])):
            sample = {"image": batch["image"][j], "mask": batch["mask"][j], "bounds": batch["bounds"][j]}
            got.append(truth.check(sample, 32)["id"])
    assert got == sampler.last_tile_ids and sorted(got) == train_ids
    batches = TileSampler(ds, split="val", batch_size=2, drop_last=True)
    loader = DataLoader(ds, batch_sampler=batches, collate_fn=stack_samples)
    n_val = int((ts.index["split"] == "val").sum())
    assert len(loader) == n_val // 2 == sum(1 for _ in loader)
    # class weighting: tiles holding the rarest class are drawn more often
    weighted = TileSampler(ds, seed=0, class_weights="inverse", num_samples=4000)
    counts = ts.index[[count_column(n) for n in ts.scheme.names]].to_numpy(dtype=float)
    rarest = int(np.argmin(np.where(counts.sum(0) > 0, counts.sum(0), np.inf)))
    rare_ids = set(ts.index["tile_id"][counts[:, rarest] > 0])
    assert 0 < len(rare_ids) < len(ts.index)
    drawn = weighted.draw()
    share_rare = sum(t in rare_ids for t in drawn) / len(drawn)
    assert share_rare > 1.3 * len(rare_ids) / len(ts.index)  # uniform: len(rare_ids) / len(ts.index)
    only_water = TileSampler(ds, class_weights={"water": 1.0}, num_samples=200)
    water = set(ts.index["tile_id"][ts.index[count_column("water")] > 0])
    assert set(only_water.draw()) <= water
    with pytest.raises(InputError, match="unknown classes"):
        TileSampler(ds, class_weights={"lava": 1.0})
    with pytest.raises(InputError, match="no tiles"):
        TileSampler(ds, tile_ids=["nope"])


@pytest.mark.parametrize(("kind", "size"), [("georef", 127), ("chesapeake", 32)])
def test_patch_larger_than_every_tile_is_a_one_line_error(make_tiles, kind: str, size: int) -> None:
    ds = _pair(make_tiles(kind, size))
    for make in (grid_sampler, random_sampler):
        with pytest.raises(InputError, match="larger than every tile") as err:
            make(ds, size=size + 1)
        assert "\n" not in str(err.value) and f"{size} x {size} px" in str(err.value)
    with pytest.raises(InputError, match="larger than every tile"):
        GeoSampledDataset(ds, RandomGeoSampler(ds, size=size + 1, length=4))
    with pytest.raises(InputError, match="larger than every tile"):
        check_sampler(GridGeoSampler(ds, size=2 * size))
    assert check_sampler(GridGeoSampler(ds, size=size)) is not None


def _readme_patterns() -> list[str]:
    """The three pattern programs of the README's TorchGeo section (prelude + one pattern + mixing)."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## TorchGeo") :]
    section = section[: section.index("\n## ", 1)]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    lines = code.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"# [123]\. ", line)]
    mix = next(i for i, line in enumerate(lines) if line.startswith("# mix"))
    assert len(starts) == 3
    bounds = [*starts, mix]
    return ["\n".join(lines[: starts[0]] + lines[a:b] + lines[mix:]) for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize("pattern", [0, 1, 2])
def test_readme_patterns_run(chesapeake_pair_sets, pattern: int) -> None:
    real, syn = chesapeake_pair_sets(32)
    code = _readme_patterns()[pattern].replace('"TILES"', repr(str(real))).replace('"SYN"', repr(str(syn)))
    env: dict = {}
    exec(compile(code, "README.md", "exec"), env)  # the README's own example
    truth = Truth(real, syn)
    patch = 32 if pattern != 1 else 16
    n_syn = 0
    for batch in env["loader"]:
        assert batch["image"].shape[1:] == (4, patch, patch)
        for j, sample in enumerate(_unbatch(batch)):
            sample["bounds"] = batch["bounds"][j]
            tile = truth.check(sample, patch)
            assert tile["synthetic"] == bool(batch["synthetic"][j]) and tile["split"] == "train"
            n_syn += int(tile["synthetic"])
    assert n_syn == env["mixing"].counts[1] > 0


def test_segmentation_task_fits_on_grid_pipeline(chesapeake_pair_sets) -> None:
    torch.set_num_threads(2)
    pl.seed_everything(0, verbose=False)
    real, syn = chesapeake_pair_sets(32)

    def scale(sample: dict) -> dict:
        sample["image"] = sample["image"] / 255.0
        return sample

    datasets = [geo_dataset(real, "train", transforms=scale), *geo_datasets(syn, "train", transforms=scale)]
    parts = [GeoSampledDataset(d, grid_sampler(d, size=32, stride=32)) for d in datasets]
    train = ConcatDataset(parts)
    n_real = len(parts[0])
    loader = DataLoader(
        train,
        batch_size=4,
        sampler=MixingSampler(n_real, len(train) - n_real, ratio=0.5, num_samples=12, seed=0),
        collate_fn=collate_samples,
    )
    val_ds = geo_dataset(real, "val", transforms=scale)
    val = DataLoader(GeoSampledDataset(val_ds, grid_sampler(val_ds, size=32)), batch_size=4, collate_fn=collate_samples)
    ts = TileSet.open(real)
    task = SemanticSegmentationTask(
        model="unet",
        backbone="resnet18",
        weights=None,
        in_channels=ts.bands,
        num_classes=ts.scheme.num_classes,
        ignore_index=255,
        lr=1e-3,
    )
    before = [p.detach().clone() for p in task.model.parameters()]
    trainer = pl.Trainer(
        max_steps=3,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, train_dataloaders=loader, val_dataloaders=val)
        metrics = trainer.validate(task, dataloaders=val, verbose=False)[0]
    assert trainer.global_step == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, task.model.parameters()))
    assert np.isfinite(metrics["val_loss"]) and 0.0 <= metrics["val_MulticlassAccuracy"] <= 1.0
