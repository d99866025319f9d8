"""The one normalisation of raster values: a per-band linear map fitted on real training tiles.

uint8 tiles map 0..255; every other dtype maps the 2nd..98th percentiles of the training pixels
(:func:`percentile_range`). The GAN uses :class:`Normalization` to reach its ``[-1, 1]`` range
(``x_model = (x - low) / (high - low) * 2 - 1``, see ``docs/ARCHITECTURE.md``); the segmenter standardises the
same range further (:class:`rsaug.segmentation.data.Normalization`); FID's RGB stretch uses the same percentiles.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from rsaug.core.errors import InputError
from rsaug.io.tileset import TileSet

#: Pixels sampled per training tile when estimating percentiles of non-uint8 tile sets.
_PERCENTILE_PIXELS = 4096


def percentile_range(
    pixels: np.ndarray, low_pct: float = 2.0, high_pct: float = 98.0, min_width: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Per-band value range of ``pixels`` (bands, N): the ``low_pct`` and ``high_pct`` percentiles.

    A band whose upper percentile does not exceed the lower one gets ``low + min_width`` as upper bound, so
    the range is never empty.

    Returns:
        ``(low, high)``, float64 arrays of one value per band.
    """
    low = np.percentile(pixels, low_pct, axis=1)
    high = np.percentile(pixels, high_pct, axis=1)
    return low, np.where(high > low, high, low + min_width)


@dataclass
class Normalization:
    """Per-band linear map between raster values and the model's ``[-1, 1]`` range.

    Attributes:
        dtype: Source raster dtype name (``uint8``, ``uint16``, ``float32`` ...).
        low: Per-band value mapped to -1.
        high: Per-band value mapped to +1.
    """

    dtype: str
    low: list[float]
    high: list[float]

    @property
    def bands(self) -> int:
        """Number of bands."""
        return len(self.low)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Normalization:
        """Inverse of :meth:`to_dict`."""
        return cls(dtype=str(data["dtype"]), low=[float(v) for v in data["low"]], high=[float(v) for v in data["high"]])

    def _arrays(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        low = torch.tensor(self.low, dtype=torch.float32, device=like.device).view(-1, 1, 1)
        high = torch.tensor(self.high, dtype=torch.float32, device=like.device).view(-1, 1, 1)
        return low, high

    def normalize(self, x: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Map a raster array (..., C, H, W) to float32 ``[-1, 1]`` (values beyond low/high are clipped)."""
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x).float()
        low, high = self._arrays(t)
        return ((t - low) / (high - low) * 2 - 1).clamp_(-1, 1)

    def denormalize(self, x: torch.Tensor) -> np.ndarray:
        """Map model output (..., C, H, W) in ``[-1, 1]`` back to the source dtype (clipped, rounded)."""
        t = x.detach().float().cpu()
        low, high = self._arrays(t)
        v = ((t.clamp(-1, 1) + 1) / 2 * (high - low) + low).numpy()
        dt = np.dtype(self.dtype)
        if np.issubdtype(dt, np.integer):
            info = np.iinfo(dt)
            v = np.clip(np.rint(v), info.min, info.max)
        return v.astype(dt)


def compute_normalization(tiles: TileSet, split: str = "train", seed: int = 0) -> Normalization:
    """Normalisation of a tile set: 0/255 for uint8, else 2nd/98th percentiles of the split's tiles.

    Args:
        tiles: The tile set.
        split: Split whose tiles are sampled for the percentiles.
        seed: Seed of the pixel sub-sampling.

    Raises:
        InputError: If the split is empty.
    """
    bands = tiles.bands
    if tiles.dtype == "uint8":
        return Normalization("uint8", [0.0] * bands, [255.0] * bands)
    rows = tiles.split(split)
    if len(rows) == 0:
        raise InputError(tiles.root, f"the {split!r} split is empty")
    rng = np.random.default_rng(seed)
    samples = []
    for _, row in rows.iterrows():
        img = tiles.read_image(row).reshape(bands, -1)
        idx = rng.choice(img.shape[1], min(_PERCENTILE_PIXELS, img.shape[1]), replace=False)
        samples.append(img[:, idx].astype(np.float64))
    low, high = percentile_range(np.concatenate(samples, axis=1))
    return Normalization(tiles.dtype, low.tolist(), high.tolist())
