"""TorchGeo integration for rsaug tile sets (real and synthetic) and a real/synthetic mixing data module.

Three ways to read a tile set (``rsaug tile`` or ``rsaug synthesize`` output):

* :class:`TileSetImages` / :class:`TileSetMasks`: TorchGeo :class:`~torchgeo.datasets.RasterDataset` subclasses
  for **georeferenced** tile sets. Combine them with ``&`` (:func:`geo_dataset` does it) and sample them with any
  TorchGeo sampler (``RandomGeoSampler``, ``GridGeoSampler``, also at the tile size: footprints are exact on the
  pixel grid) or data module; :func:`grid_sampler` / :func:`random_sampler` add a one-line error when no patch
  fits, :class:`TileSampler` yields whole tiles by id. Samples: ``image`` float32
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import rasterio
import shapely
import torch
from pyproj import CRS
from rasterio.errors import NotGeoreferencedWarning
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Sampler
from torchgeo.datasets import IntersectionDataset, RasterDataset
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from rsaug.core.errors import InputError
from rsaug.core.runtime import quiet
from rsaug.io.tileset import TileSet, count_column, read_raster

Transform = Callable[[dict[str, Any]], dict[str, Any]]

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

        Footprints and resolution are snapped to the tiles' pixel grid (:func:`snap_footprints`, unless ``crs``
        warps the tiles), so ``GridGeoSampler(ds, size=tile, stride=tile)`` yields every tile once and
        ``RandomGeoSampler(ds, size=tile)`` whole tiles. ``footprints`` maps tile ids to their footprints.

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
        sizes = {os.path.normpath(f): (int(w), int(h)) for f, w, h in zip(files, rows["width"], rows["height"])}
        ids = {os.path.normpath(f): str(t) for f, t in zip(files, rows["tile_id"])}
        same_crs = crs is None or rows.crs is None or CRS.from_user_input(crs) == CRS.from_user_input(rows.crs)
        if same_crs:
            self._snap_to_pixel_grid([sizes[os.path.normpath(f)] for f in self.index["filepath"]], res)
        #: Footprint ``(xmin, ymin, xmax, ymax)`` of every tile in the dataset's CRS, by tile id (what a query for
        #: the whole tile must ask for; see :class:`TileSampler`).
        self.footprints: dict[str, tuple[float, float, float, float]] = {
            ids[os.path.normpath(f)]: tuple(float(v) for v in g.bounds)  # type: ignore[misc]
            for f, g in zip(self.index["filepath"], self.index.geometry)
        }

    def _snap_to_pixel_grid(self, sizes: list[tuple[int, int]], res: Any) -> None:
        """Make footprints and resolution exact in floating point (see :func:`snap_footprints`)."""
        bounds = np.asarray(self.index.geometry.bounds, dtype=np.float64)
        snapped, grid_res = snap_footprints(bounds, np.asarray(sizes, dtype=np.float64))
        self.index = self.index.set_geometry([shapely.box(*b) for b in snapped], crs=self.index.crs)
        if not grid_res:
            return
        if res is None:
            self._res = grid_res[0]
            return
        given = (float(res), float(res)) if isinstance(res, (int, float)) else (float(res[0]), float(res[1]))
        for r in grid_res:  # a resolution equal to the tiles' own (to 1e-9) becomes the exact one
            if all(abs(g - x) <= 1e-9 * abs(x) for g, x in zip(given, r)):
                self._res = r
                return


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


def snap_footprints(
    bounds: np.ndarray, sizes: np.ndarray, tolerance: float = 0.01
) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Footprints on an exact pixel grid: ``xmax - xmin == width * xres`` holds in floating point.

    TorchGeo's samplers compare a footprint's extent with ``size * res`` and step through it in multiples of
    ``res``. Footprints read from the GeoTIFFs miss that by a few ulps (``673158.8517843193 - 673116.3494798561``
    is ``42.502304463181645``, ``128 * 0.332049253618834`` is ``42.50230446321075``), so a grid at the tile size
    finds no tile. Here every coordinate and resolution is rounded to a multiple of ``q``, the spacing of doubles
    just above the largest coordinate: then every sum and product the samplers form is exact. Tiles on one pixel
    grid (same resolution, offsets a whole number of pixels apart, e.g. the tiles of one scene) share the grid's
    origin, so neighbours share their edges exactly. The shift is far below a pixel (``~1e-7`` pixels).

    Args:
        bounds: ``(n, 4)`` footprints ``xmin, ymin, xmax, ymax`` of north-up tiles.
        sizes: ``(n, 2)`` tile sizes in pixels ``width, height``.
        tolerance: Largest offset from a grid, in pixels, of a tile counted on that grid.

    Returns:
        The snapped ``(n, 4)`` footprints and the exact resolution ``(xres, yres)`` of each pixel grid found, the
        grid of the first tile first.
    """
    bounds = np.asarray(bounds, dtype=np.float64)
    out = bounds.copy()
    if len(bounds) == 0:
        return out, []
    w, h = sizes[:, 0], sizes[:, 1]
    xres, yres = (bounds[:, 2] - bounds[:, 0]) / w, (bounds[:, 3] - bounds[:, 1]) / h
    q = 2.0 ** (math.frexp(float(np.abs(bounds).max()))[1] + 1 - 52)
    grids: list[tuple[float, float]] = []
    gx, gy = np.zeros(len(bounds)), np.zeros(len(bounds))
    todo = np.ones(len(bounds), dtype=bool)
    while todo.any():
        i = int(np.argmax(todo))
        rx, ry = round(xres[i] / q) * q, round(yres[i] / q) * q
        ox, oy = round(bounds[i, 0] / q) * q, round(bounds[i, 3] / q) * q
        on = todo.copy()
        if rx > 0 and ry > 0:
            kx, ky = (bounds[:, 0] - ox) / rx, (bounds[:, 3] - oy) / ry
            on &= (np.abs(xres - rx) <= 1e-6 * rx) & (np.abs(yres - ry) <= 1e-6 * ry)
            on &= (np.abs(kx - np.round(kx)) <= tolerance) & (np.abs(ky - np.round(ky)) <= tolerance)
            on[i] = True
            left, top = ox + np.round(kx[on]) * rx, oy + np.round(ky[on]) * ry
            out[on] = np.stack([left, top - h[on] * ry, left + w[on] * rx, top], axis=1)
            gx[on], gy[on] = rx, ry
            grids.append((float(rx), float(ry)))
        todo &= ~on
    exact = (out[:, 2] - out[:, 0] == w * gx) & (out[:, 3] - out[:, 1] == h * gy)
    out[~exact] = bounds[~exact]  # not representable (absurd resolutions): the file's own footprint
    return out, grids


class GeoSampledDataset(Dataset):
    """A map-style view of a GeoDataset through a GeoSampler: item ``i`` is ``dataset[query_i]``.

    The sampler's queries are drawn once at construction (call :meth:`resample` for fresh random queries).
    This turns each (dataset, sampler) pair into an ordinary torch dataset that can be concatenated with others
    (``ConcatDataset``) without ever merging rasters of different tile sets.

    Args:
        dataset: A TorchGeo GeoDataset (e.g. :func:`geo_dataset`).
        sampler: A GeoSampler over ``dataset`` (e.g. ``RandomGeoSampler(dataset, size=64, length=100)``,
            :class:`TileSampler`).
        synthetic: Value of the ``synthetic`` key added to every sample (default: from the dataset).

    Raises:
        InputError: If the sampler cannot produce any sample (see :func:`check_sampler`).
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
        self.queries = list(check_sampler(sampler))

    def resample(self) -> None:
        """Draw a new list of queries from the sampler."""
        self.queries = list(self.sampler)

    def __len__(self) -> int:
        return len(self.queries)

    def __getitem__(self, i: int) -> dict[str, Any]:
        sample = dict(self.dataset[self.queries[i]])
        sample["synthetic"] = torch.tensor(self.synthetic)
        return sample


# ====================================================================== samplers
def _tileset_rasters(dataset: Any) -> list[_TileSetRaster]:
    """The rsaug RasterDatasets inside ``dataset`` (itself, or the parts of ``&`` / ``|`` combinations)."""
    if isinstance(dataset, _TileSetRaster):
        return [dataset]
    return [r for d in getattr(dataset, "datasets", []) for r in _tileset_rasters(d)]


def check_sampler(sampler: Any) -> Any:
    """Raise a one-line error when a TorchGeo sampler cannot produce any sample; return it otherwise.

    A ``GridGeoSampler`` or ``RandomGeoSampler`` whose patch is larger than every footprint of its dataset is
    empty (TorchGeo then yields an empty DataLoader, or fails inside ``torch.multinomial``).

    Args:
        sampler: A TorchGeo ``GeoSampler`` (other samplers pass unchecked unless they are empty).

    Returns:
        ``sampler``.

    Raises:
        InputError: If the sampler has no sample to give.
    """
    if isinstance(sampler, RandomGeoSampler):
        empty = len(sampler.bounds) == 0
    else:
        try:
            empty = len(sampler) == 0
        except TypeError:  # samplers without a length
            return sampler
    if not empty:
        return sampler
    size = getattr(sampler, "size", None)
    if size is None:
        raise InputError(None, "the sampler has no sample to give (empty region or dataset)")
    xres, yres = sampler.res
    extents = [(b[2] - b[0], b[3] - b[1]) for b in (g.bounds for g in sampler.index.geometry)]
    width = max((e[0] for e in extents), default=0.0) / xres
    height = max((e[1] for e in extents), default=0.0) / yres
    raise InputError(
        None,
        f"a patch of {size[1] / xres:g} x {size[0] / yres:g} px is larger than every tile "
        f"(largest {round(width)} x {round(height)} px): no sample can be drawn; ask for a patch of at most the "
        "tile size",
    )


def grid_sampler(
    dataset: Any, size: float | tuple[float, float], stride: float | tuple[float, float] | None = None, **kwargs: Any
) -> GridGeoSampler:
    """TorchGeo's ``GridGeoSampler``, checked by :func:`check_sampler`.

    On rsaug datasets a grid with ``size`` and ``stride`` equal to the tile size yields every tile exactly once.

    Args:
        dataset: A GeoDataset (e.g. :func:`geo_dataset`).
        size: Patch size (pixels unless ``units=Units.CRS``).
        stride: Step between patches (default: ``size``).
        **kwargs: Passed to ``GridGeoSampler`` (``roi``, ``toi``, ``units``).

    Raises:
        InputError: If the patch is larger than every tile.
    """
    return check_sampler(GridGeoSampler(dataset, size=size, stride=stride, **kwargs))


def random_sampler(
    dataset: Any, size: float | tuple[float, float], length: int | None = None, **kwargs: Any
) -> RandomGeoSampler:
    """TorchGeo's ``RandomGeoSampler``, checked by :func:`check_sampler`.

    Patches lie inside one tile, on its pixel grid; at the tile size each patch is a whole tile.

    Args:
        dataset: A GeoDataset (e.g. :func:`geo_dataset`).
        size: Patch size (pixels unless ``units=Units.CRS``).
        length: Patches per epoch (default: TorchGeo's).
        **kwargs: Passed to ``RandomGeoSampler`` (``roi``, ``toi``, ``units``, ``generator``).

    Raises:
        InputError: If the patch is larger than every tile.
    """
    return check_sampler(RandomGeoSampler(dataset, size=size, length=length, **kwargs))


ClassWeights = str | Mapping[str, float] | Sequence[float] | None


class TileSampler(Sampler[Any]):
    """Whole tiles of an rsaug GeoDataset by tile id: a seeded shuffle, optionally weighted by class.

    Yields TorchGeo queries ``(slice(xmin, xmax), slice(ymin, ymax), slice(tmin, tmax))`` of whole tile
    footprints, so ``DataLoader(dataset, sampler=TileSampler(dataset), collate_fn=stack_samples)`` gives one tile
    per sample; with ``batch_size`` it yields lists of queries for ``batch_sampler=``. Without ``class_weights``
    each epoch is a permutation of the tiles (every tile once); with them, ``num_samples`` tiles are drawn with
    replacement, tile ``i`` with probability proportional to ``sum_c w_c * share_ic`` (``share_ic``: the share
    of its labelled pixels in class ``c``, from the index's ``px_<class>`` columns). Deterministic for
    ``(seed, epoch)``.

    Args:
        dataset: A GeoDataset made of :class:`TileSetImages` / :class:`TileSetMasks` (e.g. :func:`geo_dataset`).
        split: Keep tiles of this split only (``None``: every tile of the dataset).
        shuffle: Shuffle (unweighted sampling); ``False`` keeps the index order.
        seed: Base seed.
        class_weights: ``None``; ``"inverse"`` (``w_c = 1 / frequency of c`` over the selected tiles, so tiles
            holding rare classes are drawn more often); a mapping class name -> weight (others 0); or ``K``
            weights in class order.
        num_samples: Tiles per epoch (default: the number of selected tiles).
        batch_size: Yield lists of this many queries (for ``batch_sampler=``); ``None`` yields single queries.
        drop_last: With ``batch_size``: drop a last, incomplete batch.
        tile_ids: Restrict to these tile ids.

    Raises:
        InputError: If the dataset holds no rsaug tiles, the selection is empty, or the weights are invalid.
    """

    def __init__(
        self,
        dataset: Any,
        split: str | None = None,
        shuffle: bool = True,
        seed: int = 0,
        class_weights: ClassWeights = None,
        num_samples: int | None = None,
        batch_size: int | None = None,
        drop_last: bool = False,
        tile_ids: Sequence[str] | None = None,
    ) -> None:
        rasters = _tileset_rasters(dataset)
        if not rasters:
            raise InputError(None, "TileSampler needs a dataset made of TileSetImages / TileSetMasks")
        first = rasters[0]
        ids = [t for t in first.footprints if all(t in r.footprints for r in rasters[1:])]
        index = first.tileset.index.set_index(first.tileset.index["tile_id"].astype(str))
        if split is not None:
            ids = [t for t in ids if index.at[t, "split"] == split]
        if tile_ids is not None:
            wanted = {str(t) for t in tile_ids}
            ids = [t for t in ids if t in wanted]
        if not ids:
            raise InputError(first.tileset.root, "no tiles to sample" + (f" in split {split!r}" if split else ""))
        if batch_size is not None and batch_size < 1:
            raise InputError(None, f"batch_size must be at least 1, got {batch_size}")
        self.tile_ids = ids
        self.footprints = {t: first.footprints[t] for t in ids}
        _, _, t = dataset.bounds
        self.time = slice(t.start, t.stop)
        self.weights = _tile_weights(first.tileset, index.loc[ids], class_weights)
        self.shuffle, self.seed, self.epoch = shuffle, int(seed), 0
        self.num_samples = len(ids) if num_samples is None else int(num_samples)
        self.batch_size, self.drop_last = batch_size, drop_last
        self.last_tile_ids: list[str] = []

    def query(self, tile_id: str) -> tuple[slice, slice, slice]:
        """The TorchGeo query of a whole tile."""
        xmin, ymin, xmax, ymax = self.footprints[tile_id]
        return slice(xmin, xmax), slice(ymin, ymax), self.time

    def set_epoch(self, epoch: int) -> None:
        """Use a different (deterministic) draw for each epoch."""
        self.epoch = int(epoch)

    def draw(self) -> list[str]:
        """The tile ids of this epoch, in sampling order."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        n = len(self.tile_ids)
        if self.weights is not None:
            order = torch.multinomial(self.weights, self.num_samples, replacement=True, generator=g)
        elif self.shuffle:
            order = _draw(n, self.num_samples, g)
        else:
            order = torch.arange(self.num_samples) % n
        return [self.tile_ids[i] for i in order.tolist()]

    def __iter__(self) -> Iterator[Any]:
        ids = self.draw()
        self.last_tile_ids = ids
        if self.batch_size is None:
            yield from (self.query(t) for t in ids)
            return
        for start in range(0, len(ids), self.batch_size):
            batch = ids[start : start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield [self.query(t) for t in batch]

    def __len__(self) -> int:
        if self.batch_size is None:
            return self.num_samples
        full, rest = divmod(self.num_samples, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


def _tile_weights(ts: TileSet, rows: Any, class_weights: ClassWeights) -> torch.Tensor | None:
    """Sampling weight of each row: ``sum_c w_c * share_c`` (``None`` without class weights)."""
    if class_weights is None:
        return None
    names = list(ts.scheme.names)
    cols = [count_column(n) for n in names]
    missing = [c for c in cols if c not in rows.columns]
    if missing:
        raise InputError(ts.root, f"the index has no pixel counts ({missing[0]}): class weights need them")
    counts = rows[cols].to_numpy(dtype=np.float64)
    if isinstance(class_weights, str):
        if class_weights != "inverse":
            raise InputError(None, f"unknown class weighting {class_weights!r} (use 'inverse', a mapping or a list)")
        total = counts.sum(axis=0)
        w = np.divide(total.sum(), total, out=np.zeros_like(total), where=total > 0)
    elif isinstance(class_weights, Mapping):
        unknown = sorted(set(class_weights) - set(names))
        if unknown:
            raise InputError(None, f"class weights name unknown classes: {', '.join(unknown)}")
        w = np.array([float(class_weights.get(n, 0.0)) for n in names])
    else:
        w = np.asarray(list(class_weights), dtype=np.float64)
        if w.shape != (len(names),):
            raise InputError(None, f"{len(w)} class weights for {len(names)} classes")
    if (w < 0).any() or not np.isfinite(w).all():
        raise InputError(None, "class weights must be finite and non-negative")
    labelled = counts.sum(axis=1, keepdims=True)
    shares = np.divide(counts, labelled, out=np.zeros_like(counts), where=labelled > 0)
    weights = shares @ w
    if not (weights > 0).any():
        raise InputError(ts.root, "every selected tile has weight 0 under these class weights")
    return torch.as_tensor(weights, dtype=torch.float64)


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
        from pytorch_lightning import LightningDataModule as LegacyLightningDataModule

        return LegacyLightningDataModule
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
        assert self.train_dataset is not None  # built by setup()
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
