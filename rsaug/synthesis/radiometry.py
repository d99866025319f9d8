"""Radiometric alignment of synthetic images to the real training statistics.

:func:`fit_alignment` measures the real ``train`` split of a tile set per band (and, with ``per_class``, per class:
the statistics of the pixels of each class, so synthetic pixels of class ``k`` are matched to real pixels of class
``k``); :meth:`RadiometricAlignment.apply` maps one generated image onto them before it is written:

* ``mean-std``: per band (and class region), ``x' = (x - mean_x) / std_x * std_real + mean_real``;
* ``histogram``: per band (and class region) quantile mapping: each pixel's rank in its region of the generated
  image is mapped to the real value at that quantile (what ``skimage.exposure.match_histograms`` does per
  channel; scikit-image is not a dependency of rsaug, so the quantiles are interpolated with NumPy).

The source statistics are those of the generated image itself (each image is matched on its own, as
``match_histograms`` does). A class with fewer than ``min_class_pixels`` real training pixels falls back to the
band statistics; pixels of a class region smaller than ``min_region_pixels`` in a generated image and unknown
pixels use the whole image's band statistics. Results are rounded and clipped to the source dtype (integer types:
the dtype's range; floating types: the real band minimum/maximum).

Used by ``rsaug synthesize --align-radiometry`` (applied while generating) and ``rsaug filter --align`` (applied to
an existing synthetic tile set); recorded in ``synthesis.json`` / ``tileset.json`` / ``radiometry.json`` and in
the ``RSAUG_ALIGN`` GeoTIFF tag of every aligned image.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError, option
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.io.tileset import TileSet

ALIGN_METHODS = ("none", "mean-std", "histogram")
RADIOMETRY_FILE = "radiometry.json"
#: Quantile levels stored per band (and class) for histogram matching.
QUANTILE_LEVELS = 1025


@dataclass
class AlignmentConfig:
    """How synthetic images are aligned to the real training statistics.

    Attributes:
        method: ``mean-std`` or ``histogram`` (``none`` is not fitted).
        per_class: Match class regions to the real pixels of that class.
        split: Split of the real tile set the statistics are measured on.
        min_class_pixels: Classes with fewer real pixels fall back to the band statistics.
        min_region_pixels: Class regions of a generated image with fewer pixels use the whole image's statistics.
    """

    method: str = "mean-std"
    per_class: bool = False
    split: str = "train"
    min_class_pixels: int = 1000
    min_region_pixels: int = 64


@dataclass
class BandStatistics:
    """Statistics of one population of pixels, per band.

    Attributes:
        pixels: Number of pixels measured.
        mean: Per-band mean.
        std: Per-band standard deviation.
        quantiles: Per-band values at :data:`QUANTILE_LEVELS` evenly spaced levels in ``[0, 1]`` (B, L).
        minimum: Per-band minimum.
        maximum: Per-band maximum.
    """

    pixels: int
    mean: list[float]
    std: list[float]
    quantiles: list[list[float]]
    minimum: list[float]
    maximum: list[float]

    @classmethod
    def from_values(cls, values: list[np.ndarray]) -> BandStatistics:
        """Statistics of per-band value arrays (one 1-D array per band)."""
        levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
        qs = [np.quantile(v, levels).tolist() for v in values]
        return cls(
            pixels=int(values[0].size),
            mean=[float(v.mean()) for v in values],
            std=[float(v.std()) for v in values],
            quantiles=qs,
            minimum=[float(v.min()) for v in values],
            maximum=[float(v.max()) for v in values],
        )

    @classmethod
    def from_histograms(cls, hists: np.ndarray, offset: int) -> BandStatistics:
        """Statistics of integer values given per-band histograms (B, V) of values ``offset + 0..V-1``."""
        levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
        vals = np.arange(hists.shape[1], dtype=np.float64) + offset
        mean, std, qs, lo, hi = [], [], [], [], []
        for h in hists.astype(np.float64):
            n = h.sum()
            m = float((h * vals).sum() / n)
            mean.append(m)
            std.append(float(np.sqrt(max((h * (vals - m) ** 2).sum() / n, 0.0))))
            nz = np.flatnonzero(h)
            # the same quantiles np.quantile (linear) gives on the expanded values
            pos = levels * (n - 1)  # 0-based position in the sorted values
            cum = np.cumsum(h)
            lower = np.searchsorted(cum, np.floor(pos), side="right")
            upper = np.searchsorted(cum, np.ceil(pos), side="right")
            frac = pos - np.floor(pos)
            qs.append(((1 - frac) * vals[lower] + frac * vals[upper]).tolist())
            lo.append(float(vals[nz[0]]))
            hi.append(float(vals[nz[-1]]))
        return cls(pixels=int(hists[0].sum()), mean=mean, std=std, quantiles=qs, minimum=lo, maximum=hi)


@dataclass
class RadiometricAlignment:
    """Real training statistics and how a generated image is mapped onto them (:meth:`apply`).

    Attributes:
        config: The alignment options.
        source: Real tile set the statistics were measured on.
        dtype: Image dtype of that tile set (outputs are in it).
        class_names: Class names in internal order.
        band: Statistics of all pixels of the split.
        classes: Per class (``per_class``): statistics of its pixels, or ``None`` when it has fewer than
            ``min_class_pixels`` (then the band statistics are used).
    """

    config: AlignmentConfig
    source: str
    dtype: str
    class_names: list[str]
    band: BandStatistics
    classes: list[BandStatistics | None] = field(default_factory=list)

    @property
    def bands(self) -> int:
        """Number of image bands."""
        return len(self.band.mean)

    @property
    def fallback_classes(self) -> list[str]:
        """Classes matched with the band statistics because they have too few real pixels (``per_class``)."""
        if not self.config.per_class:
            return []
        return [n for n, s in zip(self.class_names, self.classes) if s is None]

    def summary(self) -> dict[str, Any]:
        """Compact provenance (no quantiles): method, options, source, per-band real mean/std, fallbacks."""
        return {
            **asdict(self.config),
            "source": self.source,
            "dtype": self.dtype,
            "real_pixels": self.band.pixels,
            "real_band_mean": self.band.mean,
            "real_band_std": self.band.std,
            "fallback_classes": self.fallback_classes,
            "file": RADIOMETRY_FILE,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything (what ``radiometry.json`` holds)."""
        return {
            "config": asdict(self.config),
            "source": self.source,
            "dtype": self.dtype,
            "class_names": self.class_names,
            "band": asdict(self.band),
            "classes": [None if s is None else asdict(s) for s in self.classes],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RadiometricAlignment:
        """Inverse of :meth:`to_dict`."""
        return cls(
            config=AlignmentConfig(**data["config"]),
            source=str(data["source"]),
            dtype=str(data["dtype"]),
            class_names=list(data["class_names"]),
            band=BandStatistics(**data["band"]),
            classes=[None if s is None else BandStatistics(**s) for s in data["classes"]],
        )

    # ------------------------------------------------------------------ applying
    def apply(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """Align one image (C, H, W) in the stored dtype; ``mask`` (H, W, internal convention) for ``per_class``.

        Returns:
            The aligned image, same shape and dtype (rounded and clipped to the dtype's range for integer types,
            to the real band range for floating types).
        """
        if image.ndim != 3 or image.shape[0] != self.bands:
            raise InputError(None, f"image of shape {image.shape} does not have {self.bands} bands")
        x = image.astype(np.float64)
        out = np.empty_like(x)
        regions: list[tuple[np.ndarray | None, BandStatistics]] = []
        covered = np.zeros(image.shape[1:], dtype=bool)
        if self.config.per_class and mask is not None:
            for k, stats in enumerate(self.classes):
                if stats is None:
                    continue
                sel = mask == k
                if int(sel.sum()) < self.config.min_region_pixels:
                    continue
                regions.append((sel, stats))
                covered |= sel
        rest = ~covered
        for b in range(self.bands):
            # the whole image's band statistics for everything not matched per class
            if rest.any():
                out[b][rest] = self._map(x[b].ravel(), x[b][rest], self.band, b)
            for sel, stats in regions:
                v = x[b][sel]
                out[b][sel] = self._map(v, v, stats, b)
        return self._to_dtype(out, image.dtype)

    def _map(self, population: np.ndarray, values: np.ndarray, ref: BandStatistics, b: int) -> np.ndarray:
        """Map ``values`` (members of ``population``, the source statistics) onto band ``b`` of ``ref``."""
        if self.config.method == "mean-std":
            mu, sd = float(population.mean()), float(population.std())
            scale = ref.std[b] / sd if sd > 1e-9 else 1.0
            return (values - mu) * scale + ref.mean[b]
        # histogram: quantile of each value in the population (mid-rank of ties) -> real value at that quantile
        uniq, counts = np.unique(population, return_counts=True)
        q = (np.cumsum(counts) - 0.5 * counts) / population.size
        ranks = np.interp(values, uniq, q)
        return np.interp(ranks, np.linspace(0.0, 1.0, QUANTILE_LEVELS), np.asarray(ref.quantiles[b]))

    def _to_dtype(self, x: np.ndarray, dtype: np.dtype) -> np.ndarray:
        """Round and clip to ``dtype`` (integer range; floats: the real band range)."""
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.rint(x), info.min, info.max).astype(dtype)
        lo = np.asarray(self.band.minimum)[:, None, None]
        hi = np.asarray(self.band.maximum)[:, None, None]
        return np.clip(x, lo, hi).astype(dtype)


def check_method(method: str) -> None:
    """Raise :class:`InputError` for an unknown alignment method."""
    if method not in ALIGN_METHODS:
        raise InputError(None, f"unknown radiometric alignment {method!r}; use one of {', '.join(ALIGN_METHODS)}")


def fit_alignment(
    real: TileSet | str | os.PathLike[str],
    config: AlignmentConfig | None = None,
    *,
    reporter: Reporter | None = None,
    **options: Any,
) -> RadiometricAlignment:
    """Measure the real statistics a synthetic image is aligned to.

    Args:
        real: The real tile set (its ``config.split`` is read).
        config: Options; alternatively :class:`AlignmentConfig` fields as keyword ``options``.
        reporter: Progress bar over the tiles (``None``: silent).

    Returns:
        The fitted :class:`RadiometricAlignment`.

    Raises:
        InputError: Unknown or ``none`` method, bad thresholds, an empty split, unreadable tiles, a synthetic
            tile set given as the real one.
    """
    cfg = config if config is not None else AlignmentConfig(**options)
    check_method(cfg.method)
    if cfg.method == "none":
        raise InputError(None, "radiometric alignment 'none' has nothing to fit")
    if cfg.min_class_pixels < 1 or cfg.min_region_pixels < 1:
        raise InputError(None, "min_class_pixels and min_region_pixels must be at least 1")
    ts = real if isinstance(real, TileSet) else TileSet.open(real)
    if ts.synthetic:
        raise InputError(ts.root, "the real tile set for radiometric alignment is a synthetic tile set")
    rows = ts.split(cfg.split)
    if len(rows) == 0:
        raise InputError(ts.root, f"split {cfg.split!r} has no tiles to measure radiometry on")
    k = ts.scheme.num_classes
    dtype = np.dtype(ts.dtype)
    use_hist = np.issubdtype(dtype, np.integer) and dtype.itemsize <= 2
    offset = int(np.iinfo(dtype).min) if use_hist else 0
    nbins = (int(np.iinfo(dtype).max) - offset + 1) if use_hist else 0
    per_class = cfg.per_class
    band_h = np.zeros((ts.bands, nbins), np.int64) if use_hist else None
    class_h = np.zeros((k, ts.bands, nbins), np.int64) if use_hist and per_class else None
    band_v: list[list[np.ndarray]] = [[] for _ in range(ts.bands)]
    class_v: list[list[list[np.ndarray]]] = [[[] for _ in range(ts.bands)] for _ in range(k)]
    for _, row in reporter_or_silent(reporter).iterate(rows.iterrows(), total=len(rows), desc="radiometry"):
        img = ts.read_image(row)
        msk = ts.read_mask(row) if per_class else None
        for b in range(ts.bands):
            vb = img[b].ravel()
            if use_hist:
                band_h[b] += np.bincount(vb.astype(np.int64) - offset, minlength=nbins)  # type: ignore[index]
            else:
                band_v[b].append(vb.astype(np.float64))
            if msk is None:
                continue
            mflat = msk.ravel()
            if use_hist:
                lab = mflat != IGNORE
                joint = mflat[lab].astype(np.int64) * nbins + (vb[lab].astype(np.int64) - offset)
                class_h[:, b] += np.bincount(joint, minlength=k * nbins).reshape(k, nbins)  # type: ignore[index]
            else:
                for c in np.unique(mflat):
                    if c != IGNORE:
                        class_v[int(c)][b].append(vb[mflat == c].astype(np.float64))
    if use_hist:
        band = BandStatistics.from_histograms(band_h, offset)  # type: ignore[arg-type]
    else:
        band = BandStatistics.from_values([np.concatenate(v) for v in band_v])
    classes: list[BandStatistics | None] = []
    if per_class:
        for c in range(k):
            n = int(class_h[c, 0].sum()) if use_hist else sum(a.size for a in class_v[c][0])  # type: ignore[index]
            if n < cfg.min_class_pixels:
                classes.append(None)
            elif use_hist:
                classes.append(BandStatistics.from_histograms(class_h[c], offset))  # type: ignore[index]
            else:
                classes.append(BandStatistics.from_values([np.concatenate(v) for v in class_v[c]]))
    return RadiometricAlignment(
        config=cfg,
        source=str(ts.root.resolve()),
        dtype=ts.dtype,
        class_names=ts.scheme.names,
        band=band,
        classes=classes,
    )


def alignment_or_none(
    real: TileSet | str | os.PathLike[str],
    method: str,
    per_class: bool = False,
    *,
    reporter: Reporter | None = None,
) -> RadiometricAlignment | None:
    """:func:`fit_alignment` for ``method`` (``None`` for ``none``); ``per_class`` without a method is an error.

    Raises:
        InputError: Unknown method, or ``per_class`` with ``none``.
    """
    check_method(method)
    if method == "none":
        if per_class:
            raise InputError(None, f"{option('align_per_class')} needs a radiometric alignment method")
        return None
    return fit_alignment(real, AlignmentConfig(method=method, per_class=per_class), reporter=reporter)
