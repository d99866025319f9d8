"""Radiometric figures of generated images against real tiles: per-band mean / std, overall and per class, in DN.

:class:`PixelMoments` accumulates, streaming, per band and per mask label (the classes ``0..K-1`` and one row for
unknown pixels, :data:`~rsaug.core.classes.IGNORE`), the pixel count and the float64 sums of the values and of
their squares (values are shifted by a per-band constant, the first batch's band mean, before summing, so the
variance does not lose precision to cancellation). Nothing but these sums is held. Means and standard deviations
(population, ``ddof=0``, what ``numpy.std`` gives) follow from them, over all pixels ("overall", unknown pixels
included), per class and for the unknown pixels.

:func:`radiometry_report` compares a generated population with a real one in the rasters' own units (DN): per
band the real and generated mean and std, the mean error ``generated - real`` (DN), the std ratio and the
relative std error ``100 * (std_gen / std_real - 1)`` (%), and whether the band is within the target of issue 11
(:data:`MEAN_TOLERANCE_DN` = 3 DN and :data:`STD_TOLERANCE_PCT` = 10 %). The same figures per class (pixels of
class ``k`` in the generated images, i.e. where the mask they were generated from says ``k``, against the real
pixels of class ``k``) and for the unknown pixels; the per-class target count covers the classes present in the
real pixels, never the unknown row; the summary also gives the per-class errors as one pixel-weighted figure
(:func:`class_mean_errors`). Used by :func:`rsaug.evaluation.evaluate.evaluate` on the images it
generates for the test masks (after ``Generator.to_raster``, the same conversion synthesis writes with).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError

#: Target of issue 11: |mean error| of a band within this many DN ...
MEAN_TOLERANCE_DN = 3.0
#: ... and |relative std error| within this many percent.
STD_TOLERANCE_PCT = 10.0
#: Name of the row of the unknown (ignored) pixels.
UNKNOWN = "unknown"


@dataclass
class BandMoments:
    """Mean and standard deviation per band of one population of pixels.

    Attributes:
        pixels: Number of pixels (0: the population is empty and ``mean`` / ``std`` are ``None``).
        mean: Per-band mean.
        std: Per-band population standard deviation (``ddof=0``).
    """

    pixels: int
    mean: list[float] | None
    std: list[float] | None


class PixelMoments:
    """Streaming per-band, per-label pixel count, sum and sum of squares (float64).

    Args:
        bands: Number of image bands.
        num_classes: Number of classes ``K``; mask values are ``0..K-1`` or :data:`IGNORE`.
    """

    def __init__(self, bands: int, num_classes: int) -> None:
        if bands < 1 or num_classes < 1:
            raise InputError(None, f"need at least one band and one class, got {bands} bands, {num_classes} classes")
        self.bands = int(bands)
        self.num_classes = int(num_classes)
        rows = self.num_classes + 1  # row K: unknown pixels
        self.count = np.zeros(rows, dtype=np.int64)
        self.sum = np.zeros((rows, self.bands), dtype=np.float64)
        self.sum_sq = np.zeros((rows, self.bands), dtype=np.float64)
        self.shift: np.ndarray | None = None

    def add(self, images: np.ndarray, masks: np.ndarray) -> None:
        """Add images (B, C, H, W) or (C, H, W) with their masks (B, H, W) or (H, W) (internal convention).

        Raises:
            InputError: Shapes that do not match, or a mask value that is neither a class index nor ``IGNORE``.
        """
        x = np.asarray(images)
        m = np.asarray(masks)
        if x.ndim == 3:
            x, m = x[None], m[None]
        if x.ndim != 4 or x.shape[1] != self.bands or m.shape != (x.shape[0], *x.shape[2:]):
            raise InputError(
                None, f"images {x.shape} and masks {m.shape} do not match ({self.bands} bands, (B, C, H, W))"
            )
        if x.size == 0:
            return
        lab = m.reshape(-1).astype(np.int64)
        unknown = lab == IGNORE
        bad = ~unknown & ((lab < 0) | (lab >= self.num_classes))
        if bad.any():
            raise InputError(
                None, f"mask value {int(lab[bad][0])} is neither a class index 0..{self.num_classes - 1} nor {IGNORE}"
            )
        idx = np.where(unknown, self.num_classes, lab)
        rows = self.num_classes + 1
        self.count += np.bincount(idx, minlength=rows)
        values = np.moveaxis(x, 1, 0).reshape(self.bands, -1)  # (C, pixels), same pixel order as idx
        if self.shift is None:
            self.shift = values.mean(axis=1, dtype=np.float64)
        for b in range(self.bands):
            v = values[b].astype(np.float64) - self.shift[b]
            self.sum[:, b] += np.bincount(idx, weights=v, minlength=rows)
            self.sum_sq[:, b] += np.bincount(idx, weights=v * v, minlength=rows)

    def _moments(self, n: int, s: np.ndarray, s2: np.ndarray) -> BandMoments:
        if n == 0 or self.shift is None:
            return BandMoments(pixels=0, mean=None, std=None)
        mean = s / n
        var = np.maximum(s2 / n - mean * mean, 0.0)
        return BandMoments(pixels=int(n), mean=(mean + self.shift).tolist(), std=np.sqrt(var).tolist())

    def overall(self) -> BandMoments:
        """Every pixel added (classes and unknown)."""
        return self._moments(int(self.count.sum()), self.sum.sum(axis=0), self.sum_sq.sum(axis=0))

    def of_class(self, k: int) -> BandMoments:
        """The pixels whose mask value is class ``k``."""
        if not 0 <= k < self.num_classes:
            raise InputError(None, f"class index {k} outside 0..{self.num_classes - 1}")
        return self._moments(int(self.count[k]), self.sum[k], self.sum_sq[k])

    def unknown(self) -> BandMoments:
        """The pixels whose mask value is ``IGNORE``."""
        k = self.num_classes
        return self._moments(int(self.count[k]), self.sum[k], self.sum_sq[k])

    def to_dict(self, class_names: list[str]) -> dict[str, Any]:
        """Overall, per-class and unknown-pixel moments as a JSON-ready dictionary."""
        if len(class_names) != self.num_classes:
            raise InputError(None, f"{len(class_names)} class names for {self.num_classes} classes")
        return {
            "overall": asdict(self.overall()),
            "classes": [{"class": n, **asdict(self.of_class(k))} for k, n in enumerate(class_names)],
            UNKNOWN: asdict(self.unknown()),
        }


def compare_bands(
    real: BandMoments,
    generated: BandMoments,
    mean_tolerance: float = MEAN_TOLERANCE_DN,
    std_tolerance_pct: float = STD_TOLERANCE_PCT,
) -> list[dict[str, Any]] | None:
    """Per-band figures of ``generated`` against ``real`` (``None`` when either population is empty).

    Each band: ``real_mean``, ``real_std``, ``generated_mean``, ``generated_std``, ``mean_error_dn``
    (generated - real), ``std_ratio`` (generated / real; ``None`` for a constant real band),
    ``std_error_pct`` (``100 * (ratio - 1)``; 0 when both are constant, ``None`` when only the real one is) and
    ``within_target`` (``|mean error| <= mean_tolerance`` and ``|std error| <= std_tolerance_pct``).
    """
    if real.mean is None or real.std is None or generated.mean is None or generated.std is None:
        return None
    rows = []
    for b, (rm, rs, gm, gs) in enumerate(zip(real.mean, real.std, generated.mean, generated.std)):
        d_mean = gm - rm
        if rs > 0:
            ratio: float | None = gs / rs
            pct: float | None = 100.0 * (gs / rs - 1.0)
        else:
            ratio = None
            pct = 0.0 if gs == 0 else None
        within = bool(abs(d_mean) <= mean_tolerance and pct is not None and abs(pct) <= std_tolerance_pct)
        rows.append(
            {
                "band": b,
                "real_mean": rm,
                "real_std": rs,
                "generated_mean": gm,
                "generated_std": gs,
                "mean_error_dn": d_mean,
                "std_ratio": ratio,
                "std_error_pct": pct,
                "within_target": within,
            }
        )
    return rows


def radiometry_report(
    real: PixelMoments,
    generated: PixelMoments,
    class_names: list[str],
    dtype: str,
    mean_tolerance: float = MEAN_TOLERANCE_DN,
    std_tolerance_pct: float = STD_TOLERANCE_PCT,
) -> dict[str, Any]:
    """Radiometric figures of ``generated`` against ``real``: overall, per class, unknown pixels, target counts.

    Args:
        real: Moments of the real pixels.
        generated: Moments of the generated pixels (images generated for the real masks).
        class_names: Class names in internal order.
        dtype: The rasters' dtype (the unit, DN, is its value range).
        mean_tolerance: Target on ``|mean error|`` (DN).
        std_tolerance_pct: Target on ``|std error|`` (%).

    Returns:
        ``{"units", "target", "overall", "classes", "unknown", "summary", "summary_line"}``; ``overall`` and each
        class's / the unknown row's ``bands`` are lists from :func:`compare_bands` (``None`` for a class with no
        real or no generated pixels). ``summary`` counts the bands within target overall and the band-class pairs
        within target over the classes present (unknown pixels excluded).

    Raises:
        InputError: Band or class counts of the two populations differ.
    """
    if (real.bands, real.num_classes) != (generated.bands, generated.num_classes):
        raise InputError(
            None,
            f"real pixels have {real.bands} bands / {real.num_classes} classes, generated ones "
            f"{generated.bands} / {generated.num_classes}",
        )

    def row(name: str, r: BandMoments, g: BandMoments) -> dict[str, Any]:
        return {
            "class": name,
            "real_pixels": r.pixels,
            "generated_pixels": g.pixels,
            "bands": compare_bands(r, g, mean_tolerance, std_tolerance_pct),
        }

    if len(class_names) != real.num_classes:
        raise InputError(None, f"{len(class_names)} class names for {real.num_classes} classes")
    ro, go = real.overall(), generated.overall()
    overall = compare_bands(ro, go, mean_tolerance, std_tolerance_pct)
    classes = [row(n, real.of_class(k), generated.of_class(k)) for k, n in enumerate(class_names)]
    unknown = row(UNKNOWN, real.unknown(), generated.unknown())
    measured = [c for c in classes if c["bands"] is not None]
    summary: dict[str, Any] = {
        "overall_within": sum(b["within_target"] for b in overall or []),
        "overall_bands": len(overall or []),
        "class_within": sum(b["within_target"] for c in measured for b in c["bands"]),
        "class_pairs": sum(len(c["bands"]) for c in measured),
        "classes_measured": len(measured),
        "classes_within": sum(all(b["within_target"] for b in c["bands"]) for c in measured),
        **class_mean_errors(measured),
    }
    return {
        "units": f"DN ({dtype})",
        "target": {"mean_dn": mean_tolerance, "std_pct": std_tolerance_pct},
        "pixels": {"real": ro.pixels, "generated": go.pixels},
        "overall": overall,
        "classes": classes,
        UNKNOWN: unknown,
        "summary": summary,
        "summary_line": summary_text(summary, mean_tolerance, std_tolerance_pct),
    }


def class_mean_errors(classes: list[dict[str, Any]]) -> dict[str, float | None]:
    """Pixel-weighted mean over classes of the mean over bands of ``|Δ mean|`` (DN) and ``|std error|`` (%).

    Args:
        classes: Per-class rows of :func:`radiometry_report` with figures (``bands`` not ``None``); each class is
            weighted by its number of real pixels, so the figure is the error of an average labelled pixel.

    Returns:
        ``{"class_mean_abs_error_dn", "class_mean_abs_std_error_pct"}`` (``None`` without classes; the std figure
        leaves out bands whose std error is undefined).
    """
    weights = [c["real_pixels"] for c in classes]
    if not classes or sum(weights) == 0:
        return {"class_mean_abs_error_dn": None, "class_mean_abs_std_error_pct": None}
    dn = [float(np.mean([abs(b["mean_error_dn"]) for b in c["bands"]])) for c in classes]
    std_rows = [
        (w, [abs(b["std_error_pct"]) for b in c["bands"] if b["std_error_pct"] is not None])
        for w, c in zip(weights, classes)
    ]
    std_rows = [(w, v) for w, v in std_rows if v]
    std_w = sum(w for w, _ in std_rows)
    return {
        "class_mean_abs_error_dn": float(np.average(dn, weights=weights)),
        "class_mean_abs_std_error_pct": float(sum(w * np.mean(v) for w, v in std_rows) / std_w) if std_w else None,
    }


def summary_text(
    summary: dict[str, Any], mean_tolerance: float = MEAN_TOLERANCE_DN, std_tolerance_pct: float = STD_TOLERANCE_PCT
) -> str:
    """``overall: 3/3 bands within 3 DN and 10 %; per class: 21/45 band-class pairs (5/15 classes), mean |error|
    4.6 DN / 11 %`` (the last part: :func:`class_mean_errors`, when the summary has it)."""
    text = (
        f"overall: {summary['overall_within']}/{summary['overall_bands']} bands within {mean_tolerance:g} DN and "
        f"{std_tolerance_pct:g} %; per class: {summary['class_within']}/{summary['class_pairs']} band-class pairs "
        f"({summary['classes_within']}/{summary['classes_measured']} classes)"
    )
    dn, pct = summary.get("class_mean_abs_error_dn"), summary.get("class_mean_abs_std_error_pct")
    if dn is not None:
        text += f", mean |error| {dn:.1f} DN" + (f" / {pct:.0f} %" if pct is not None else "")
    return text
