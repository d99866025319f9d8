"""rsaug tile sets in other frameworks: TorchGeo datasets and samplers, a real/synthetic mixing data module.

Everything lives in :mod:`rsaug.integrations.torchgeo` (importing it imports TorchGeo and Lightning); see that
module for how to combine real and synthetic tiles correctly.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""

from __future__ import annotations

from rsaug.integrations.torchgeo import (
    GeoSampledDataset,
    MixingSampler,
    RandomCrop,
    RealSyntheticDataModule,
    TileSetDataset,
    TileSetImages,
    TileSetMasks,
    collate_samples,
    geo_dataset,
    geo_datasets,
    select_rows,
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
