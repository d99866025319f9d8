"""The three training objectives called directly on tiny networks and real GID-15 crops."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F

from rsaug.core.classes import IGNORE
from rsaug.gan.config import LossConfig, ModelConfig
from rsaug.gan.losses import PerceptualLoss
from rsaug.gan.models import Models, build_models
from rsaug.gan.objectives import (
    TrainBatch,
    conductor_objective,
    discriminator_objective,
    generator_objective,
)
from tests.conftest import GID15

torch.set_num_threads(2)

STEMS = ("artificial_grassland_006", "garden_plot_030")  # 4-5 classes each, plus unlabeled pixels
K = 15


def _crops(size: int = 32) -> dict[str, torch.Tensor]:
    """Real GID-15 crops as the data loader collates them: internal masks (255 = unknown), images in [-1, 1]."""
    masks, images = [], []
    step = 192 // size
    for stem in STEMS:
        lab = tifffile.imread(GID15 / "labels_index" / f"{stem}.tif")[:192:step, :192:step].astype(np.int64)
        img = tifffile.imread(GID15 / "images" / f"{stem}.tif")[:192:step, :192:step]
        masks.append(torch.from_numpy(np.where(lab == K, IGNORE, lab)))
        images.append(torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1)
    return {"image": torch.stack(images), "mask": torch.stack(masks)}


def _config(model: str = "csebgan") -> ModelConfig:
    return ModelConfig(
        model=model,
        num_classes=K,
        crop_size=32,
        ngf=4,
        ndf=8,
        num_upsampling=3,
        embed_dim=8,
        mlp_hidden=8,
        spade_hidden=8,
        z_dim=8,
        n_layers_d=2,
        num_d=2,
        cond_width=4,
        cond_depth=2,
    )


def _models(model: str = "csebgan") -> Models:
    torch.manual_seed(0)
    return build_models(_config(model))


@pytest.fixture(scope="module")
def batch() -> TrainBatch:
    return TrainBatch.from_crops(_crops(), K, "cpu")


def _noise(m: Models, n: int, seed: int) -> torch.Tensor | None:
    return m.G.sample_noise(n, generator=torch.Generator().manual_seed(seed), device="cpu")


def test_train_batch_labels_and_onehot(batch: TrainBatch) -> None:
    unknown = batch.mask == IGNORE
    assert unknown.any() and (~unknown).any()
    assert torch.equal(batch.labels[unknown], torch.full_like(batch.labels[unknown], K))
    assert torch.equal(batch.labels[~unknown], batch.mask[~unknown])
    assert batch.onehot.shape == (2, K + 1, 32, 32) and batch.onehot.dtype == torch.float32
    assert torch.equal(batch.onehot.argmax(1), batch.labels) and torch.all(batch.onehot.sum(1) == 1)


def test_discriminator_objective_is_the_hinge_loss_by_hand(batch: TrainBatch) -> None:
    m = _models()
    m.D.eval()  # spectral norm's power iteration would otherwise change D between the calls compared here
    fake = (torch.rand_like(batch.image) * 2 - 1).requires_grad_(True)
    total, terms = discriminator_objective(m.D, batch, fake)
    assert list(terms) == ["d_real", "d_fake", "d_total"] and total is terms["d_total"]
    with torch.no_grad():
        real_pred = [scale[-1] for scale in m.D(batch.onehot, batch.image)]
        fake_pred = [scale[-1] for scale in m.D(batch.onehot, fake)]
    assert len(real_pred) == 2  # two discriminator scales, averaged
    by_hand_real = sum(float(torch.clamp(1 - p, min=0).mean()) for p in real_pred) / 2
    by_hand_fake = sum(float(torch.clamp(1 + p, min=0).mean()) for p in fake_pred) / 2
    assert terms["d_real"].item() == pytest.approx(by_hand_real, rel=1e-6)
    assert terms["d_fake"].item() == pytest.approx(by_hand_fake, rel=1e-6)
    assert total.item() == pytest.approx(by_hand_real + by_hand_fake, rel=1e-6)
    total.backward()
    assert fake.grad is None  # the fake is detached: nothing flows back into the generator
    assert all(p.grad is not None for p in m.D.parameters())


def test_generator_objective_terms_and_weights(batch: TrainBatch) -> None:
    m = _models()
    lc = LossConfig(lambda_gan=2.0, lambda_fm=3.0, lambda_vgg=5.0, lambda_cond=7.0)
    vgg = PerceptualLoss(feature_scale=lc.vgg_feature_scale)
    drawn = []
    total, terms, fake = generator_objective(
        m.G, m.D, m.C, vgg, batch, _noise(m, 2, 1), _config(), lc, draw_noise=lambda: drawn.append(1)
    )
    assert list(terms) == ["g_adv", "g_fm", "g_vgg", "g_cond", "g_total"] and total is terms["g_total"]
    assert not drawn  # the second noise is only drawn for the diversity-sensitive term
    assert all(torch.isfinite(v) for v in terms.values())
    assert terms["g_fm"].item() > 0 and terms["g_vgg"].item() > 0 and terms["g_cond"].item() > 0
    weighted = 2 * terms["g_adv"] + 3 * terms["g_fm"] + 5 * terms["g_vgg"] + 7 * terms["g_cond"]
    assert total.item() == pytest.approx(weighted.item(), rel=1e-5)
    assert fake.shape == batch.image.shape and fake.requires_grad
    total.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in m.G.parameters())


def test_generator_objective_without_discriminator_and_conductor(batch: TrainBatch) -> None:
    m = _models()
    lc = LossConfig(lambda_vgg=0.0, lambda_ds=1.0)
    noise = _noise(m, 2, 1)
    second = _noise(m, 2, 2)
    calls = []

    def draw() -> torch.Tensor | None:
        calls.append(1)
        return second

    total, terms, _ = generator_objective(m.G, None, None, None, batch, noise, _config(), lc, draw_noise=draw)
    assert list(terms) == ["g_ds", "g_total"] and len(calls) == 1
    assert -1.0 <= terms["g_ds"].item() < 0  # minus the clamped image/noise distance ratio
    assert total.item() == pytest.approx(terms["g_ds"].item())


def test_vspade_generator_objective_has_a_kl_term(batch: TrainBatch) -> None:
    m = _models("vspade")
    lc = LossConfig(lambda_vgg=0.0, lambda_kl=0.5)
    total, terms, _ = generator_objective(
        m.G, m.D, m.C, None, batch, None, _config("vspade"), lc, draw_noise=lambda: None
    )
    assert list(terms) == ["g_adv", "g_fm", "g_cond", "g_kl", "g_total"]
    assert terms["g_kl"].item() > 0
    by_hand = terms["g_adv"] + 10 * terms["g_fm"] + terms["g_cond"] + 0.5 * terms["g_kl"]
    assert total.item() == pytest.approx(by_hand.item(), rel=1e-5)


def test_conductor_objective_ignores_unknown_pixels(batch: TrainBatch) -> None:
    m = _models()
    lc = LossConfig(lambda_cond=2.5)
    fake = (torch.rand_like(batch.image) * 2 - 1).requires_grad_(True)
    loss, terms = conductor_objective(m.C, batch, fake, lc)
    assert list(terms) == ["c_real", "c_fake", "c_total"]
    # cross-entropy over the known pixels only, by hand
    known = batch.mask != IGNORE
    for name, image in (("c_real", batch.image), ("c_fake", fake)):
        with torch.no_grad():
            logits = m.C(image).float().permute(0, 2, 3, 1)[known]  # (known pixels, K)
        assert terms[name].item() == pytest.approx(F.cross_entropy(logits, batch.mask[known]).item(), rel=1e-5)
    assert terms["c_total"].item() == pytest.approx(terms["c_real"].item() + terms["c_fake"].item(), rel=1e-6)
    assert loss.item() == pytest.approx(2.5 * terms["c_total"].item(), rel=1e-6)
    loss.backward()
    assert fake.grad is None
    # a batch whose pixels are all unknown costs nothing; without the real term only c_fake remains
    blank = TrainBatch.from_crops({"image": batch.image, "mask": torch.full_like(batch.mask, IGNORE)}, K, "cpu")
    loss, terms = conductor_objective(m.C, blank, fake, lc, use_real=False)
    assert list(terms) == ["c_fake", "c_total"] and loss.item() == 0
