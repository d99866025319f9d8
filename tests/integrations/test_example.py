"""The TorchGeo example script trains SemanticSegmentationTask's U-Net on real + synthetic tiles (CPU)."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from rsaug.io.tileset import TileSet
from rsaug.synthesis import plan_synthesis, synthesize_tileset
from tests.conftest import ROOT
from tests.integrations.test_torchgeo import untrained_generator

EXAMPLE = ROOT / "examples" / "torchgeo_synthetic_unet.py"


def _example():
    spec = importlib.util.spec_from_file_location("torchgeo_synthetic_unet", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


def test_example_georeferenced_torchgeo_pipeline(chesapeake_tileset: Path, tmp_path: Path, capsys) -> None:
    torch.set_num_threads(2)
    ts = TileSet.open(chesapeake_tileset)
    syn = tmp_path / "syn"
    synthesize_tileset(ts, untrained_generator("chesapeake", 4), syn, plan_synthesis(ts, samples_per_mask=2))
    metrics = _example().main(
        [
            "--real",
            str(chesapeake_tileset),
            "--synthetic",
            str(syn),
            "--steps",
            "2",
            "--crop",
            "32",
            "--batch-size",
            "4",
        ]
    )
    assert metrics["steps"] == 2
    assert math.isfinite(metrics["val_loss"]) and 0.0 <= metrics["val_MulticlassAccuracy"] <= 1.0
    assert "TorchGeo RasterDatasets + GeoSamplers" in capsys.readouterr().out


def test_example_synthesizes_with_a_checkpoint(
    gid15_tileset: Path, tiny_checkpoint: Path, tmp_path: Path, capsys
) -> None:
    torch.set_num_threads(2)
    metrics = _example().main(
        [
            "--real",
            str(gid15_tileset),
            "--checkpoint",
            str(tiny_checkpoint),
            "--synth-masks",
            "2",
            "--steps",
            "2",
            "--crop",
            "64",
            "--workdir",
            str(tmp_path),
        ]
    )
    assert metrics["steps"] == 2 and math.isfinite(metrics["val_loss"])
    out = capsys.readouterr().out
    assert "per-file datasets" in out
    syn = TileSet.open(tmp_path / "synthetic")
    assert syn.synthetic and len(syn.index) == 2


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
