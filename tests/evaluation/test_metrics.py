"""Metric implementations against known values, on real GID-15 tiles."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from rsaug.core.classes import IGNORE
from rsaug.evaluation.metrics import (
    GaussianStats,
    class_specific_diversity,
    fid_from_features,
    frechet_distance,
    inception_features,
    lpips_diversity,
    region_lpips,
    to_uint8_rgb,
)
from tests.conftest import GID15

torch.set_num_threads(2)
K = 15


def _gid_stems(n: int) -> list[str]:
    stems = sorted(p.stem for p in (GID15 / "images").glob("*.tif"))
    step = max(1, len(stems) // n)
    return stems[::step][:n]


def _gid_images(n: int) -> torch.Tensor:
    arrs = [np.asarray(Image.open(GID15 / "images" / f"{s}.tif"))[:224, :224, :3] for s in _gid_stems(n)]
    return torch.from_numpy(np.stack(arrs).transpose(0, 3, 1, 2).copy())


def _gid_masks(n: int, size: int = 64) -> list[np.ndarray]:
    out = []
    for s in _gid_stems(60):
        m = np.asarray(Image.open(GID15 / "labels_index" / f"{s}.tif"))[:size, :size].astype(np.uint8)
        m = np.where(m == 15, IGNORE, m).astype(np.uint8)
        if len([k for k in range(K) if (m == k).sum() >= 64]) >= 2:
            out.append(m)
        if len(out) == n:
            break
    assert len(out) == n
    return out


# ------------------------------------------------------------------------------------------------------ FID
@pytest.fixture(scope="module")
def gid_features() -> dict[str, np.ndarray]:
    """Inception features of 24 real GID-15 tiles and of blurred / noisy copies of them."""
    imgs = _gid_images(24)
    gen = torch.Generator().manual_seed(0)
    variants = {"real": imgs}
    for sigma in (1.0, 2.0, 4.0):
        variants[f"blur{sigma}"] = TF.gaussian_blur(imgs.float(), kernel_size=int(6 * sigma) | 1, sigma=sigma)
    for std in (8.0, 24.0, 64.0):
        noisy = imgs.float() + std * torch.randn(imgs.shape, generator=gen)
        variants[f"noise{std}"] = noisy.round().clamp(0, 255).to(torch.uint8)
    return {k: inception_features(v.split(16)) for k, v in variants.items()}


def test_fid_of_a_set_against_itself_is_zero(gid_features) -> None:
    f = gid_features["real"]
    assert f.shape == (24, 2048)
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-3)
    # permuting the set changes nothing
    assert fid_from_features(f, f[::-1]) == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("family, levels", [("blur", (1.0, 2.0, 4.0)), ("noise", (8.0, 24.0, 64.0))])
def test_fid_grows_monotonically_with_distortion(gid_features, family, levels) -> None:
    real = gid_features["real"]
    values = [fid_from_features(real, gid_features[f"{family}{lv}"]) for lv in levels]
    assert 1.0 < values[0] < values[1] < values[2], values


def test_frechet_distance_matches_scipy_sqrtm_and_torchmetrics() -> None:
    scipy_linalg = pytest.importorskip("scipy.linalg")
    rng = np.random.default_rng(0)
    a = rng.normal(size=(200, 24))
    b = rng.normal(loc=0.3, scale=1.5, size=(150, 24)) @ rng.normal(size=(24, 24)) * 0.3
    sa, sb = GaussianStats.from_features(a), GaussianStats.from_features(b)
    covmean = scipy_linalg.sqrtm(sa.sigma @ sb.sigma).real
    expected = float(((sa.mu - sb.mu) ** 2).sum() + np.trace(sa.sigma + sb.sigma - 2 * covmean))
    assert frechet_distance(sa, sb) == pytest.approx(expected, rel=1e-8)
    assert fid_from_features(a, b) == pytest.approx(expected, rel=1e-8)  # N > D: eigendecomposition path
    assert (
        fid_from_features(a[:10], b[:12])
        == pytest.approx(  # N < D: nuclear-norm path
            frechet_distance(GaussianStats.from_features(a[:10]), GaussianStats.from_features(b[:12])), rel=1e-6
        )
    )

    from torchmetrics.image.fid import FrechetInceptionDistance

    class Identity(torch.nn.Module):
        num_features = 24

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    metric = FrechetInceptionDistance(feature=Identity())
    metric.update(torch.from_numpy(a), real=True)
    metric.update(torch.from_numpy(b), real=False)
    assert float(metric.compute()) == pytest.approx(expected, rel=1e-4)


def test_to_uint8_rgb() -> None:
    x = torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 4).expand(1, 4, 1, 4)
    out = to_uint8_rgb(x, rgb_bands=(2, 1, 0))
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 4)
    assert out[0, 0, 0].tolist() == [0, 128, 255, 255]
    with pytest.raises(ValueError):
        to_uint8_rgb(x, rgb_bands=(0, 1, 7))


# ---------------------------------------------------------------------------------------- fake generators
class LocalFakeGenerator:
    """Deterministic generator with the generation API's shape whose pixels depend only on their own class's noise.

    noise: (B, K, 4) per-class codes. A class-k pixel is ``0.6 tanh(code[:3]) + 0.35 sin(texture_k(x, y) +
    code[3])``; unknown pixels are 0. So ``resample_class(noise, k)`` provably changes only class-k pixels.
    ``leak`` adds a global brightness term driven by every class's code (a generator that is *not* local).
    """

    def __init__(self, num_classes: int = K, leak: float = 0.0, use_noise: bool = True) -> None:
        self.num_classes = num_classes
        self.leak = leak
        self.use_noise = use_noise

    def sample_noise(self, batch: int, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed or 0))
        return torch.randn(batch, self.num_classes, 4, generator=g)

    def resample_class(self, noise: torch.Tensor, class_index: int, seed: int | None = None) -> torch.Tensor:
        g = torch.Generator().manual_seed(int(seed or 0))
        out = noise.clone()
        out[:, class_index] = torch.randn(noise.shape[0], 4, generator=g)
        return out

    def generate(self, mask, noise=None, seed=None) -> torch.Tensor:
        m = torch.as_tensor(np.asarray(mask)).long()
        if m.ndim == 2:
            m = m[None]
        b, h, w = m.shape
        if noise is None or not self.use_noise:
            noise = torch.zeros(b, self.num_classes, 4)
        yy, xx = torch.meshgrid(
            torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij"
        )
        img = torch.zeros(b, 3, h, w)
        for k in range(self.num_classes):
            sel = (m == k)[:, None].float()
            tex = torch.sin(xx * (0.3 + 0.1 * k) + yy * (0.5 - 0.02 * k))
            colour = 0.6 * torch.tanh(noise[:, k, :3])[:, :, None, None]
            pattern = 0.35 * torch.sin(tex[None, None] * 3 + noise[:, k, 3][:, None, None, None])
            img = img + sel * (colour + pattern)
        if self.leak:
            img = img + self.leak * torch.tanh(noise[:, :, 0].sum(dim=1))[:, None, None, None]
        return img.clamp(-1, 1)


def test_mcsd_mocd_on_a_provably_local_generator() -> None:
    masks = _gid_masks(4)
    local = class_specific_diversity(LocalFakeGenerator(), masks, num_classes=K, seed=3)
    assert local.mcsd > 0.01
    assert local.mocd == pytest.approx(0.0, abs=1e-6)
    evaluated = [k for k in range(K) if local.per_class_masks[k] > 0]
    assert len(evaluated) >= 2
    for k in range(K):
        expected = sum(int((m == k).sum() >= 64) for m in masks)
        assert local.per_class_masks[k] == expected
    assert local.mcsd == pytest.approx(np.mean([local.per_class_csd[k] for k in evaluated]))
    d = local.to_dict([f"c{k}" for k in range(K)])
    assert set(d["per_class"]) == {f"c{k}" for k in evaluated}
    # the same seed gives the same numbers
    again = class_specific_diversity(LocalFakeGenerator(), masks, num_classes=K, seed=3)
    assert again.mcsd == local.mcsd

    # a generator whose class-k code also changes other pixels is caught
    leaky = class_specific_diversity(LocalFakeGenerator(leak=0.5), masks, num_classes=K, seed=3)
    assert leaky.mocd > 0.005

    # the spatial-map variant: OCD is not exactly 0 (receptive fields cross borders) but clearly below CSD
    spatial = class_specific_diversity(LocalFakeGenerator(), masks, num_classes=K, seed=3, region="spatial")
    assert 0 < spatial.mocd < spatial.mcsd


def test_region_lpips_empty_region_is_nan() -> None:
    x0 = torch.zeros(2, 3, 32, 32)
    x1 = torch.rand(2, 3, 32, 32) * 2 - 1
    regions = torch.zeros(2, 32, 32, dtype=torch.bool)
    regions[1, :16] = True
    for mode in ("masked", "spatial"):
        d = region_lpips(x0, x1, regions, mode=mode)
        assert math.isnan(float(d[0])) and float(d[1]) > 0


def test_lpips_diversity() -> None:
    masks = _gid_masks(2)
    res = lpips_diversity(LocalFakeGenerator(), masks, samples=10, pairs=10, seed=0)
    assert len(res.per_mask) == 2 and res.pairs == 10 and res.samples == 10
    assert 0.02 < res.mean < 1.0
    frozen = lpips_diversity(LocalFakeGenerator(use_noise=False), masks, samples=4, pairs=10, seed=0)
    assert frozen.pairs == 6  # at most all 4*3/2 distinct pairs
    assert frozen.mean == pytest.approx(0.0, abs=1e-6)
