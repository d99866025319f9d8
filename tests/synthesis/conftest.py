"""Fixtures of the synthesis recipe tests: a generator with varied output, a small synthetic GID-15 set, and a
briefly trained real-only segmenter."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

from rsaug.io.tileset import TileSet
from rsaug.segmentation import SegmenterConfig, save_segmenter, train_segmenter
from rsaug.synthesis import plan_synthesis, synthesize_tileset
from tests.integrations.test_torchgeo import untrained_generator

#: Source masks of the small synthetic set (the first training tiles of the fixture).
N_SYN = 8


def varied_generator(scheme: str = "gid15", bands: int = 3):
    """A real, untrained CSEBGAN generator whose output layer is scaled by 100.

    An untrained network's images are nearly constant (3-5 grey levels); scaled, they span ~100 levels with
    class-dependent structure, so histogram and mean/std alignment have something to map.
    """
    gen = untrained_generator(scheme, bands)
    with torch.no_grad():
        gen.net.conv_img.weight.mul_(100.0)
    return gen


@pytest.fixture(scope="module")
def gid_gen():
    torch.set_num_threads(2)
    return varied_generator()


@pytest.fixture(scope="module")
def syn_ids(gid15_tileset: Path) -> list[str]:
    ts = TileSet.open(gid15_tileset)
    return ts.split("train")["tile_id"].astype(str).tolist()[:N_SYN]


@pytest.fixture(scope="module")
def gid_syn(gid15_tileset: Path, gid_gen, syn_ids, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain (unaligned) synthetic set of N_SYN tiles."""
    out = tmp_path_factory.mktemp("recipes") / "syn"
    ts = TileSet.open(gid15_tileset)
    synthesize_tileset(ts, gid_gen, out, plan_synthesis(ts, samples_per_mask=1, tile_ids=syn_ids), batch_size=4)
    return out


@pytest.fixture(scope="session")
def real_segmenter(gid15_tileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A U-Net briefly trained on the real train split of the GID-15 fixture, saved as segmenter.pt.

    3 steps: its quality does not matter for these tests, and steps are slow on the shared CPU."""
    torch.set_num_threads(2)
    cfg = SegmenterConfig(backbone="resnet18", iterations=3, batch_size=4, crop=64, lr=2e-3, threads=2)
    ts = TileSet.open(gid15_tileset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seg = train_segmenter(ts, config=cfg, seed=0, device="cpu")
    path = tmp_path_factory.mktemp("segmenter") / "segmenter.pt"
    save_segmenter(seg, path, ts.scheme, cfg, {"tileset": str(gid15_tileset), "seed": 0})
    return path
