"""The radiometric moment loss (``--lambda-moments``) on real GID-15 crops: its value against a hand computation,
pooling over the batch (no pull onto the paired image), that it really moves a generator's per-class band means
and standard deviations onto the real ones, the default unchanged, the log column and the CLI's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.classes import IGNORE
from rsaug.gan.config import LossConfig
from rsaug.gan.log import read_log
from rsaug.gan.losses import class_moment_loss
from rsaug.gan.models import build_models
from rsaug.gan.objectives import TrainBatch, generator_objective
from rsaug.gan.trainer import train
from tests.fixtures_train import tiny_configs
from tests.gan.test_augment import K, _crops
from tests.gan.test_cli_train import TINY, _one_line_error, _run
from tests.gan.test_networks import tiny

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def batch() -> TrainBatch:
    b = TrainBatch.from_crops(_crops(), K, "cpu")
    assert bool((b.mask == IGNORE).any()) and len(b.mask[b.mask != IGNORE].unique()) >= 3
    return b


def _hand_moments(img: np.ndarray, labels: np.ndarray, groups: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Per label present: (mean, std) per band over every pixel of the batch with that label, float64."""
    out = {}
    for g in range(groups):
        sel = labels == g  # (B, H, W)
        if sel.any():
            px = np.moveaxis(img, 1, -1)[sel].astype(np.float64)  # (N, C)
            out[g] = (px.mean(0), px.std(0))
    return out


def _hand_loss(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> float:
    mf = _hand_moments(fake.double().numpy(), labels.numpy(), K + 1)
    mr = _hand_moments(real.double().numpy(), labels.numpy(), K + 1)
    errs = [np.abs(mf[g][0] - mr[g][0]) + np.abs(mf[g][1] - mr[g][1]) for g in mr]
    return float(np.mean(np.concatenate(errs)))


def test_moment_loss_is_the_hand_computed_per_label_band_moment_error(batch: TrainBatch) -> None:
    real = batch.image
    assert float(class_moment_loss(real, real, batch.onehot)) < 1e-3  # only the sqrt's eps remains
    gen = torch.Generator().manual_seed(0)
    fake = (real * 0.6 + 0.2 + 0.05 * torch.randn(real.shape, generator=gen)).clamp(-1, 1)
    got = float(class_moment_loss(fake, real, batch.onehot))
    assert got == pytest.approx(_hand_loss(fake, real, batch.labels), abs=1e-4)
    # a pure brightness shift of 0.1 costs exactly 0.1 (std unchanged); the unknown label K counts as a group
    assert float(class_moment_loss(real + 0.1, real, batch.onehot)) == pytest.approx(0.1, abs=1e-4)
    only_unknown = real.clone()
    unknown = (batch.labels == K).unsqueeze(1).expand_as(real)
    only_unknown[unknown] += 0.3
    groups = len(batch.labels.unique())
    assert float(class_moment_loss(only_unknown, real, batch.onehot)) == pytest.approx(0.3 / groups, abs=1e-3)


def test_moment_loss_pools_over_the_batch_instead_of_pulling_each_sample_onto_its_pair() -> None:
    """Two images with the same label map: swapping the fakes leaves the loss at 0 (the label's distribution over
    the batch is unchanged) although each fake now differs from its paired real image by 0.8."""
    labels = torch.zeros(2, 8, 8, dtype=torch.long)
    onehot = torch.nn.functional.one_hot(labels, 2).permute(0, 3, 1, 2).float()
    real = torch.stack([torch.full((3, 8, 8), -0.4), torch.full((3, 8, 8), 0.4)])
    assert float((real.flip(0) - real).abs().mean()) == pytest.approx(0.8)
    assert float(class_moment_loss(real.flip(0), real, onehot)) < 1e-3
    # but making both images the average colour loses the label's spread: std error 0.4 per band
    assert float(class_moment_loss(torch.zeros_like(real), real, onehot)) == pytest.approx(0.4, abs=1e-3)


def _class_band_errors_dn(fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    """Largest |mean error| (DN) and largest |std error| (%) over labels with >= 20 px and bands, by numpy."""
    to_dn = lambda x: (x.detach().double().numpy() + 1) * 127.5
    mf, mr = _hand_moments(to_dn(fake), labels.numpy(), K + 1), _hand_moments(to_dn(real), labels.numpy(), K + 1)
    big = [g for g in mr if int((labels == g).sum()) >= 20]
    mean_err = max(float(np.abs(mf[g][0] - mr[g][0]).max()) for g in big)
    std_err = max(float((np.abs(mf[g][1] / mr[g][1] - 1)).max()) * 100 for g in big)
    return mean_err, std_err


def test_moment_loss_moves_a_generator_onto_the_real_class_radiometry(batch: TrainBatch) -> None:
    """A tiny CSEBGAN trained on real crops with the moment term alone: every label's band means end within 10 DN
    of the real ones (from over 100 DN at the start), measured in DN independently of the loss function."""
    torch.manual_seed(0)
    cfg = tiny(num_classes=K, n_layers_d=2)
    G = build_models(cfg, discriminator=False, conductor=False).G
    lc = LossConfig(lambda_gan=0, lambda_fm=0, lambda_vgg=0, lambda_cond=0, lambda_moments=1.0)
    gen = torch.Generator().manual_seed(1)
    opt = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))

    def step() -> torch.Tensor:
        noise = G.sample_noise(2, generator=gen, device="cpu")
        total, terms, fake = generator_objective(G, None, None, None, batch, noise, cfg, lc, lambda: None)
        assert set(terms) == {"g_moments", "g_total"}
        opt.zero_grad()
        total.backward()
        opt.step()
        return fake

    G.train()
    before = _class_band_errors_dn(step(), batch.image, batch.labels)
    for _ in range(150):
        fake = step()
    after = _class_band_errors_dn(fake, batch.image, batch.labels)
    assert before[0] > 20, before
    assert after[0] < 10 and after[0] < before[0] / 10, (before, after)  # measured: 113 -> 6.6 DN
    assert after[1] < 30 and after[1] < before[1] / 3, (before, after)  # measured: 99 -> 19 %


def test_trainer_logs_the_term_and_the_default_run_has_none(gid15_tileset: Path, tmp_path: Path) -> None:
    cfg, mcfg, _ = tiny_configs(steps=2, checkpoint_every=2, sample_every=2)
    res = train(gid15_tileset, tmp_path / "on", cfg, mcfg, LossConfig(lambda_vgg=0, lambda_moments=5.0))
    row = read_log(tmp_path / "on" / "log.csv")[-1]
    assert float(row["g_moments"]) > 0 and res.checkpoint.exists()
    # the log's columns follow the objective's order: D's terms, (VGG, off here,) the moments, the conductor
    assert [c for c in row if c.startswith("g_") and c != "g_total"] == ["g_adv", "g_fm", "g_moments", "g_cond"]
    train(gid15_tileset, tmp_path / "off", cfg, mcfg, LossConfig(lambda_vgg=0))
    assert "g_moments" not in read_log(tmp_path / "off" / "log.csv")[-1]


def test_cli_option_and_out_of_range_weight(gid15_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = _run(gid15_tileset, "-o", run, *TINY, "--steps", "1", "--lambda-moments", "-1")
    _one_line_error(res, "lambda_moments must be a number >= 0")
    assert not run.exists()
    res = _run(gid15_tileset, "-o", run, *TINY, "--steps", "1", "--sample-every", "1", "--lambda-moments", "10")
    assert res.exit_code == 0, res.output
    assert "g_moments" in read_log(run / "log.csv")[0]
    assert "--lambda-moments FLOAT" in _run("--help").output
