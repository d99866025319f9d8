"""Split assignment of a tiling run: seeded random (per tile) or blocked (per spatial block) splits, spatial
block keys, and the footprint overlaps that decide which tiles are dropped between blocked splits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from rasterio.crs import CRS
from rasterio.warp import transform as wtransform

from rsaug.io.rasters import SceneInfo
from rsaug.tiling.options import SPLIT_NAMES

if TYPE_CHECKING:
    import geopandas as gpd


def assign_random(n: int, ratios: Sequence[float], reserve: int, seed: int) -> np.ndarray:
    """Seeded random split of ``n`` tiles: ``reserve`` tiles first, the rest by ``ratios`` (largest remainder).

    Returns:
        Array of split names (``train``/``val``/``test``/``reserved``).
    """
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    out = np.empty(n, dtype=object)
    reserve = min(reserve, n)
    out[perm[:reserve]] = "reserved"
    counts = _split_counts(n - reserve, ratios)
    start = reserve
    for name, cnt in zip(SPLIT_NAMES, counts):
        out[perm[start : start + cnt]] = name
        start += cnt
    return out


def _split_counts(m: int, ratios: Sequence[float]) -> list[int]:
    """Tiles per split of ``m`` tiles by ``ratios``: floors, then the largest remainders (ties: earlier split)."""
    total = float(sum(ratios))
    exact = [m * r / total for r in ratios]
    counts = [math.floor(e) for e in exact]
    order = sorted(range(len(ratios)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: m - sum(counts)]:
        counts[i] += 1
    return counts


def assign_blocked(block_keys: Sequence[Any], ratios: Sequence[float], reserve: int, seed: int) -> np.ndarray:
    """Seeded split of whole spatial blocks (tiles sharing a key always share a split).

    Blocks are shuffled; the first ones fill ``reserve`` tiles, then each block goes to the split furthest
    below its target tile count.
    """
    keys = list(block_keys)
    uniq = sorted(set(keys))
    sizes = dict.fromkeys(uniq, 0)
    for k in keys:
        sizes[k] += 1
    rng = np.random.default_rng(seed)
    order = [uniq[i] for i in rng.permutation(len(uniq))]
    split_of: dict[Any, str] = {}
    n_res = 0
    rest = []
    for k in order:
        if n_res < reserve:
            split_of[k] = "reserved"
            n_res += sizes[k]
        else:
            rest.append(k)
    m = sum(sizes[k] for k in rest)
    total = float(sum(ratios))
    targets = [m * r / total for r in ratios]
    filled = [0, 0, 0]
    for k in rest:
        i = max(range(3), key=lambda j: (targets[j] - filled[j], -j) if ratios[j] > 0 else (-math.inf, -j))
        split_of[k] = SPLIT_NAMES[i]
        filled[i] += sizes[k]
    return np.array([split_of[k] for k in keys], dtype=object)


def overlapping_pairs(footprints: gpd.GeoSeries, groups: Sequence[Any] | None = None) -> list[tuple[int, int]]:
    """Index pairs (i < j) of footprints that overlap with positive area (only within the same group)."""
    if len(footprints) < 2:
        return []
    left, right = footprints.sindex.query(footprints.values, predicate="intersects")
    sel = left < right
    left, right = left[sel], right[sel]
    if groups is not None:
        g = np.asarray(groups, dtype=object)
        same = g[left] == g[right]
        left, right = left[same], right[same]
    if len(left) == 0:
        return []
    a = footprints.values[left]
    b = footprints.values[right]
    inter = np.asarray(
        a.intersection(b).area if hasattr(a, "intersection") else [x.intersection(y).area for x, y in zip(a, b)]
    )
    ref = np.minimum(np.asarray(a.area), np.asarray(b.area))
    ok = inter > 1e-9 * ref
    return list(zip(left[ok].tolist(), right[ok].tolist()))


def block_keys(
    rows: list[dict[str, Any]], scenes: list[SceneInfo], scene_idx: list[int], block: int, index_crs: CRS | None
) -> list[Any]:
    """Spatial block of each tile (by its centre): map units for georeferenced sets, else per-scene pixels."""
    keys: list[Any] = []
    if index_crs is None:
        for row, si in zip(rows, scene_idx):
            cy = row["row_off"] + row["height"] / 2
            cx = row["col_off"] + row["width"] / 2
            keys.append((si, int(cy // block), int(cx // block)))
        return keys
    a = scenes[0].affine
    bw, bh = math.hypot(a.a, a.d) * block, math.hypot(a.b, a.e) * block  # pixel sides, rotated grids too
    x0, y0 = a.c, a.f
    for row, si in zip(rows, scene_idx):
        sc = scenes[si]
        cx, cy = sc.affine @ (row["col_off"] + row["width"] / 2, row["row_off"] + row["height"] / 2)
        if sc.rio_crs != index_crs:
            xs, ys = wtransform(sc.rio_crs, index_crs, [cx], [cy])
            cx, cy = xs[0], ys[0]
        keys.append((0, math.floor((cx - x0) / bw), math.floor((y0 - cy) / bh)))
    return keys
