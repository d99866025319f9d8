"""Reading a tile set for GAN training: deterministic random crops and flips of a split, and the step sampler.

The data order of a training run is a pure function of ``(seed, global sample number)``: sample ``n`` of a run
(``n = (step * world_size + rank) * batch_size + i``) is drawn from the permutation of epoch
``n // len(split)`` (seeded by ``(seed, epoch)``), and its crop offset and flips come from a generator seeded
by ``(seed, n)``. Resuming at step ``s`` therefore yields exactly the batches an uninterrupted run would have
seen, whatever the number of data-loader workers.

Conventions (see ``docs/ARCHITECTURE.md``):

* images are float in ``[-1, 1]``: ``x_model = (x - low) / (high - low) * 2 - 1`` per band, with
  ``low``/``high`` = 0/255 for uint8 tiles, else the 2nd/98th percentiles of the training tiles
  (:class:`rsaug.io.normalization.Normalization`, re-exported here with :func:`compute_normalization`);
* masks use the internal convention (0..K-1, 255 = unknown). The generator/discriminator get labels
  0..K (unknown -> K, see :func:`rsaug.gan.networks.generator.to_model_labels`), the conductor gets the mask
  with 255 as ``ignore_index``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.core.errors import InputError, option
from rsaug.io.normalization import Normalization, compute_normalization
from rsaug.io.tileset import TileSet

#: Preload tiles into memory when their total size is below this many bytes.
PRELOAD_BYTES = 2 * 1024**3


def check_mask(mask: np.ndarray, scheme: ClassScheme, path: str | os.PathLike[str] | None) -> None:
    """Raise :class:`InputError` if ``mask`` holds values other than 0..K-1 and 255."""
    bad = (mask >= scheme.num_classes) & (mask != IGNORE)
    if bad.any():
        vals, counts = np.unique(mask[bad], return_counts=True)
        listed = ", ".join(f"{int(v)} ({int(c)} px)" for v, c in zip(vals[:12], counts[:12]))
        raise InputError(
            path,
            f"mask values outside class scheme {scheme.name!r} "
            f"(valid: 0..{scheme.num_classes - 1} and {IGNORE}): {listed}",
        )


class TileCrops(Dataset):
    """Random crops (and flips) of one split of a tile set, addressed by global sample number.

    ``dataset[n]`` is sample ``n`` of the run: a dict with ``image`` (float32 (C, h, w) in ``[-1, 1]``),
    ``mask`` (int64 (h, w), internal convention) and ``index`` (tile row). The dataset is conceptually
    infinite; use :class:`StepSampler` to draw sample numbers.

    Args:
        tiles: The tile set.
        split: Split name (``train`` or ``val``).
        crop: Crop size in pixels (square).
        normalization: Image normalisation.
        seed: Run seed (data order and augmentation are functions of ``(seed, n)``).
        augment: Random crop offsets and flips; if ``False``, centre crops without flips.
        preload: Keep all tiles in memory (``None``: when they fit in :data:`PRELOAD_BYTES`).

    Raises:
        InputError: If the split is empty, a tile is smaller than the crop, a mask value is outside the
            scheme or a tile's band count differs from the tile set's.
    """

    def __init__(
        self,
        tiles: TileSet,
        split: str,
        crop: int,
        normalization: Normalization,
        seed: int = 0,
        augment: bool = True,
        preload: bool | None = None,
    ) -> None:
        self.tiles = tiles
        self.split_name = split
        self.rows = tiles.split(split)
        if len(self.rows) == 0:
            raise InputError(tiles.root, f"the {split!r} split of the tile set is empty")
        self.crop = int(crop)
        self.normalization = normalization
        self.seed = int(seed)
        self.augment = augment
        self.scheme = tiles.scheme
        sizes = []
        self._masks: list[np.ndarray] = []
        for _, row in self.rows.iterrows():
            m = tiles.read_mask(row)
            check_mask(m, self.scheme, tiles.mask_path(row))
            sizes.append(m.shape)
            self._masks.append(m)
        self.sizes = sizes
        small = [i for i, (h, w) in enumerate(sizes) if h < self.crop or w < self.crop]
        if small:
            h, w = sizes[small[0]]
            raise InputError(
                tiles.mask_path(self.rows.iloc[small[0]]),
                f"tile is {h}x{w} px, smaller than the crop size {self.crop}; "
                f"use a smaller {option('crop_size')} (at most {min(min(s) for s in sizes)})",
            )
        est = sum(h * w for h, w in sizes) * tiles.bands * np.dtype(tiles.dtype).itemsize
        self.preload = est <= PRELOAD_BYTES if preload is None else preload
        self._images: list[np.ndarray] | None = None
        if self.preload:
            self._images = [self._read_image(i) for i in range(len(self.rows))]

    def __len__(self) -> int:
        """Number of tiles in the split (one epoch)."""
        return len(self.rows)

    def _read_image(self, i: int) -> np.ndarray:
        row = self.rows.iloc[i]
        img = self.tiles.read_image(row)
        if img.shape[0] != self.tiles.bands:
            raise InputError(
                self.tiles.image_path(row), f"image has {img.shape[0]} bands, the tile set says {self.tiles.bands}"
            )
        if img.shape[1:] != self.sizes[i]:
            raise InputError(
                self.tiles.image_path(row),
                f"image is {img.shape[1]}x{img.shape[2]} px but its mask is {self.sizes[i][0]}x{self.sizes[i][1]}",
            )
        return img

    def tile_for(self, n: int) -> int:
        """Tile row used by global sample number ``n``."""
        epoch, pos = divmod(int(n), len(self.rows))
        perm = np.random.default_rng([self.seed, 7919, epoch]).permutation(len(self.rows))
        return int(perm[pos])

    def __getitem__(self, n: int) -> dict[str, Any]:
        if self.augment:
            i = self.tile_for(n)
        else:
            i = int(n) % len(self.rows)
        img = self._images[i] if self._images is not None else self._read_image(i)
        mask = self._masks[i]
        h, w = mask.shape
        c = self.crop
        if self.augment:
            rng = np.random.default_rng([self.seed, 104729, int(n)])
            y = int(rng.integers(0, h - c + 1))
            x = int(rng.integers(0, w - c + 1))
            hflip, vflip = bool(rng.integers(2)), bool(rng.integers(2))
        else:
            y, x, hflip, vflip = (h - c) // 2, (w - c) // 2, False, False
        img = img[:, y : y + c, x : x + c]
        mask = mask[y : y + c, x : x + c]
        if hflip:
            img, mask = img[:, :, ::-1], mask[:, ::-1]
        if vflip:
            img, mask = img[:, ::-1, :], mask[::-1, :]
        return {
            "image": self.normalization.normalize(np.ascontiguousarray(img)),
            "mask": torch.from_numpy(np.ascontiguousarray(mask).astype(np.int64)),
            "index": i,
        }


class StepSampler(Sampler[int]):
    """Yields global sample numbers for steps ``start_step, start_step + 1, ...`` of one rank.

    Step ``s`` of rank ``r`` (of ``world`` ranks) takes samples ``(s * world + r) * batch + i``,
    ``i < batch``, so the data a step sees depends only on ``(seed, step, rank)``.

    Args:
        batch_size: Per-rank batch size.
        start_step: First step to yield samples for.
        total_steps: Stop after this step (exclusive).
        rank: This process's global rank.
        world_size: Number of processes.
    """

    def __init__(self, batch_size: int, start_step: int, total_steps: int, rank: int = 0, world_size: int = 1) -> None:
        self.batch_size = batch_size
        self.start_step = start_step
        self.total_steps = total_steps
        self.rank = rank
        self.world_size = world_size

    def __iter__(self) -> Iterator[int]:
        for s in range(self.start_step, self.total_steps):
            base = (s * self.world_size + self.rank) * self.batch_size
            yield from range(base, base + self.batch_size)

    def __len__(self) -> int:
        return max(0, self.total_steps - self.start_step) * self.batch_size


__all__ = [
    "PRELOAD_BYTES",
    # re-exported from rsaug.io.normalization (other stages import them from here)
    "Normalization",
    "StepSampler",
    "TileCrops",
    "check_mask",
    "compute_normalization",
]
