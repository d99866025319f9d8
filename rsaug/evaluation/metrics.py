"""Generator-quality and segmentation metrics: FID, LPIPS, LPIPS diversity, mCSD / mOCD, mIoU / FWIoU / acc.

All image metrics use the offline networks of :mod:`rsaug.evaluation.pretrained`.

FID
    Fréchet distance between Gaussians fitted (float64 mean and unbiased covariance) to the 2048-d pool3 features
    of the standard FID Inception, computed on RGB uint8 images (TF1 bilinear resize to 299, no antialias).
    ``tr sqrt(S1 S2)`` is computed exactly, either as ``tr sqrt(A S2 A)`` with ``A = S1^(1/2)`` from symmetric
    eigendecompositions or, for sets smaller than 2048, as a nuclear norm (:func:`fid_from_features`).
    Multispectral images are reduced to three bands by the caller (:func:`to_uint8_rgb`).

LPIPS
    LPIPS v0.1 (AlexNet by default) on images in [-1, 1].

LPIPS diversity (:func:`lpips_diversity`)
    For every mask: ``samples`` (10) images from independent noise; ``pairs`` (10) distinct unordered pairs drawn
    at random among them; the mean LPIPS of those pairs. The score is the mean over masks.

mCSD / mOCD (:func:`class_specific_diversity`) — the exact definition implemented
    For every mask ``m`` and every class ``k`` with at least ``min_pixels`` pixels in ``m``: generate ``x0`` from
    noise ``z``, and ``xk`` from ``z' = resample_class(z, k)`` (only class k's embedding changes). With ``R`` the
    pixels of class k and ``fill(x, R)`` the image ``x`` with every pixel outside ``R`` set to 0 (mid-grey in
    the model's [-1, 1] space):
    ``CSD(m, k) = LPIPS(fill(x0, R), fill(xk, R))`` and ``OCD(m, k) = LPIPS(fill(x0, ~R), fill(xk, ~R))``
    (``~R`` = every other pixel, other classes and unknown pixels alike). This is ``region="masked"``, the
    default: it is exactly 0 when nothing changes in the region, and, like any whole-image LPIPS, small regions
    weigh less. ``region="spatial"`` instead averages the LPIPS spatial map of ``(x0, xk)`` (every layer's
    distance map upsampled bilinearly to full size and summed) over the region's pixels; there the deep layers'
    receptive fields carry changes across region borders, so OCD is not 0 even for a perfectly local edit.
    Per class, CSD and OCD are averaged over the masks containing the class; **mCSD** and **mOCD** are the means
    of those per-class values over the classes that occur (each class counts once, however many masks hold it).

Segmentation scores (confusion matrix, mIoU, FWIoU, accuracy) live in :mod:`rsaug.segmentation.scores`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from rsaug.evaluation.pretrained import fid_inception, lpips_network

ProgressFn = Callable[[int], Any]


class GeneratorLike(Protocol):
    """The part of :class:`rsaug.gan.inference.Generator` that the diversity metrics use."""

    def sample_noise(self, batch: int, seed: Any = None) -> Any: ...

    def resample_class(self, noise: Any, class_index: int, seed: Any = None) -> Any: ...

    def generate(self, mask: Any, noise: Any = None, seed: int | None = None) -> torch.Tensor: ...


# ------------------------------------------------------------------------------------------------ conversions
def to_uint8_rgb(images: torch.Tensor, rgb_bands: Sequence[int] = (0, 1, 2)) -> torch.Tensor:
    """Model-space images (N, C, H, W) in [-1, 1] -> uint8 RGB (N, 3, H, W) for FID.

    Args:
        images: Float images in [-1, 1] (values outside are clipped).
        rgb_bands: The three band indices used as R, G, B (single-band images are repeated).

    Returns:
        uint8 tensor on the same device.
    """
    x = _rgb(images, rgb_bands)
    return torch.round((x.clamp(-1, 1) + 1) * 127.5).to(torch.uint8)


def _rgb(images: torch.Tensor, rgb_bands: Sequence[int] = (0, 1, 2)) -> torch.Tensor:
    if images.ndim == 3:
        images = images[None]
    c = images.shape[1]
    if c == 1:
        return images.expand(-1, 3, -1, -1)
    bands = list(rgb_bands)
    if max(bands) >= c:
        raise ValueError(f"RGB bands {bands} requested from images with {c} bands")
    return images[:, bands]


# ------------------------------------------------------------------------------------------------------ FID
def inception_features(
    batches: Iterable[torch.Tensor], device: str | torch.device = "cpu", progress: ProgressFn | None = None
) -> np.ndarray:
    """Pool3 features of the FID Inception for batches of RGB uint8 images.

    Args:
        batches: Iterable of (B, 3, H, W) tensors with values in 0..255 (uint8 or float).
        device: Device to run the Inception on.
        progress: Called with the number of images after each batch.

    Returns:
        float64 array (N, 2048).
    """
    model = fid_inception(device)
    feats = []
    with torch.inference_mode():
        for batch in batches:
            if batch.ndim == 3:
                batch = batch[None]
            feats.append(model(batch.to(device)).double().cpu().numpy())
            if progress is not None:
                progress(int(batch.shape[0]))
    if not feats:
        return np.zeros((0, model.num_features))
    return np.concatenate(feats)


@dataclass
class GaussianStats:
    """Mean and covariance of a feature set (float64)."""

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    @classmethod
    def from_features(cls, features: np.ndarray) -> GaussianStats:
        """Fit mean and unbiased covariance to (N, D) features (N >= 2)."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[0] < 2:
            raise ValueError(f"FID needs at least 2 feature vectors, got shape {f.shape}")
        return cls(mu=f.mean(axis=0), sigma=np.cov(f, rowvar=False), n=int(f.shape[0]))


def frechet_distance(a: GaussianStats, b: GaussianStats) -> float:
    """Fréchet distance ``|mu_a - mu_b|^2 + tr(S_a + S_b - 2 (S_a S_b)^(1/2))`` between two Gaussians.

    ``tr (S_a S_b)^(1/2)`` equals ``tr (A S_b A)^(1/2)`` with ``A = S_a^(1/2)`` (same eigenvalues), which only needs
    symmetric eigendecompositions and is exact for rank-deficient covariances (fewer samples than features).
    """
    diff = a.mu - b.mu
    w, v = np.linalg.eigh(a.sigma)
    sqrt_a = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt_a @ b.sigma @ sqrt_a
    m = (m + m.T) / 2
    ev = np.linalg.eigvalsh(m)
    tr_covmean = float(np.sqrt(np.clip(ev, 0, None)).sum())
    value = float(diff @ diff + np.trace(a.sigma) + np.trace(b.sigma) - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid_from_features(features_a: np.ndarray, features_b: np.ndarray) -> float:
    """FID between two (N, D) feature sets (each N >= 2).

    When a set has fewer vectors than dimensions (the usual case for tile sets: N < 2048) this uses the exact
    low-rank identity ``tr (S_a S_b)^(1/2) = ||A B^T||_*`` (nuclear norm) with ``A``, ``B`` the centred features
    divided by ``sqrt(N - 1)``, since ``S_a = A^T A`` and ``S_b = B^T B``; otherwise :func:`frechet_distance`.
    """
    fa = np.asarray(features_a, dtype=np.float64)
    fb = np.asarray(features_b, dtype=np.float64)
    if fa.ndim != 2 or fb.ndim != 2 or fa.shape[0] < 2 or fb.shape[0] < 2 or fa.shape[1] != fb.shape[1]:
        raise ValueError(f"FID needs two (N >= 2, D) feature sets, got shapes {fa.shape} and {fb.shape}")
    if min(fa.shape[0], fb.shape[0]) > fa.shape[1]:
        return frechet_distance(GaussianStats.from_features(fa), GaussianStats.from_features(fb))
    mu_a, mu_b = fa.mean(axis=0), fb.mean(axis=0)
    a = (fa - mu_a) / math.sqrt(fa.shape[0] - 1)
    b = (fb - mu_b) / math.sqrt(fb.shape[0] - 1)
    tr_covmean = float(np.linalg.svd(a @ b.T, compute_uv=False).sum())
    diff = mu_a - mu_b
    value = float(diff @ diff + (a * a).sum() + (b * b).sum() - 2.0 * tr_covmean)
    return max(value, 0.0)


def fid(
    images_a: torch.Tensor, images_b: torch.Tensor, device: str | torch.device = "cpu", batch_size: int = 32
) -> float:
    """FID between two sets of RGB uint8 images (N, 3, H, W) (values 0..255); each set needs >= 2 images."""
    fa = inception_features(images_a.split(batch_size), device)
    fb = inception_features(images_b.split(batch_size), device)
    return fid_from_features(fa, fb)


# ---------------------------------------------------------------------------------------------------- LPIPS
def lpips_distance(
    x0: torch.Tensor, x1: torch.Tensor, net: str = "alex", rgb_bands: Sequence[int] = (0, 1, 2)
) -> torch.Tensor:
    """LPIPS distance per pair of images (N, C, H, W) in [-1, 1]; returns (N,) on the CPU."""
    model = lpips_network(net, x0.device)
    with torch.inference_mode():
        return model(_rgb(x0, rgb_bands).float(), _rgb(x1, rgb_bands).float()).cpu()


def masked_lpips(
    x0: torch.Tensor,
    x1: torch.Tensor,
    regions: torch.Tensor | np.ndarray,
    net: str = "alex",
    rgb_bands: Sequence[int] = (0, 1, 2),
) -> torch.Tensor:
    """LPIPS spatial map averaged over a region, per image pair.

    Args:
        x0: Images (N, C, H, W) in [-1, 1].
        x1: Images of the same shape.
        regions: Boolean (N, H, W) or (H, W) region(s); the map is averaged over the True pixels.
        net: ``alex`` or ``vgg``.
        rgb_bands: Bands used as RGB.

    Returns:
        (N,) float tensor on the CPU; NaN where a region is empty.
    """
    model = lpips_network(net, x0.device)
    reg = torch.as_tensor(np.asarray(regions) if isinstance(regions, np.ndarray) else regions).bool()
    if reg.ndim == 2:
        reg = reg[None].expand(x0.shape[0], -1, -1)
    with torch.inference_mode():
        dmap = model.spatial(_rgb(x0, rgb_bands).float(), _rgb(x1, rgb_bands).float())[:, 0].cpu()
    w = reg.cpu().to(dmap.dtype)
    count = w.sum(dim=(1, 2))
    total = (dmap * w).sum(dim=(1, 2))
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, math.nan))


REGION_MODES = ("masked", "spatial")


def region_lpips(
    x0: torch.Tensor,
    x1: torch.Tensor,
    regions: torch.Tensor | np.ndarray,
    net: str = "alex",
    mode: str = "masked",
    rgb_bands: Sequence[int] = (0, 1, 2),
) -> torch.Tensor:
    """LPIPS restricted to a region, per image pair (see the module docstring for both definitions).

    Args:
        x0: Images (N, C, H, W) in [-1, 1].
        x1: Images of the same shape.
        regions: Boolean (N, H, W) or (H, W) region(s).
        net: ``alex`` or ``vgg``.
        mode: ``masked`` (LPIPS of the images with everything outside the region set to 0) or ``spatial``
            (LPIPS spatial map averaged over the region, :func:`masked_lpips`).
        rgb_bands: Bands used as RGB.

    Returns:
        (N,) float tensor on the CPU; NaN where a region is empty.
    """
    if mode == "spatial":
        return masked_lpips(x0, x1, regions, net=net, rgb_bands=rgb_bands)
    if mode != "masked":
        raise ValueError(f"unknown region mode {mode!r}; use one of {REGION_MODES}")
    reg = torch.as_tensor(np.asarray(regions) if isinstance(regions, np.ndarray) else regions).bool()
    if reg.ndim == 2:
        reg = reg[None].expand(x0.shape[0], -1, -1)
    w = reg[:, None].to(device=x0.device, dtype=torch.float32)
    d = lpips_distance(_rgb(x0, rgb_bands).float() * w, _rgb(x1, rgb_bands).float() * w, net=net)
    return torch.where(reg.flatten(1).any(dim=1).cpu(), d, torch.full_like(d, math.nan))


@dataclass
class DiversityResult:
    """LPIPS diversity: mean pairwise LPIPS of samples for the same mask.

    Attributes:
        mean: Mean over masks of the per-mask mean LPIPS.
        std: Standard deviation over masks.
        per_mask: Per-mask mean LPIPS.
        samples: Samples generated per mask.
        pairs: Pairs compared per mask.
        net: LPIPS network.
    """

    mean: float
    std: float
    per_mask: list[float]
    samples: int
    pairs: int
    net: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form."""
        return {
            "lpips": self.mean,
            "std": self.std,
            "masks": len(self.per_mask),
            "samples_per_mask": self.samples,
            "pairs_per_mask": self.pairs,
            "net": self.net,
            "per_mask": self.per_mask,
        }


def _mask_seed(seed: int, i: int, j: int = 0) -> int:
    return int((seed * 1_000_003 + i * 10_007 + j) % (2**31 - 1))


def _as_mask(mask: Any) -> np.ndarray:
    m = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"masks must be (H, W), got shape {m.shape}")
    return m.astype(np.uint8)


def lpips_diversity(
    generator: GeneratorLike,
    masks: Sequence[Any],
    samples: int = 10,
    pairs: int = 10,
    seed: int = 0,
    net: str = "alex",
    rgb_bands: Sequence[int] = (0, 1, 2),
    progress: ProgressFn | None = None,
) -> DiversityResult:
    """LPIPS diversity of a generator (10 samples per mask, 10 random pairs per mask, mean LPIPS).

    Args:
        generator: Object with ``sample_noise(batch, seed=)`` and ``generate(mask, noise=, seed=)``.
        masks: (H, W) internal-convention masks.
        samples: Images generated per mask (>= 2).
        pairs: Distinct unordered pairs compared per mask (at most ``samples * (samples - 1) / 2``).
        seed: Base seed (noise and pair choice are derived from it).
        net: LPIPS network.
        rgb_bands: Bands used as RGB.
        progress: Called with 1 after each mask.
    """
    if samples < 2:
        raise ValueError("diversity needs at least 2 samples per mask")
    all_pairs = [(a, b) for a in range(samples) for b in range(a + 1, samples)]
    pairs = min(pairs, len(all_pairs))
    rng = np.random.default_rng(seed)
    per_mask = []
    for i, mask in enumerate(masks):
        m = _as_mask(mask)
        batch = np.repeat(m[None], samples, axis=0)
        noise = generator.sample_noise(samples, seed=_mask_seed(seed, i))
        with torch.inference_mode():
            imgs = generator.generate(batch, noise=noise, seed=_mask_seed(seed, i))
        chosen = rng.choice(len(all_pairs), size=pairs, replace=False)
        ia = torch.tensor([all_pairs[c][0] for c in chosen])
        ib = torch.tensor([all_pairs[c][1] for c in chosen])
        d = lpips_distance(imgs[ia], imgs[ib], net=net, rgb_bands=rgb_bands)
        per_mask.append(float(d.mean()))
        if progress is not None:
            progress(1)
    arr = np.array(per_mask, dtype=np.float64)
    return DiversityResult(
        mean=float(arr.mean()) if arr.size else math.nan,
        std=float(arr.std()) if arr.size else math.nan,
        per_mask=per_mask,
        samples=samples,
        pairs=pairs,
        net=net,
    )


@dataclass
class ClassDiversityResult:
    """mCSD / mOCD (class-specific / other-class diversity under one-class embedding resampling).

    Attributes:
        mcsd: Mean over classes of the per-class CSD (higher = the class's appearance varies).
        mocd: Mean over classes of the per-class OCD (lower = the rest of the image stays put).
        per_class_csd: Per-class CSD (mean over masks containing the class); None for classes never evaluated.
        per_class_ocd: Per-class OCD, likewise.
        per_class_masks: Number of masks each class was evaluated on.
        net: LPIPS network.
        min_pixels: Minimum pixels of a class in a mask for it to be evaluated there.
        region: Region restriction used (``masked`` or ``spatial``, see the module docstring).
    """

    mcsd: float
    mocd: float
    per_class_csd: list[float | None]
    per_class_ocd: list[float | None]
    per_class_masks: list[int]
    net: str
    min_pixels: int
    region: str = "masked"

    def to_dict(self, class_names: Sequence[str] | None = None) -> dict[str, Any]:
        """JSON-friendly form (per-class values keyed by class name when names are given)."""
        names = list(class_names) if class_names is not None else [str(k) for k in range(len(self.per_class_csd))]
        return {
            "mcsd": self.mcsd,
            "mocd": self.mocd,
            "net": self.net,
            "min_pixels": self.min_pixels,
            "region": self.region,
            "per_class": {
                n: {"csd": c, "ocd": o, "masks": m}
                for n, c, o, m in zip(names, self.per_class_csd, self.per_class_ocd, self.per_class_masks)
                if m > 0
            },
        }


def class_specific_diversity(
    generator: GeneratorLike,
    masks: Sequence[Any],
    num_classes: int,
    seed: int = 0,
    net: str = "alex",
    min_pixels: int = 64,
    region: str = "masked",
    rgb_bands: Sequence[int] = (0, 1, 2),
    progress: ProgressFn | None = None,
) -> ClassDiversityResult:
    """mCSD / mOCD as defined in this module's docstring.

    Args:
        generator: Object with ``sample_noise``, ``resample_class`` and ``generate``.
        masks: (H, W) internal-convention masks.
        num_classes: K.
        seed: Base seed.
        net: LPIPS network.
        min_pixels: A class is evaluated in a mask only if it covers at least this many pixels there.
        region: ``masked`` (default) or ``spatial`` region restriction.
        rgb_bands: Bands used as RGB.
        progress: Called with 1 after each mask.

    Raises:
        ValueError: If the generator has no noise to resample (``sample_noise`` returns None) or ``region`` is
            unknown.
    """
    if region not in REGION_MODES:
        raise ValueError(f"unknown region mode {region!r}; use one of {REGION_MODES}")
    csd: list[list[float]] = [[] for _ in range(num_classes)]
    ocd: list[list[float]] = [[] for _ in range(num_classes)]
    for i, mask in enumerate(masks):
        m = _as_mask(mask)
        counts = np.bincount(m.ravel(), minlength=256)[:num_classes]
        classes = [k for k in range(num_classes) if counts[k] >= min_pixels]
        if classes:
            noise = generator.sample_noise(1, seed=_mask_seed(seed, i))
            if noise is None:
                raise ValueError("this generator has no noise input: mCSD / mOCD are not defined for it")
            with torch.inference_mode():
                x0 = generator.generate(m[None], noise=noise, seed=_mask_seed(seed, i))
                edited = []
                for k in classes:
                    nk = generator.resample_class(noise, k, seed=_mask_seed(seed, i, k + 1))
                    edited.append(generator.generate(m[None], noise=nk, seed=_mask_seed(seed, i)))
            xk = torch.cat(edited)
            inside = torch.from_numpy(np.stack([m == k for k in classes]))
            base = x0.expand_as(xk)
            d_in = region_lpips(base, xk, inside, net=net, mode=region, rgb_bands=rgb_bands)
            d_out = region_lpips(base, xk, ~inside, net=net, mode=region, rgb_bands=rgb_bands)
            for j, k in enumerate(classes):
                csd[k].append(float(d_in[j]))
                if not math.isnan(float(d_out[j])):
                    ocd[k].append(float(d_out[j]))
        if progress is not None:
            progress(1)
    pc_csd = [float(np.mean(v)) if v else None for v in csd]
    pc_ocd = [float(np.mean(v)) if v else None for v in ocd]
    vc = [v for v in pc_csd if v is not None]
    vo = [v for v in pc_ocd if v is not None]
    return ClassDiversityResult(
        mcsd=float(np.mean(vc)) if vc else math.nan,
        mocd=float(np.mean(vo)) if vo else math.nan,
        per_class_csd=pc_csd,
        per_class_ocd=pc_ocd,
        per_class_masks=[len(v) for v in csd],
        net=net,
        min_pixels=min_pixels,
        region=region,
    )
