"""TorchGeo integration for rsaug tile sets (real and synthetic) and a real/synthetic mixing data module.

Three ways to read a tile set (``rsaug tile`` or ``rsaug synthesize`` output):

* :class:`TileSetImages` / :class:`TileSetMasks`: TorchGeo :class:`~torchgeo.datasets.RasterDataset` subclasses
  for **georeferenced** tile sets. Combine them with ``&`` (:func:`geo_dataset` does it) and sample them with any
  TorchGeo sampler (``RandomGeoSampler``, ``GridGeoSampler``) or data module. Samples: ``image`` float32
  ``(C, H, W)`` (raw values, cast), ``mask`` int64 ``(H, W)`` in the internal convention (``0..K-1``, 255 =
  unknown), ``crs`` (``pyproj.CRS``), ``bounds``.
* :class:`TileSetDataset`: a per-file (map-style) dataset for any tile set, with or without georeferencing
  (e.g. GID tiles). One item per tile, TorchGeo-style sample dicts (``image``, ``mask`` as above, plus
  ``tile_id``, ``synthetic`` and, for georeferenced sets, ``crs`` and ``bounds``).
* :class:`RealSyntheticDataModule`: a Lightning data module that mixes the real training split with one or more
  synthetic tile sets at a chosen ratio (:class:`MixingSampler`); validation and test use real tiles only.

**Combining real and synthetic data correctly.** A synthetic tile has exactly the footprint of its source tile.
TorchGeo merges all files of one ``RasterDataset`` that intersect a query into a single read, and ``a | b``
(``UnionDataset``) merges overlapping samples with a pixel-wise maximum, so putting real and synthetic tiles into
one ``RasterDataset`` or combining them with ``|`` would silently blend a real and a synthetic image. The
recommended way (and what everything here does):

1. one dataset per tile set (and, for synthetic sets with several samples per mask, one per sample number:
   ``TileSetImages(syn, sample=k)``; the constructor refuses a selection in which two synthetic tiles share a
   footprint);
2. sample each dataset on its own (a GeoSampler per dataset, wrapped by :class:`GeoSampledDataset`, or the
   per-file :class:`TileSetDataset`);
3. combine the *samples*, never the rasters: ``torch.utils.data.ConcatDataset`` plus :class:`MixingSampler`
   for a chosen ratio. Never use ``|`` between a real and a synthetic dataset.

The default torch collate rejects ``pyproj.CRS`` values: use :func:`collate_samples` (drops ``crs``, stacks
tensors, keeps strings as lists).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler
from torchgeo.datasets import IntersectionDataset, RasterDataset

from rsaug.core.errors import InputError
from rsaug.core.runtime import quiet
from rsaug.io.tileset import TileSet, read_raster

Transform = Callable[[dict[str, Any]], dict[str, Any]]

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


def _open(tiles: TileSet | str | os.PathLike[str]) -> TileSet:
    return tiles if isinstance(tiles, TileSet) else TileSet.open(tiles)


def select_rows(ts: TileSet, split: str | None = None, sample: int | None = None) -> Any:
    """Index rows of a tile set, optionally one split and (synthetic sets) one sample number.

    Args:
        ts: The tile set.
        split: ``train``/``val``/``test``/``reserved`` or ``None`` for all rows.
        sample: Synthetic sets only: keep rows with this ``sample`` number.

    Raises:
        InputError: If ``sample`` is given for a real tile set, or nothing is selected.
    """
    rows = ts.index if split is None else ts.index[ts.index["split"] == split]
    if sample is not None:
        if "sample" not in rows.columns:
            raise InputError(ts.root, "sample= selects synthetic samples, but this tile set has no 'sample' column")
        rows = rows[rows["sample"].astype(int) == int(sample)]
    if len(rows) == 0:
        what = f"split {split!r}" if split else "the tile set"
        raise InputError(ts.root, f"no tiles in {what}" + (f" with sample {sample}" if sample is not None else ""))
    return rows.reset_index(drop=True)


# ====================================================================== TorchGeo RasterDatasets
class _TileSetRaster(RasterDataset):
    """Shared constructor of :class:`TileSetImages` and :class:`TileSetMasks`."""

    filename_glob = "*.tif"
    _column = "image"

    def __init__(
        self,
        tiles: TileSet | str | os.PathLike[str],
        split: str | None = "train",
        sample: int | None = None,
        crs: Any = None,
        res: float | tuple[float, float] | None = None,
        transforms: Transform | None = None,
        cache: bool = True,
    ) -> None:
        """Expose one split of a georeferenced tile set to TorchGeo.

        Args:
            tiles: Tile-set directory or opened :class:`~rsaug.io.tileset.TileSet`.
            split: Split to load (``None``: every tile).
            sample: Synthetic sets with several samples per mask: which sample number to load.
            crs: CRS to warp to (default: the tile set's).
            res: Resolution to resample to (default: the tiles').
            transforms: Applied to each sample dict.
            cache: Cache file handles (TorchGeo option).

        Raises:
            InputError: If the tile set is not georeferenced, or two selected synthetic tiles share a footprint
                (they would be merged into one read: pass ``sample=``).
        """
        ts = _open(tiles)
        if not ts.georeferenced:
            raise InputError(
                ts.root,
                "tile set has no georeferencing: use rsaug.integrations.torchgeo.TileSetDataset "
                "(per-file dataset) instead of a TorchGeo RasterDataset",
            )
        rows = select_rows(ts, split, sample)
        if ts.synthetic and "source_tile" in rows.columns and rows["source_tile"].duplicated().any():
            raise InputError(
                ts.root,
                "several synthetic samples share a footprint and TorchGeo would merge them: "
                "pass sample=k (one dataset per sample number, see geo_datasets)",
            )
        self.tileset = ts
        self.split = split
        self.sample = sample
        self.synthetic = ts.synthetic
        files = [str(ts.root / p) for p in rows[self._column]]
        missing = [f for f in files if not os.path.isfile(f)]
        if missing:
            raise InputError(missing[0], f"tile file not found ({len(missing)} missing)")
        super().__init__(paths=files, crs=crs, res=res, transforms=transforms, cache=cache)


class TileSetImages(_TileSetRaster):
    """Image tiles of a georeferenced rsaug tile set as a TorchGeo ``RasterDataset`` (key ``image``, float32)."""

    is_image = True
    _column = "image"


class TileSetMasks(_TileSetRaster):
    """Mask tiles of a georeferenced rsaug tile set (key ``mask``, int64, internal convention, 255 = unknown)."""

    is_image = False
    _column = "mask"


def geo_dataset(
    tiles: TileSet | str | os.PathLike[str],
    split: str | None = "train",
    sample: int | None = None,
    transforms: Transform | None = None,
    **kwargs: Any,
) -> IntersectionDataset:
    """``TileSetImages(...) & TileSetMasks(...)`` for one split (and one synthetic sample number).

    Args:
        tiles: Tile-set directory or opened tile set.
        split: Split to load.
        sample: Synthetic sample number (needed when a synthetic set has several samples per mask).
        transforms: Applied to the combined sample dict.
        **kwargs: Passed to both RasterDatasets (``crs``, ``res``, ``cache``).
    """
    ts = _open(tiles)
    images = TileSetImages(ts, split, sample, **kwargs)
    masks = TileSetMasks(
        ts,
        split,
        sample,
        crs=images.crs,
        res=images.res,
        **{k: v for k, v in kwargs.items() if k not in ("crs", "res")},
    )
    ds = images & masks
    ds.transforms = transforms
    return ds


def geo_datasets(
    tiles: TileSet | str | os.PathLike[str], split: str | None = "train", **kwargs: Any
) -> list[IntersectionDataset]:
    """One :func:`geo_dataset` per synthetic sample number (a single one for real tile sets).

    Each returned dataset holds at most one file per footprint, so no two tiles are ever merged.
    """
    ts = _open(tiles)
    rows = select_rows(ts, split)
    if ts.synthetic and "sample" in rows.columns:
        return [geo_dataset(ts, split, int(s), **kwargs) for s in sorted(rows["sample"].astype(int).unique())]
    return [geo_dataset(ts, split, None, **kwargs)]


class GeoSampledDataset(Dataset):
    """A map-style view of a GeoDataset through a GeoSampler: item ``i`` is ``dataset[query_i]``.

    The sampler's queries are drawn once at construction (call :meth:`resample` for fresh random queries).
    This turns each (dataset, sampler) pair into an ordinary torch dataset that can be concatenated with others
    (``ConcatDataset``) without ever merging rasters of different tile sets.

    Args:
        dataset: A TorchGeo GeoDataset (e.g. :func:`geo_dataset`).
        sampler: A GeoSampler over ``dataset`` (e.g. ``RandomGeoSampler(dataset, size=64, length=100)``).
        synthetic: Value of the ``synthetic`` key added to every sample (default: from the dataset).
    """

    def __init__(self, dataset: Any, sampler: Any, synthetic: bool | None = None) -> None:
        self.dataset = dataset
        self.sampler = sampler
        if synthetic is None:
            synthetic = bool(
                getattr(dataset, "synthetic", False)
                or any(getattr(d, "synthetic", False) for d in getattr(dataset, "datasets", []))
            )
        self.synthetic = synthetic
        self.queries = list(sampler)

    def resample(self) -> None:
        """Draw a new list of queries from the sampler."""
        self.queries = list(self.sampler)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = dict(self.dataset[self.queries[i]])
        sample["synthetic"] = torch.tensor(self.synthetic)
        return sample


# ====================================================================== per-file dataset
class TileSetDataset(Dataset):
    """One item per tile of an rsaug tile set (georeferenced or not), as a TorchGeo-style sample dict.

    Keys: ``image`` float32 ``(C, H, W)`` (raw values cast to float, divided by ``image_scale``), ``mask`` int64
    ``(H, W)`` (internal convention, 255 = unknown), ``tile_id`` (str), ``synthetic`` (bool tensor), and for
    georeferenced sets ``crs`` (``pyproj.CRS``) and ``bounds`` (float64 ``[xmin, ymin, xmax, ymax]``).

    Args:
        tiles: Tile-set directory or opened tile set.
        split: Split to load (``None``: every tile).
        transforms: Applied to each sample dict (e.g. :class:`RandomCrop`, kornia augmentations).
        image_scale: Divide images by this (``None``: keep raw values; ``"auto"``: the dtype's maximum for
            unsigned integer images, else 1).
        sample: Synthetic sets: keep one sample number only.
    """

    def __init__(
        self,
        tiles: TileSet | str | os.PathLike[str],
        split: str | None = "train",
        transforms: Transform | None = None,
        image_scale: float | str | None = None,
        sample: int | None = None,
    ) -> None:
        self.tileset = _open(tiles)
        self.rows = select_rows(self.tileset, split, sample)
        self.split = split
        self.transforms = transforms
        self.synthetic = self.tileset.synthetic
        self.scale = _resolve_scale(image_scale, self.tileset.dtype)
        self.crs = None
        if self.tileset.georeferenced:
            from pyproj import CRS

            crs = self.tileset.description.get("crs")
            if crs is None and getattr(self.rows, "crs", None) is not None:
                crs = self.rows.crs
            self.crs = CRS.from_user_input(crs) if crs is not None else None
        self.image_paths = [self.tileset.root / p for p in self.rows["image"]]
        self.mask_paths = [self.tileset.root / p for p in self.rows["mask"]]
        self.tile_ids = [str(t) for t in self.rows["tile_id"]]
        missing = [p for p in self.image_paths + self.mask_paths if not p.is_file()]
        if missing:
            raise InputError(missing[0], f"tile file not found ({len(missing)} missing)")

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        image = read_raster(self.image_paths[i]).astype(np.float32)
        if self.scale != 1.0:
            image /= self.scale
        mask = read_raster(self.mask_paths[i])[0].astype(np.int64)
        sample: dict[str, Any] = {
            "image": torch.from_numpy(image),
            "mask": torch.from_numpy(mask),
            "tile_id": self.tile_ids[i],
            "synthetic": torch.tensor(self.synthetic),
        }
        if self.crs is not None:
            with quiet(NotGeoreferencedWarning), rasterio.open(self.image_paths[i]) as src:
                b = src.bounds
            sample["crs"] = self.crs
            sample["bounds"] = torch.tensor([b.left, b.bottom, b.right, b.top], dtype=torch.float64)
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


def _resolve_scale(image_scale: float | str | None, dtype: str) -> float:
    if image_scale is None:
        return 1.0
    if image_scale == "auto":
        dt = np.dtype(dtype)
        return float(np.iinfo(dt).max) if np.issubdtype(dt, np.unsignedinteger) else 1.0
    return float(image_scale)


class RandomCrop:
    """Random ``size`` x ``size`` crop of ``image`` and ``mask`` in a sample dict (torch's global RNG).

    Tiles smaller than ``size`` are padded (image with 0, mask with 255 = unknown).
    """

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        img, mask = sample["image"], sample["mask"]
        h, w = mask.shape[-2:]
        s = self.size
        if h < s or w < s:
            ph, pw = max(0, s - h), max(0, s - w)
            img = torch.nn.functional.pad(img, (0, pw, 0, ph), value=0.0)
            mask = torch.nn.functional.pad(mask, (0, pw, 0, ph), value=255)
            h, w = mask.shape[-2:]
        top = int(torch.randint(0, h - s + 1, (1,)))
        left = int(torch.randint(0, w - s + 1, (1,)))
        out = dict(sample)
        out["image"] = img[..., top : top + s, left : left + s]
        out["mask"] = mask[..., top : top + s, left : left + s]
        return out


def collate_samples(batch: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Collate sample dicts: stack tensors, keep strings as lists, drop ``crs`` (``pyproj.CRS``) and other
    non-tensor values the default collate would reject; ``bounds`` slices are kept as a list.
    """
    out: dict[str, Any] = {}
    keys = [k for k in batch[0] if k != "crs"]
    for k in keys:
        vals = [b[k] for b in batch]
        if all(isinstance(v, torch.Tensor) for v in vals):
            try:
                out[k] = torch.stack(vals)
            except RuntimeError:
                out[k] = vals
        elif all(isinstance(v, (str, int, float, bool)) for v in vals) or k == "bounds":
            out[k] = list(vals)
    return out


# ====================================================================== mixing
class MixingSampler(Sampler[int]):
    """Indices into ``ConcatDataset([real, synthetic])`` with a fixed share of synthetic samples per epoch.

    Each epoch draws ``n_real_draw = round(num_samples * (1 - ratio))`` real and ``num_samples - n_real_draw``
    synthetic indices (without replacement while a pool lasts, cycling through fresh permutations otherwise) and
    shuffles them together; deterministic for ``(seed, epoch)``.

    Args:
        n_real: Number of real samples (the first ``n_real`` indices).
        n_synthetic: Number of synthetic samples (the following indices).
        ratio: Share of synthetic samples per epoch, in ``[0, 1]``; ``None``: every real and every synthetic
            sample once per epoch.
        num_samples: Samples per epoch (default: ``n_real / (1 - ratio)``, so each real tile is seen once; for
            ``ratio = 1``: ``n_synthetic``).
        seed: Base seed.
    """

    def __init__(
        self, n_real: int, n_synthetic: int, ratio: float | None = None, num_samples: int | None = None, seed: int = 0
    ) -> None:
        if ratio is not None and not 0.0 <= ratio <= 1.0:
            raise InputError(None, f"synthetic ratio must be in [0, 1], got {ratio}")
        if ratio is not None and ratio > 0 and n_synthetic == 0:
            raise InputError(None, "a synthetic ratio above 0 needs synthetic tiles")
        if (ratio is None or ratio < 1) and n_real == 0:
            raise InputError(None, "no real training tiles")
        self.n_real, self.n_syn, self.ratio, self.seed, self.epoch = n_real, n_synthetic, ratio, seed, 0
        if num_samples is None:
            if ratio is None:
                num_samples = n_real + n_synthetic
            elif ratio >= 1.0:
                num_samples = n_synthetic
            else:
                num_samples = round(n_real / (1.0 - ratio))
        self.num_samples = int(num_samples)

    @property
    def counts(self) -> tuple[int, int]:
        """(real, synthetic) samples per epoch."""
        if self.ratio is None:
            scale = self.num_samples / max(self.n_real + self.n_syn, 1)
            n_real = round(self.n_real * scale)
        else:
            n_real = round(self.num_samples * (1.0 - self.ratio))
        return n_real, self.num_samples - n_real

    def set_epoch(self, epoch: int) -> None:
        """Use a different (deterministic) draw for each epoch."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n_real, n_syn = self.counts
        real = _draw(self.n_real, n_real, g)
        syn = _draw(self.n_syn, n_syn, g) + self.n_real
        idx = torch.cat([real, syn])
        idx = idx[torch.randperm(len(idx), generator=g)]
        return iter(idx.tolist())


def _draw(pool: int, n: int, g: torch.Generator) -> torch.Tensor:
    if n <= 0 or pool <= 0:
        return torch.zeros(0, dtype=torch.long)
    reps = math.ceil(n / pool)
    return torch.cat([torch.randperm(pool, generator=g) for _ in range(reps)])[:n]


def _lightning_base() -> type:
    try:
        from lightning.pytorch import LightningDataModule
    except ImportError:  # pragma: no cover
        from pytorch_lightning import LightningDataModule  # type: ignore[no-redef]
    return LightningDataModule


class RealSyntheticDataModule(_lightning_base()):  # type: ignore[misc]
    """Lightning data module: real training tiles mixed with synthetic tiles at a chosen ratio.

    Training uses ``ConcatDataset([real train split, synthetic train split(s)])`` with a :class:`MixingSampler`;
    validation and test use the real tile set's ``val`` and ``test`` splits only. Batches are sample dicts
    (``image`` float32 ``(B, C, H, W)``, ``mask`` int64 ``(B, H, W)``, ``tile_id``, ``synthetic``), collated with
    :func:`collate_samples` (``crs`` dropped), so TorchGeo's ``SemanticSegmentationTask`` can train on it directly.

    Args:
        real: Real tile set (``rsaug tile`` output).
        synthetic: Synthetic tile set(s) (``rsaug synthesize`` output), or ``None`` / ``[]`` for real only.
        synthetic_ratio: Share of synthetic samples per training epoch (``None``: all real + all synthetic tiles
            once per epoch; ``0``: real only).
        batch_size: Batch size.
        num_workers: DataLoader workers.
        crop_size: Random crops of this size for training and centre-aligned (top-left) crops for evaluation;
            ``None`` keeps whole tiles (they must then all have the same size).
        samples_per_epoch: Training samples per epoch (see :class:`MixingSampler`).
        image_scale: See :class:`TileSetDataset` (default ``"auto"``: uint8 images / 255).
        train_transforms: Extra transform for training samples (after cropping).
        seed: Seed of the mixing sampler.
        train_split: Split used for training (also of the synthetic sets).

    Raises:
        InputError: If a synthetic set has another class scheme or band count than the real set.
    """

    def __init__(
        self,
        real: str | os.PathLike[str] | TileSet,
        synthetic: str | os.PathLike[str] | TileSet | Sequence[str | os.PathLike[str] | TileSet] | None = None,
        synthetic_ratio: float | None = None,
        batch_size: int = 8,
        num_workers: int = 0,
        crop_size: int | None = None,
        samples_per_epoch: int | None = None,
        image_scale: float | str | None = "auto",
        train_transforms: Transform | None = None,
        seed: int = 0,
        train_split: str = "train",
    ) -> None:
        super().__init__()
        self.real = _open(real)
        if synthetic is None:
            syn_list: list[Any] = []
        elif isinstance(synthetic, (str, os.PathLike, TileSet)):
            syn_list = [synthetic]
        else:
            syn_list = list(synthetic)
        self.synthetic = [_open(s) for s in syn_list]
        for s in self.synthetic:
            if not s.scheme.same_classes(self.real.scheme):
                raise InputError(
                    s.root, f"class scheme {s.scheme.name!r} differs from the real tile set's {self.real.scheme.name!r}"
                )
            if s.bands != self.real.bands:
                raise InputError(s.root, f"{s.bands} bands, the real tile set has {self.real.bands}")
        self.synthetic_ratio = synthetic_ratio
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.crop_size = crop_size
        self.samples_per_epoch = samples_per_epoch
        self.image_scale = image_scale
        self.train_transforms = train_transforms
        self.seed = seed
        self.train_split = train_split
        self.train_dataset: ConcatDataset | None = None
        self.sampler: MixingSampler | None = None

    # ------------------------------------------------------------------ helpers
    def _train_transform(self) -> Transform | None:
        steps: list[Transform] = []
        if self.crop_size:
            steps.append(RandomCrop(self.crop_size))
        if self.train_transforms is not None:
            steps.append(self.train_transforms)
        if not steps:
            return None
        return _Compose(steps)

    def _eval_transform(self) -> Transform | None:
        return _TopLeftCrop(self.crop_size) if self.crop_size else None

    def setup(self, stage: str | None = None) -> None:
        """Build the datasets (train: real + synthetic; val/test: real)."""
        tf = self._train_transform()
        real = TileSetDataset(self.real, self.train_split, tf, self.image_scale)
        parts: list[Dataset] = [real]
        n_syn = 0
        if self.synthetic and self.synthetic_ratio != 0:
            for s in self.synthetic:
                ds = TileSetDataset(s, self.train_split, tf, self.image_scale)
                parts.append(ds)
                n_syn += len(ds)
        self.train_dataset = ConcatDataset(parts)
        self.sampler = MixingSampler(
            len(real), n_syn, 0.0 if not n_syn else self.synthetic_ratio, self.samples_per_epoch, self.seed
        )
        ev = self._eval_transform()
        self.val_dataset = self._maybe(self.real, "val", ev)
        self.test_dataset = self._maybe(self.real, "test", ev)

    def _maybe(self, ts: TileSet, split: str, tf: Transform | None) -> TileSetDataset | None:
        if not (ts.index["split"] == split).any():
            return None
        return TileSetDataset(ts, split, tf, self.image_scale)

    def train_dataloader(self) -> DataLoader:
        """Mixed real + synthetic training batches."""
        if self.train_dataset is None:
            self.setup("fit")
        return DataLoader(
            self.train_dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
            drop_last=False,
        )

    def val_dataloader(self) -> DataLoader | list:
        """Real validation tiles (empty list when the real set has no ``val`` split)."""
        if self.train_dataset is None:
            self.setup("fit")
        if self.val_dataset is None:
            return []
        return DataLoader(
            self.val_dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )

    def test_dataloader(self) -> DataLoader | list:
        """Real test tiles (empty list when the real set has no ``test`` split)."""
        if self.train_dataset is None:
            self.setup("test")
        if self.test_dataset is None:
            return []
        return DataLoader(
            self.test_dataset,
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=collate_samples,
        )


class _Compose:
    def __init__(self, steps: list[Transform]) -> None:
        self.steps = steps

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        for s in self.steps:
            sample = s(sample)
        return sample


class _TopLeftCrop:
    """Deterministic crop for evaluation (top-left ``size`` x ``size``, padded like :class:`RandomCrop`)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        s = self.size
        img, mask = sample["image"], sample["mask"]
        h, w = mask.shape[-2:]
        if h < s or w < s:
            img = torch.nn.functional.pad(img, (0, max(0, s - w), 0, max(0, s - h)), value=0.0)
            mask = torch.nn.functional.pad(mask, (0, max(0, s - w), 0, max(0, s - h)), value=255)
        out = dict(sample)
        out["image"], out["mask"] = img[..., :s, :s], mask[..., :s, :s]
        return out
