"""Segmentation training data: tiles in memory, the segmenter's input standardisation, seeded draw plans, classic
augmentation."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError
from rsaug.io.normalization import percentile_range
from rsaug.io.tileset import TileSet
from rsaug.segmentation.config import MixRecipe


@dataclass
class TileArrays:
    """Tiles of one source held in memory (images in their stored dtype, masks in the internal convention).

    Attributes:
        name: Source name (``real``, a synthetic set name...).
        images: One (C, H, W) array per tile.
        masks: One (H, W) uint8 array per tile.
        tile_ids: Tile ids, aligned with ``images``.
        source_tiles: For synthetic tiles, the id of the real tile whose mask each was generated from.
    """

    name: str
    images: list[np.ndarray]
    masks: list[np.ndarray]
    tile_ids: list[str]
    source_tiles: list[str] = field(default_factory=list)

    def select(self, indices: Sequence[int]) -> TileArrays:
        """The tiles at ``indices`` (same name)."""
        idx = list(indices)
        return TileArrays(
            self.name,
            [self.images[i] for i in idx],
            [self.masks[i] for i in idx],
            [self.tile_ids[i] for i in idx],
            [self.source_tiles[i] for i in idx] if self.source_tiles else [],
        )

    def __len__(self) -> int:
        return len(self.images)


def open_tileset(path: str | os.PathLike[str] | TileSet) -> TileSet:
    """Open a tile set (or pass one through)."""
    return path if isinstance(path, TileSet) else TileSet.open(path)


def load_tiles(ts: TileSet, splits: Sequence[str] | None, name: str) -> TileArrays:
    """Read the tiles of some splits (``None`` = all) into memory.

    Raises:
        InputError: If the selection is empty or a tile cannot be read.
    """
    rows = ts.index if splits is None else ts.index[ts.index["split"].isin(list(splits))]
    if len(rows) == 0:
        what = "any" if splits is None else "/".join(splits)
        raise InputError(ts.root, f"tile set has no {what} tiles")
    images, masks, ids = [], [], []
    sources = [str(v) for v in rows["source_tile"]] if "source_tile" in rows.columns else []
    for _, row in rows.iterrows():
        img = ts.read_image(row)
        msk = ts.read_mask(row)
        if img.shape[1:] != msk.shape:
            raise InputError(ts.image_path(row), f"image {img.shape[1:]} and mask {msk.shape} differ in size")
        images.append(img)
        masks.append(msk)
        ids.append(str(row["tile_id"]))
    return TileArrays(name=name, images=images, masks=masks, tile_ids=ids, source_tiles=sources)


@dataclass
class SegmenterNormalization:
    """Maps stored pixel values to the U-Net input: ``((x - low) / (high - low) - mean) / std`` per band.

    The value range ``low``/``high`` is the same fit as the GAN's :class:`rsaug.io.normalization.Normalization`
    (0..255 for uint8, else the 2nd/98th percentiles of :func:`rsaug.io.normalization.percentile_range`); the
    segmenter then standardises the ``[0, 1]``-scaled values with per-band ``mean``/``std`` instead of mapping
    them to the GAN's ``[-1, 1]``. Saved in ``segmenter.pt`` as a plain dict (:func:`dataclasses.asdict`).
    """

    low: list[float]
    high: list[float]
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, tiles: TileArrays, dtype: str) -> SegmenterNormalization:
        """Fit on (real training) tiles: range 0..255 for uint8 else the 2nd/98th percentiles; then mean/std."""
        if dtype == "uint8":  # exact moments from per-band value counts (no float copy of every pixel)
            bands = tiles.images[0].shape[0]
            counts = np.zeros((bands, 256), dtype=np.int64)
            for im in tiles.images:
                for b in range(bands):
                    counts[b] += np.bincount(im[b].ravel(), minlength=256)
            low = np.zeros(bands)
            high = np.full(bands, 255.0)
            values = np.arange(256, dtype=np.float64) / 255.0
            n = counts.sum(axis=1)
            mean = (counts * values).sum(axis=1) / n
            var = (counts * (values[None, :] - mean[:, None]) ** 2).sum(axis=1) / n
            std = np.maximum(np.sqrt(var), 1e-6)
            return cls(low.tolist(), high.tolist(), mean.tolist(), std.tolist())
        stack = np.concatenate([im.reshape(im.shape[0], -1) for im in tiles.images], axis=1).astype(np.float64)
        low, high = percentile_range(stack)
        scaled = (stack - low[:, None]) / (high - low)[:, None]
        mean = scaled.mean(axis=1)
        std = np.maximum(scaled.std(axis=1), 1e-6)
        return cls(low.tolist(), high.tolist(), mean.tolist(), std.tolist())

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a float tensor (B, C, H, W) of stored values."""
        low, high, mean, std = (
            torch.tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
            for v in (self.low, self.high, self.mean, self.std)
        )
        return ((x.float() - low) / (high - low) - mean) / std

    def apply_model_range(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise generator output in the model range [-1, 1] (see docs/ARCHITECTURE.md)."""
        low = torch.tensor(self.low, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        high = torch.tensor(self.high, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return self.apply((x.float().clamp(-1, 1) + 1) / 2 * (high - low) + low)


#: Former name of :class:`SegmenterNormalization` (kept for existing code and tests).
Normalization = SegmenterNormalization


def classic_augmentation(bands: int) -> Callable[..., dict[str, np.ndarray]]:
    """Albumentations pipeline of the ``classic`` arm: flips, 90-degree rotations, colour jitter.

    RGB images get ``ColorJitter``; other band counts get brightness/contrast changes (ColorJitter is
    defined for three bands only).
    """
    import albumentations as A

    colour = (
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8)
        if bands == 3
        else A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.8)
    )
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=1.0), colour])


@dataclass
class DrawPlan:
    """The exact sequence of training draws of one run (``iterations * batch_size`` entries).

    Attributes:
        source: Index of the source (0 = real, 1 = extra) of each draw.
        tile: Tile index within its source.
        y0, x0: Crop offsets as fractions in [0, 1) (scaled to the tile's free range at read time).
        aug_seed: Seed of the augmentation of each draw.
    """

    source: np.ndarray
    tile: np.ndarray
    y0: np.ndarray
    x0: np.ndarray
    aug_seed: np.ndarray

    def counts(self, n_sources: int) -> list[int]:
        """Number of draws per source."""
        return np.bincount(self.source, minlength=n_sources).tolist()


def make_plan(
    sizes: Sequence[int], fractions: Sequence[float], n_draws: int, seed: int, recipe: MixRecipe | None = None
) -> DrawPlan:
    """Draw sequence: which source and tile each sample comes from, where it is cropped, its augmentation.

    The real source (index 0) is drawn with its own random stream seeded by ``seed`` alone, so for a given seed
    the sequence of real tiles and crops is the same in every arm; only the positions taken by other sources
    differ. Tiles are drawn epoch-wise (a fresh permutation every pass) so every tile is seen equally often.

    Args:
        sizes: Tile count of each source.
        fractions: Share of draws from each source (sums to 1).
        n_draws: Total number of draws.
        seed: Run seed.
        recipe: With two sources, how the share of the second (extra) source evolves over the draws
            (:meth:`MixRecipe.share`; ``fractions[1]`` is its starting share). ``None`` or a ``constant``
            schedule: the same share throughout (the draws of earlier versions).
    """
    weights = np.asarray(fractions, dtype=float) / np.sum(fractions)
    if len(sizes) == 2 and recipe is not None and recipe.schedule != "constant":
        share = recipe.share(float(weights[1]), n_draws)
        source = (np.random.default_rng([seed, 1, 2]).random(n_draws) < share).astype(np.int64)
    elif len(sizes) > 1:
        source = np.random.default_rng([seed, 1]).choice(len(sizes), size=n_draws, p=weights)
    else:
        source = np.zeros(n_draws, dtype=np.int64)
    tile = np.zeros(n_draws, dtype=np.int64)
    y0 = np.zeros(n_draws)
    x0 = np.zeros(n_draws)
    aug = np.zeros(n_draws, dtype=np.int64)
    for s, size in enumerate(sizes):
        pos = np.flatnonzero(source == s)
        if len(pos) == 0:
            continue
        # one stream per quantity, so the first n draws do not depend on how many draws the source gets
        r_order, r_y, r_x, r_aug = (np.random.default_rng([seed, 100 + s, q]) for q in range(4))
        n_epochs = math.ceil(len(pos) / size)
        order = np.concatenate([r_order.permutation(size) for _ in range(n_epochs)])[: len(pos)]
        tile[pos] = order
        y0[pos] = r_y.random(len(pos))
        x0[pos] = r_x.random(len(pos))
        aug[pos] = r_aug.integers(0, 2**31 - 1, len(pos))
    return DrawPlan(source=source.astype(np.int64), tile=tile, y0=y0, x0=x0, aug_seed=aug)


class PlanDataset(torch.utils.data.Dataset):
    """Training samples following a :class:`DrawPlan` (TorchGeo-style dicts ``image`` float32 / ``mask`` int64).

    Args:
        sources: Tile collections (index 0 = real).
        plan: The draw sequence.
        crop: Crop side in pixels.
        norm: Input normalisation.
        augment: Optional albumentations pipeline applied to each crop.
        loss_weights: Loss weight of each source's crops; when given, every sample also holds ``weight``
            (float32 scalar) for a weighted loss.
    """

    def __init__(
        self,
        sources: Sequence[TileArrays],
        plan: DrawPlan,
        crop: int,
        norm: SegmenterNormalization,
        augment: Callable[..., dict[str, np.ndarray]] | None = None,
        loss_weights: Sequence[float] | None = None,
    ) -> None:
        self.sources = list(sources)
        self.plan = plan
        self.crop = crop
        self.norm = norm
        self.augment = augment
        self.loss_weights = None if loss_weights is None else [float(w) for w in loss_weights]

    def __len__(self) -> int:
        return len(self.plan.source)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        src = self.sources[int(self.plan.source[i])]
        t = int(self.plan.tile[i])
        img, msk = _pad_to(src.images[t], src.masks[t], self.crop)
        h, w = msk.shape
        y = int(self.plan.y0[i] * (h - self.crop + 1))
        x = int(self.plan.x0[i] * (w - self.crop + 1))
        img = img[:, y : y + self.crop, x : x + self.crop]
        msk = msk[y : y + self.crop, x : x + self.crop]
        if self.augment is not None:
            # albumentations 2: per-draw determinism (a Compose, typed here as the callable it also is)
            self.augment.set_random_seed(int(self.plan.aug_seed[i]))  # type: ignore[attr-defined]
            out = self.augment(image=np.ascontiguousarray(np.moveaxis(img, 0, -1)), mask=np.ascontiguousarray(msk))
            img = np.moveaxis(out["image"], -1, 0)
            msk = out["mask"]
        x_t = self.norm.apply(torch.from_numpy(np.ascontiguousarray(img))[None])[0]
        sample = {"image": x_t, "mask": torch.from_numpy(np.ascontiguousarray(msk).astype(np.int64))}
        if self.loss_weights is not None:
            sample["weight"] = torch.tensor(self.loss_weights[int(self.plan.source[i])], dtype=torch.float32)
        return sample


def _pad_to(img: np.ndarray, msk: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = msk.shape
    if h >= size and w >= size:
        return img, msk
    ph, pw = max(0, size - h), max(0, size - w)
    img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
    msk = np.pad(msk, ((0, ph), (0, pw)), constant_values=IGNORE)
    return img, msk
