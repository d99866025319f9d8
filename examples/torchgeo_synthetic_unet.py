"""Train TorchGeo's U-Net on real + synthetic rsaug tiles (a runnable example; the test suite runs it on CPU).

Two pipelines, chosen by the real tile set:

* georeferenced tile sets (e.g. Chesapeake): TorchGeo ``RasterDataset`` s (``TileSetImages & TileSetMasks``), one
  per tile set and per synthetic sample number, each sampled by its own ``RandomGeoSampler``; the samples (never
  the rasters) are combined with ``ConcatDataset`` and mixed at ``--ratio`` by ``MixingSampler``;
* tile sets without georeferencing (e.g. GID-15): ``RealSyntheticDataModule`` (per-file datasets).

Validation always uses real tiles only. The model is ``torchgeo.trainers.SemanticSegmentationTask`` with a U-Net
and ``weights=None`` (random init; nothing is downloaded).

Usage::

    python examples/torchgeo_synthetic_unet.py --real TILES --synthetic SYN --steps 20
    python examples/torchgeo_synthetic_unet.py --real TILES --checkpoint RUN --synth-masks 16 --steps 20
"""

from __future__ import annotations

import argparse
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import ConcatDataset, DataLoader
from torchgeo.samplers import PreChippedGeoSampler, RandomGeoSampler

from rsaug.gan import load_generator
from rsaug.integrations import (
    GeoSampledDataset,
    MixingSampler,
    RealSyntheticDataModule,
    collate_samples,
    geo_dataset,
    geo_datasets,
)
from rsaug.io import TileSet
from rsaug.synthesis import PlanConfig, plan_synthesis, synthesize_tileset


def scale_uint8(sample: dict[str, Any]) -> dict[str, Any]:
    """Images to [0, 1] (the tile sets here hold uint8 imagery)."""
    sample["image"] = sample["image"] / 255.0
    return sample


def georeferenced_loaders(
    real: Path, synthetic: list[Path], ratio: float, crop: int, batch_size: int, steps: int, seed: int
) -> tuple[DataLoader, DataLoader]:
    """TorchGeo pipeline: RasterDatasets + GeoSamplers per tile set, combined as samples."""
    torch.manual_seed(seed)
    n_draw = steps * batch_size
    tile_size = int(TileSet.open(real).description.get("tile_size", 0))

    def sampler(ds: Any) -> Any:  # random crops, or whole tiles when the crop is not smaller than a tile
        return RandomGeoSampler(ds, size=crop, length=n_draw) if crop < tile_size else PreChippedGeoSampler(ds)

    real_ds = geo_dataset(real, "train", transforms=scale_uint8)
    parts = [GeoSampledDataset(real_ds, sampler(real_ds))]
    for syn in synthetic:
        for ds in geo_datasets(syn, "train", transforms=scale_uint8):  # one dataset per sample number
            parts.append(GeoSampledDataset(ds, sampler(ds)))
    train = ConcatDataset(parts)
    n_real = len(parts[0])
    sampler = MixingSampler(
        n_real, len(train) - n_real, ratio if len(parts) > 1 else 0.0, num_samples=n_draw, seed=seed
    )
    val_ds = geo_dataset(real, "val", transforms=scale_uint8)
    val = GeoSampledDataset(val_ds, PreChippedGeoSampler(val_ds, shuffle=False))
    return (
        DataLoader(train, batch_size=batch_size, sampler=sampler, collate_fn=collate_samples),
        DataLoader(val, batch_size=batch_size, collate_fn=collate_samples),
    )


def per_file_loaders(
    real: Path, synthetic: list[Path], ratio: float, crop: int, batch_size: int, steps: int, seed: int
) -> tuple[DataLoader, DataLoader]:
    """Per-file pipeline for tile sets without georeferencing."""
    dm = RealSyntheticDataModule(
        real,
        synthetic,
        synthetic_ratio=ratio if synthetic else 0.0,
        batch_size=batch_size,
        crop_size=crop,
        samples_per_epoch=steps * batch_size,
        seed=seed,
    )
    dm.setup("fit")
    return dm.train_dataloader(), dm.val_dataloader()


def synthesize_some(real: Path, checkpoint: Path, out: Path, n_masks: int, seed: int) -> Path:
    """Synthesize one sample for each of the first ``n_masks`` training masks with rsaug's Python API."""
    ts = TileSet.open(real)
    ids = ts.split("train")["tile_id"].tolist()[:n_masks]
    plan = plan_synthesis(ts, PlanConfig(mode="plain", samples_per_mask=1, seed=seed, tile_ids=ids))
    gen = load_generator(checkpoint, device="auto")
    synthesize_tileset(ts, gen, out, plan, checkpoint=checkpoint, batch_size=4)
    return out


def main(argv: list[str] | None = None) -> dict[str, float]:
    """Run the example; returns the validation metrics (real tiles only)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--real", type=Path, required=True, help="real tile set (rsaug tile output)")
    p.add_argument("--synthetic", type=Path, nargs="*", default=[], help="synthetic tile set(s)")
    p.add_argument("--checkpoint", type=Path, default=None, help="synthesize first with this checkpoint")
    p.add_argument("--synth-masks", type=int, default=8, help="masks to synthesize with --checkpoint")
    p.add_argument("--ratio", type=float, default=0.5, help="share of synthetic samples per batch stream")
    p.add_argument("--steps", type=int, default=5, help="training steps")
    p.add_argument("--crop", type=int, default=32, help="crop size in pixels")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="where to put synthesized tiles (default: temp)")
    args = p.parse_args(argv)

    import lightning.pytorch as pl
    from torchgeo.trainers import SemanticSegmentationTask

    torch.set_num_threads(min(2, torch.get_num_threads()))
    pl.seed_everything(args.seed, verbose=False)
    real = TileSet.open(args.real)
    synthetic = list(args.synthetic)
    tmp = None
    if args.checkpoint is not None:
        tmp = tempfile.TemporaryDirectory() if args.workdir is None else None
        work = Path(tmp.name) if tmp else args.workdir
        synthetic.append(synthesize_some(args.real, args.checkpoint, work / "synthetic", args.synth_masks, args.seed))
    make = georeferenced_loaders if real.georeferenced else per_file_loaders
    train_dl, val_dl = make(args.real, synthetic, args.ratio, args.crop, args.batch_size, args.steps, args.seed)
    task = SemanticSegmentationTask(
        model="unet",
        backbone="resnet18",
        weights=None,
        in_channels=real.bands,
        num_classes=real.scheme.num_classes,
        ignore_index=255,
        lr=1e-3,
    )
    trainer = pl.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=4,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(task, train_dataloaders=train_dl, val_dataloaders=val_dl)
        metrics = trainer.validate(task, dataloaders=val_dl, verbose=False)[0]
    kind = "TorchGeo RasterDatasets + GeoSamplers" if real.georeferenced else "per-file datasets"
    print(f"pipeline: {kind}; real {args.real}, synthetic {[str(s) for s in synthetic]}, ratio {args.ratio}")
    print(
        f"trained {trainer.global_step} steps; validation on real tiles: "
        + ", ".join(f"{k} {float(v):.4f}" for k, v in sorted(metrics.items()))
    )
    if tmp is not None:
        tmp.cleanup()
    return {k: float(v) for k, v in metrics.items()} | {"steps": float(trainer.global_step)}


if __name__ == "__main__":
    main()
