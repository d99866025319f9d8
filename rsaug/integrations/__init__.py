"""rsaug tile sets in other frameworks: TorchGeo datasets, samplers and a data module.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""
from __future__ import annotations

from rsaug.integrations.torchgeo import (
    select_rows,
    TileSetImages,
    TileSetMasks,
    geo_dataset,
    geo_datasets,
    GeoSampledDataset,
    TileSetDataset,
    RandomCrop,
    collate_samples,
    MixingSampler,
    RealSyntheticDataModule,
)

__all__ = [
    "GeoSampledDataset",
    "MixingSampler",
    "RandomCrop",
    "RealSyntheticDataModule",
    "TileSetDataset",
    "TileSetImages",
    "TileSetMasks",
    "collate_samples",
    "geo_dataset",
    "geo_datasets",
    "select_rows",
]
