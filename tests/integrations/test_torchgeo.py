"""TorchGeo integration: RasterDatasets, per-file dataset, mixing real and synthetic data without merging."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from pyproj import CRS
from torch.utils.data import ConcatDataset
from torchgeo.datasets import RasterDataset
from torchgeo.samplers import PreChippedGeoSampler, RandomGeoSampler

from rsaug.core.classes import get_scheme
from rsaug.core.errors import InputError
from rsaug.gan import Generator, build_models, model_preset
from rsaug.integrations.torchgeo import (
    GeoSampledDataset,
    MixingSampler,
    RealSyntheticDataModule,
    TileSetDataset,
    TileSetImages,
    TileSetMasks,
    collate_samples,
    geo_dataset,
    geo_datasets,
)
from rsaug.io.normalization import Normalization
from rsaug.io.tileset import TileSet
from rsaug.synthesis import plan_synthesis, synthesize_tileset

warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)


def untrained_generator(scheme_name: str, bands: int, seed: int = 0):
    """A real (randomly initialised, untrained) CSEBGAN generator behind the generation API.

    Georeferencing, provenance and data plumbing do not depend on trained weights; this keeps the tests on the
    georeferenced Chesapeake data fast (the session's trained checkpoint is a GID-15 one).
    """
    scheme = get_scheme(scheme_name)
    cfg = model_preset(
        "cpu-small",
        num_classes=scheme.num_classes,
        out_bands=bands,
        ngf=8,
        embed_dim=8,
        mlp_hidden=16,
        num_upsampling=3,
    )
    torch.manual_seed(seed)
    net = build_models(cfg, discriminator=False, conductor=False).G
    sha = hashlib.sha256(f"untrained-{scheme_name}-{bands}-{seed}".encode()).hexdigest()
    return Generator(
        net,
        cfg,
        scheme,
        Normalization("uint8", [0.0] * bands, [255.0] * bands),
        checkpoint_sha256=sha,
        device=torch.device("cpu"),
    )


@pytest.fixture(scope="module")
def chesapeake_synthetic(chesapeake_tileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two synthetic samples of every Chesapeake training tile (same footprints as their sources)."""
    torch.set_num_threads(2)
    out = tmp_path_factory.mktemp("ches_syn") / "syn"
    ts = TileSet.open(chesapeake_tileset)
    synthesize_tileset(
        ts, untrained_generator("chesapeake", 4), out, plan_synthesis(ts, samples_per_mask=2), batch_size=8
    )
    return out


def _tile_for_bounds(ts: TileSet, bounds: tuple[float, float, float, float]) -> int:
    for i, row in ts.index.iterrows():
        with rasterio.open(ts.image_path(row)) as src:
            if np.allclose(tuple(src.bounds), bounds, atol=1e-6):
                return int(i)
    raise AssertionError(f"no tile with bounds {bounds}")


def _query_bounds(sample: dict) -> tuple[float, float, float, float]:
    x, y = sample["bounds"][0], sample["bounds"][1]
    return (float(x.start), float(y.start), float(x.stop), float(y.stop))


def test_raster_datasets_on_real_chesapeake(chesapeake_tileset: Path) -> None:
    ts = TileSet.open(chesapeake_tileset)
    ds = geo_dataset(ts, "train")
    assert isinstance(ds.datasets[0], TileSetImages) and isinstance(ds.datasets[1], TileSetMasks)
    assert ds.crs == CRS.from_epsg(26917)
    n_train = int((ts.index["split"] == "train").sum())
    assert len(ds.datasets[0].index) == n_train
    sampler = PreChippedGeoSampler(ds)
    checked = 0
    for query in sampler:
        sample = ds[query]
        assert sample["image"].dtype == torch.float32 and sample["image"].shape == (4, 64, 64)
        assert sample["mask"].dtype == torch.int64 and sample["mask"].shape == (64, 64)
        assert sample["crs"] == CRS.from_epsg(26917)
        i = _tile_for_bounds(ts, _query_bounds(sample))
        row = ts.index.iloc[i]
        assert row["split"] == "train"
        np.testing.assert_array_equal(sample["image"].numpy(), ts.read_image(row).astype(np.float32))
        np.testing.assert_array_equal(sample["mask"].numpy(), ts.read_mask(row))  # internal convention
        checked += 1
    assert checked == n_train
    rnd = RandomGeoSampler(ds, size=32, length=5)
    for query in rnd:
        m = ds[query]["mask"]
        assert set(torch.unique(m).tolist()) <= set(range(6)) | {255}


def test_per_file_dataset_without_georeferencing(gid15_tileset: Path) -> None:
    ds = TileSetDataset(gid15_tileset, "val", image_scale="auto")
    ts = TileSet.open(gid15_tileset)
    assert len(ds) == int((ts.index["split"] == "val").sum())
    s = ds[0]
    assert set(s) == {"image", "mask", "tile_id", "synthetic"}
    assert s["image"].dtype == torch.float32 and s["image"].shape == (3, 224, 224)
    assert float(s["image"].min()) >= 0.0 and float(s["image"].max()) <= 1.0
    assert s["mask"].dtype == torch.int64 and s["mask"].shape == (224, 224)
    row = ts.split("val").iloc[0]
    np.testing.assert_array_equal(s["mask"].numpy(), ts.read_mask(row))
    np.testing.assert_allclose(s["image"].numpy(), ts.read_image(row) / 255.0, rtol=1e-6)
    assert not bool(s["synthetic"])
    with pytest.raises(InputError, match="no georeferencing"):
        TileSetImages(gid15_tileset)


def test_synthetic_tiles_with_torchgeo(chesapeake_tileset: Path, chesapeake_synthetic: Path) -> None:
    syn = TileSet.open(chesapeake_synthetic)
    assert syn.synthetic and set(syn.index["sample"]) == {0, 1}
    with pytest.raises(InputError, match="share a footprint"):
        TileSetImages(syn)  # samples 0 and 1 of a mask would be merged into one read
    per_sample = geo_datasets(syn, "train")
    assert len(per_sample) == 2
    for k, ds in enumerate(per_sample):
        assert ds.crs == CRS.from_epsg(26917)
        for query in PreChippedGeoSampler(ds):
            sample = ds[query]
            assert sample["image"].dtype == torch.float32 and sample["mask"].dtype == torch.int64
            rows = syn.index[syn.index["sample"] == k]
            bounds = _query_bounds(sample)
            match = [
                r
                for _, r in rows.iterrows()
                if np.allclose(tuple(rasterio.open(syn.image_path(r)).bounds), bounds, atol=1e-6)
            ]
            assert len(match) == 1
            np.testing.assert_array_equal(sample["image"].numpy(), syn.read_image(match[0]).astype(np.float32))
            break
    files = TileSetDataset(syn, "train")
    s = files[0]
    assert bool(s["synthetic"]) and s["crs"] == CRS.from_epsg(26917)
    assert s["bounds"].dtype == torch.float64 and s["bounds"].shape == (4,)


def test_mixed_pipeline_never_merges_real_and_synthetic(chesapeake_tileset: Path, chesapeake_synthetic: Path) -> None:
    real_ts, syn_ts = TileSet.open(chesapeake_tileset), TileSet.open(chesapeake_synthetic)
    parts = [GeoSampledDataset(geo_dataset(real_ts, "train"), PreChippedGeoSampler(geo_dataset(real_ts, "train")))]
    for ds in geo_datasets(syn_ts, "train"):
        parts.append(GeoSampledDataset(ds, PreChippedGeoSampler(ds)))
    mixed = ConcatDataset(parts)
    n_real = len(parts[0])
    assert len(mixed) == n_real + len(syn_ts.index)
    # every sample equals exactly one file: its own real tile or its own synthetic tile, never a blend
    lookup: dict[tuple, list[np.ndarray]] = {}
    for ts in (real_ts, syn_ts):
        for _, row in ts.split("train").iterrows():
            with rasterio.open(ts.image_path(row)) as src:
                key = tuple(np.round(tuple(src.bounds), 3))
            lookup.setdefault(key, []).append((ts.synthetic, ts.read_image(row).astype(np.float32)))
    sampler = MixingSampler(n_real, len(mixed) - n_real, ratio=0.5, seed=0)
    n_syn_seen = 0
    for i in sampler:
        s = mixed[i]
        candidates = lookup[tuple(np.round(_query_bounds(s), 3))]
        hits = [syn for syn, img in candidates if np.array_equal(img, s["image"].numpy())]
        assert hits == [bool(s["synthetic"])]
        n_syn_seen += int(bool(s["synthetic"]))
    assert n_syn_seen == sampler.counts[1] == round(len(sampler) * 0.5)
    # control: one RasterDataset over real and synthetic files merges same-footprint tiles into one read
    row = real_ts.split("train").iloc[0]
    syn_rows = syn_ts.index[syn_ts.index["source_tile"] == row["tile_id"]]

    class Both(RasterDataset):
        filename_glob = "*.tif"

    both = Both(paths=[str(real_ts.image_path(row))] + [str(syn_ts.image_path(r)) for _, r in syn_rows.iterrows()])
    q = next(iter(PreChippedGeoSampler(both)))
    merged = both[q]["image"].numpy()
    originals = [real_ts.read_image(row)] + [syn_ts.read_image(r) for _, r in syn_rows.iterrows()]
    assert sum(np.array_equal(merged, o.astype(np.float32)) for o in originals) <= 1  # the others are lost


def test_data_module_mixes_at_ratio_and_evaluates_on_real(chesapeake_tileset: Path, chesapeake_synthetic: Path) -> None:
    dm = RealSyntheticDataModule(
        chesapeake_tileset, chesapeake_synthetic, synthetic_ratio=0.25, batch_size=4, crop_size=32, seed=1
    )
    dm.setup("fit")
    n_real = len(dm.train_dataset.datasets[0])
    syn_flags = []
    for batch in dm.train_dataloader():
        assert "crs" not in batch  # dropped by the collate
        assert batch["image"].shape[1:] == (4, 32, 32) and batch["image"].dtype == torch.float32
        assert batch["mask"].shape[1:] == (32, 32) and batch["mask"].dtype == torch.int64
        assert float(batch["image"].max()) <= 1.0
        syn_flags += batch["synthetic"].tolist()
    assert len(syn_flags) == round(n_real / 0.75)
    assert sum(syn_flags) == len(syn_flags) - round(len(syn_flags) * 0.75)
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        flags = [f for b in loader for f in b["synthetic"].tolist()]
        assert flags and not any(flags)
    with pytest.raises(InputError, match=r"bands|scheme"):
        RealSyntheticDataModule(chesapeake_tileset, _gid_like(chesapeake_synthetic))


def _gid_like(path: Path) -> TileSet:
    ts = TileSet.open(path)
    return TileSet(root=ts.root, description={**ts.description, "bands": 3}, scheme=ts.scheme, index=ts.index)


def test_mixing_sampler_is_deterministic() -> None:
    s = MixingSampler(10, 30, ratio=0.5, seed=2)
    a = list(s)
    assert a == list(MixingSampler(10, 30, ratio=0.5, seed=2))
    assert sorted(i for i in a if i < 10) == list(range(10))  # every real tile once
    assert sum(i >= 10 for i in a) == 10 and len(set(a)) == 20
    s.set_epoch(1)
    assert list(s) != a
    assert len(MixingSampler(10, 30)) == 40
    assert all(i >= 10 for i in MixingSampler(10, 30, ratio=1.0))
    with pytest.raises(InputError):
        MixingSampler(10, 0, ratio=0.5)
    batch = collate_samples(
        [
            {"image": torch.zeros(1, 2, 2), "crs": CRS.from_epsg(4326), "tile_id": "a"},
            {"image": torch.ones(1, 2, 2), "crs": CRS.from_epsg(4326), "tile_id": "b"},
        ]
    )
    assert set(batch) == {"image", "tile_id"} and batch["image"].shape == (2, 1, 2, 2)
