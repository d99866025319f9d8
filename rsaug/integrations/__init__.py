"""rsaug tile sets in other frameworks: TorchGeo datasets and samplers, a real/synthetic mixing data module.

TorchGeo's ``GridGeoSampler`` / ``RandomGeoSampler`` work at the tile size on these datasets (footprints and
resolution are exact on the pixel grid, :func:`snap_footprints`); :func:`grid_sampler` / :func:`random_sampler`
build them with a one-line error when no sample fits (:func:`check_sampler`); :class:`TileSampler` yields whole
tiles by id (seeded shuffle, optional class weighting).

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
    TileSampler,
    TileSetDataset,
    TileSetImages,
    TileSetMasks,
    check_sampler,
    collate_samples,
    geo_dataset,
    geo_datasets,
    grid_sampler,
    random_sampler,
    select_rows,
    snap_footprints,
)

__all__ = [
    "GeoSampledDataset",
    "MixingSampler",
    "RandomCrop",
    "RealSyntheticDataModule",
    "TileSampler",
    "TileSetDataset",
    "TileSetImages",
    "TileSetMasks",
    "check_sampler",
    "collate_samples",
    "geo_dataset",
    "geo_datasets",
    "grid_sampler",
    "random_sampler",
    "select_rows",
    "snap_footprints",
]
