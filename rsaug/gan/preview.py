"""Preview images: PNG grids of masks, real images and generated images, and the texture figure logged next
to them.

:func:`save_grid` writes one (the trainer's ``RUN/samples/step_XXXXXX.png``); :func:`sample_grid` makes one
with a loaded generator for tiles spread over a split of a tile set; :func:`local_std` measures how much
texture images have (flat generated regions score far below real ones).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from rsaug.core.classes import ClassScheme
from rsaug.core.errors import InputError
from rsaug.core.files import atomic_path
from rsaug.gan.inference import Generator
from rsaug.io.tileset import TileSet


def local_std(images: torch.Tensor, window: int = 8) -> float:
    """Texture of a batch: the per-band standard deviation inside non-overlapping ``window`` x ``window`` blocks,
    averaged over blocks, bands and images (in the images' units).

    Real GID-15 tiles score about 10 DN (0.08 in the model range); a generator that paints uniform colour
    inside class regions scores near 0 even when its colours are right.
    """
    x = images.detach().float()
    if x.shape[-1] < window or x.shape[-2] < window:
        window = max(1, min(x.shape[-2:]))
    mean = torch.nn.functional.avg_pool2d(x, window)
    sq = torch.nn.functional.avg_pool2d(x * x, window)
    return float((sq - mean * mean).clamp(min=0).sqrt().mean())


def image_to_rgb8(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, 3) uint8 for previews (first three bands; grey for 1-2 bands)."""
    x = img.detach().float().cpu().clamp(-1, 1)
    x = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, -1, -1)
    return ((x + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def save_grid(
    path: Path, masks: torch.Tensor, reals: torch.Tensor, fakes: list[torch.Tensor], scheme: ClassScheme, pad: int = 2
) -> None:
    """Write a PNG grid: one row per mask, columns mask | real | fake 1 | fake 2 | ...

    Args:
        path: Destination PNG.
        masks: (N, H, W) internal masks.
        reals: (N, C, H, W) real images in [-1, 1].
        fakes: List of (N, C, H, W) fakes in [-1, 1].
        scheme: Class scheme (mask colours).
        pad: White padding between cells.
    """
    n, h, w = masks.shape
    cols = 2 + len(fakes)
    grid = np.full((n * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    pal = scheme.palette()
    for r in range(n):
        cells = [pal[masks[r].cpu().numpy().astype(np.uint8)], image_to_rgb8(reals[r])]
        cells += [image_to_rgb8(f[r]) for f in fakes]
        for c, cell in enumerate(cells):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y : y + h, x : x + w] = cell
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


def sample_grid(
    gen: Generator,
    tiles: str | os.PathLike[str],
    out: str | os.PathLike[str],
    rows: int = 6,
    fakes: int = 3,
    seed: int = 0,
    split: str = "val",
    crop: int | None = None,
) -> Path:
    """Write a PNG grid (mask | real | ``fakes`` generated images) for tiles spread over a split.

    Args:
        gen: A loaded generator.
        tiles: Tile-set directory with the same class scheme.
        out: Destination PNG.
        rows: Number of tiles (evenly spaced over the split's rows).
        fakes: Generated images per mask (noise seeds ``seed``, ``seed + 1``, ...).
        seed: First noise seed.
        split: Split to take the tiles from.
        crop: Centre crop size (``None``: whole tiles; tiles of different sizes need a crop).

    Returns:
        The PNG path.

    Raises:
        InputError: If the tile set's scheme differs from the generator's or the split is empty.
    """
    ts = TileSet.open(tiles)
    if not ts.scheme.same_classes(gen.scheme):
        raise InputError(ts.root, f"class scheme {ts.scheme.name!r} differs from the generator's {gen.scheme.name!r}")
    sel = ts.split(split)
    if len(sel) == 0:
        raise InputError(ts.root, f"the {split!r} split is empty")
    picks = np.linspace(0, len(sel) - 1, min(rows, len(sel))).round().astype(int).tolist()
    masks, reals = [], []
    for i in picks:
        m, img = ts.read_mask(sel.iloc[i]), ts.read_image(sel.iloc[i])
        c = crop or min(m.shape)
        y, x = (m.shape[0] - c) // 2, (m.shape[1] - c) // 2
        masks.append(m[y : y + c, x : x + c])
        reals.append(img[:, y : y + c, x : x + c])
    mask = np.stack(masks)
    real = gen.normalization.normalize(np.stack(reals))
    outs = [gen.generate(mask, seed=seed + k).cpu() for k in range(fakes)]
    save_grid(Path(out), torch.from_numpy(mask.astype(np.int64)), real, outs, gen.scheme)
    return Path(out)


__all__ = ["image_to_rgb8", "local_std", "sample_grid", "save_grid"]
