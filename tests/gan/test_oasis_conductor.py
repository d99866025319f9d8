"""The OASIS-style conductor (``--conductor-objective oasis``) on real GID-15 data: K+1 outputs, its targets and
class-balanced weights checked against a hand computation, unknown pixels ignored, gradients into G, LabelMix, the
default unchanged, monitoring, exact resume, old configs, CLI errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.config import LossConfig, TrainConfig
from rsaug.gan.log import read_log
from rsaug.gan.losses import oasis_conductor_loss
from rsaug.gan.models import Models, build_models
from rsaug.gan.networks.conductor import segmenter_state
from rsaug.gan.objectives import (
    TrainBatch,
    conductor_ce,
    conductor_objective,
    generator_objective,
    labelmix_coins,
)
from rsaug.gan.trainer import Trainer, train
from tests.fixtures_train import tiny_configs
from tests.gan.test_augment import ALL, K, _crops, _draw
from tests.gan.test_cli_train import _one_line_error
from tests.gan.test_networks import tiny

torch.set_num_threads(2)

VAL = ("val_c_real", "val_acc_real", "val_c_fake", "val_acc_fake")
LOSSES = ("g_cond", "g_total", "c_real", "c_fake", "c_total")


@pytest.fixture(scope="module")
def batch() -> TrainBatch:
    b = TrainBatch.from_crops(_crops(), K, "cpu")
    known = b.mask != IGNORE
    # the two real crops hold several classes each and unknown pixels, so balancing and ignoring both matter
    assert not bool(known.all()) and len(b.mask[known].unique()) >= 3
    return b


def _hand_ce(logits: torch.Tensor, mask: torch.Tensor, fake: bool) -> torch.Tensor:
    """The OASIS CE written out pixel by pixel in float64: targets the class (or K = fake), weight of class c
    ``n_known / (n_present * count_c)`` (fake: 1), averaged over the known pixels (values outside 0..K-1 unknown)."""
    logp = torch.log_softmax(logits.double(), dim=1)
    m = mask.long()
    known = (m >= 0) & (m < K)
    n = int(known.sum())
    counts = {c: int((m[known] == c).sum()) for c in range(K)}
    present = sum(1 for v in counts.values() if v)
    total = torch.zeros((), dtype=torch.float64)
    for b, i, j in known.nonzero().tolist():
        c = int(m[b, i, j])
        target, weight = (K, 1.0) if fake else (c, n / (present * counts[c]))
        total = total - weight * logp[b, target, i, j]
    return total / n


def _models(seed: int = 0, oasis: bool = True, discriminator: bool = False) -> Models:
    torch.manual_seed(seed)
    return build_models(tiny(num_classes=K, n_layers_d=2), discriminator=discriminator, conductor_fake_class=oasis)


def _noise(m: Models) -> torch.Tensor | None:
    return m.G.sample_noise(2, generator=torch.Generator().manual_seed(1), device="cpu")


# ----------------------------------------------------------------------------------------------- the loss
def test_oasis_loss_is_the_hand_computed_class_balanced_ce_and_ignores_unknown(batch: TrainBatch) -> None:
    logits = torch.randn(2, K + 1, 32, 32, generator=torch.Generator().manual_seed(3)) * 3
    real, fake = oasis_conductor_loss(logits, batch.mask), oasis_conductor_loss(logits, batch.mask, fake=True)
    assert torch.allclose(real.double(), _hand_ce(logits, batch.mask, fake=False), rtol=1e-5)
    assert torch.allclose(fake.double(), _hand_ce(logits, batch.mask, fake=True), rtol=1e-5)
    # the balancing matters on these crops: the unweighted CE over the same K+1 logits is a different number
    assert abs(float(real) - float(conductor_ce(logits, batch.mask))) > 1e-3
    # unknown pixels are ignored: any logits there leave both terms unchanged
    unknown = (batch.mask == IGNORE).unsqueeze(1).expand_as(logits)
    noisy = torch.where(unknown, logits + 100 * torch.randn_like(logits), logits)
    assert torch.equal(oasis_conductor_loss(noisy, batch.mask), real)
    assert torch.equal(oasis_conductor_loss(noisy, batch.mask, fake=True), fake)
    # the generator's unknown label K is unknown too, never the fake class
    as_k = torch.where(batch.mask == IGNORE, torch.full_like(batch.mask, K), batch.mask)
    assert torch.equal(oasis_conductor_loss(logits, as_k), real)
    assert torch.equal(oasis_conductor_loss(logits, as_k, fake=True), fake)
    # a map without a known pixel gives 0 (with a gradient path), not NaN
    empty = oasis_conductor_loss(logits, torch.full_like(batch.mask, IGNORE))
    assert float(empty) == 0.0


# ----------------------------------------------------------------------------------------------- objectives
def test_conductor_has_k_plus_one_outputs_and_its_update_has_the_oasis_targets(batch: TrainBatch) -> None:
    seg, m = _models(oasis=False), _models(oasis=True)
    assert seg.C is not None and m.C is not None
    assert seg.C(batch.image).shape == (2, K, 32, 32) and m.C(batch.image).shape == (2, K + 1, 32, 32)
    fake = torch.tanh(torch.randn_like(batch.image))
    lc = LossConfig(lambda_cond=2.0)
    loss, terms = conductor_objective(m.C, batch, fake, lc, oasis=True)
    assert list(terms) == ["c_real", "c_fake", "c_total"] and torch.equal(loss, 2.0 * terms["c_total"])
    # real pixels -> their class (class-balanced), generated pixels -> the fake class K (weight 1)
    assert torch.allclose(terms["c_real"].double(), _hand_ce(m.C(batch.image), batch.mask, False), rtol=1e-5)
    assert torch.allclose(terms["c_fake"].double(), _hand_ce(m.C(fake), batch.mask, True), rtol=1e-5)
    # the segmenter objective (K outputs) keeps its plain CE
    _, seg_terms = conductor_objective(seg.C, batch, fake, lc)
    assert torch.equal(seg_terms["c_fake"], conductor_ce(seg.C(fake), batch.mask))
    # DiffAugment: the oasis conductor sees real image, fake and mask transformed alike
    draw = _draw(ALL, 2)
    _, aug = conductor_objective(m.C, batch, fake, lc, oasis=True, augment=draw)
    seen = draw.labels(batch.mask, IGNORE)
    assert bool((seen == IGNORE).sum() > (batch.mask == IGNORE).sum())  # cut-out / shifted-in pixels are unknown
    assert torch.allclose(aug["c_real"].double(), _hand_ce(m.C(draw.images(batch.image)), seen, False), rtol=1e-5)
    assert torch.allclose(aug["c_fake"].double(), _hand_ce(m.C(draw.images(fake)), seen, True), rtol=1e-5)
    with pytest.raises(ValueError, match="augment needs oasis"):
        conductor_objective(seg.C, batch, fake, lc, augment=draw)


def test_generator_gets_gradient_from_the_oasis_g_cond_alone(batch: TrainBatch) -> None:
    m = _models()
    assert m.C is not None
    m.C.requires_grad_(False)  # as the trainer freezes it for the generator's step
    lc = LossConfig(lambda_vgg=0.0, lambda_cond=1.5)
    cfg = tiny(num_classes=K, n_layers_d=2)
    for draw in (None, _draw(ALL, 5)):
        m.G.zero_grad()
        total, terms, fake = generator_objective(
            m.G, None, m.C, None, batch, _noise(m), cfg, lc, lambda: None, draw, oasis=True
        )
        assert list(terms) == ["g_cond", "g_total"] and torch.equal(total, torch.zeros(()) + 1.5 * terms["g_cond"])
        # the generator wants its pixels classified as their class (not as fake), class-balanced
        seen, mask = (fake, batch.mask) if draw is None else (draw.images(fake), draw.labels(batch.mask, IGNORE))
        assert torch.allclose(terms["g_cond"].double(), _hand_ce(m.C(seen), mask, False), rtol=1e-5)
        total.backward()
        grads = [p.grad for p in m.G.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
        assert all(p.grad is None for p in m.C.parameters())


def test_labelmix_term_is_the_hand_computed_consistency(batch: TrainBatch) -> None:
    m = _models()
    assert m.C is not None
    m.C.eval()  # the same function in every call compared below
    fake = torch.tanh(torch.randn_like(batch.image))
    coins = labelmix_coins(2, K, torch.Generator().manual_seed(4))
    assert coins.shape == (2, K + 1) and set(coins.unique().tolist()) == {0, 1}
    lc = LossConfig(lambda_cond=1.0, lambda_labelmix=10.0)
    _, terms = conductor_objective(m.C, batch, fake, lc, oasis=True, labelmix=coins)
    assert list(terms) == ["c_real", "c_fake", "c_labelmix", "c_total"]
    expect_total = terms["c_real"] + terms["c_fake"] + 10.0 * terms["c_labelmix"]
    assert torch.allclose(terms["c_total"], expect_total)
    # by hand: per image, the pixels of each class (and the unknown ones) come from the real image where that
    # class's coin is 1, from the fake where it is 0; the logits should mix the same way (squared error, known px)
    mix = torch.zeros(2, 1, 32, 32)
    for b in range(2):
        for c in range(K + 1):
            sel = (batch.mask[b] == c) if c < K else (batch.mask[b] == IGNORE)
            mix[b, 0][sel] = float(coins[b, c])
    assert 0 < float(mix.mean()) < 1
    mixed = m.C(mix * batch.image + (1 - mix) * fake)
    target = mix * m.C(batch.image) + (1 - mix) * m.C(fake)
    known = batch.mask != IGNORE
    sq = (mixed - target).pow(2).mean(1)
    assert torch.allclose(terms["c_labelmix"], sq[known].mean(), rtol=1e-5)
    assert float(terms["c_labelmix"].detach()) > 0
    with pytest.raises(ValueError, match="needs use_real"):
        conductor_objective(m.C, batch, fake, lc, use_real=False, oasis=True, labelmix=coins)


def test_segmenter_state_drops_the_fake_class_row() -> None:
    oasis = _models(oasis=True).C
    assert oasis is not None
    state = segmenter_state(oasis.state_dict(), K)
    assert state["head.weight"].shape[0] == K and torch.equal(
        state["head.weight"], oasis.state_dict()["head.weight"][:K]
    )
    assert torch.equal(state["head.bias"], oasis.state_dict()["head.bias"][:K])
    seg = _models(oasis=False).C
    assert seg is not None
    seg.load_state_dict(state)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    oasis.eval(), seg.eval()
    assert torch.allclose(seg(x), oasis(x)[:, :K])  # the K real-class logits of the OASIS conductor
    plain = seg.state_dict()
    assert segmenter_state(plain, K) is plain


# ----------------------------------------------------------------------------------------------- options
def test_train_config_options() -> None:
    cfg = TrainConfig()
    assert cfg.conductor_objective == "segmenter" and LossConfig().lambda_labelmix == 0.0
    TrainConfig(conductor_objective="oasis").validate()
    TrainConfig(conductor_objective="oasis", discriminator=False, diffaug="color").validate()  # C judges
    bad = [
        ({"conductor_objective": "patchgan"}, "conductor_objective must be one of segmenter, oasis, got 'patchgan'"),
        ({"conductor_objective": "oasis", "conductor": "none"}, "cannot be combined with no_conductor"),
        ({"conductor_objective": "oasis", "conductor": "no-real"}, "cannot be combined with conductor_no_real"),
        (
            {"conductor_objective": "oasis", "conductor": "frozen", "frozen_conductor": "pretrain"},
            "cannot be combined with frozen_conductor",
        ),
        ({"discriminator": False, "diffaug": "color"}, "the run has no discriminator"),
    ]
    for kw, message in bad:
        with pytest.raises(InputError) as err:
            TrainConfig(**kw).validate()  # type: ignore[arg-type]
        assert message in str(err.value) and "\n" not in str(err.value), (kw, str(err.value))
    # configs stored before the options existed load as the segmenter objective without LabelMix
    old = {k: v for k, v in TrainConfig().to_dict().items() if k != "conductor_objective"}
    assert TrainConfig.from_dict(old).conductor_objective == "segmenter"
    old_loss = {k: v for k, v in LossConfig().to_dict().items() if k != "lambda_labelmix"}
    assert LossConfig.from_dict(old_loss).lambda_labelmix == 0.0
    with pytest.raises(InputError, match="lambda_labelmix must be a number >= 0"):
        LossConfig(lambda_labelmix=-1.0)


# ----------------------------------------------------------------------------------------------- training
def test_default_unchanged_and_oasis_changes_only_the_conductor_terms(gid15_tileset: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(steps=2, checkpoint_every=2, sample_every=2)
    default = train(gid15_tileset, tmp_path / "default", *tiny_configs(**kw))
    explicit = train(gid15_tileset, tmp_path / "seg", *tiny_configs(conductor_objective="segmenter", **kw))
    oasis = train(gid15_tileset, tmp_path / "oasis", *tiny_configs(conductor_objective="oasis", **kw))
    ck = {n: load_checkpoint(r.checkpoint) for n, r in (("d", default), ("s", explicit), ("o", oasis))}
    log = {n: read_log(tmp_path / d / "log.csv") for n, d in (("d", "default"), ("s", "seg"), ("o", "oasis"))}
    # the default is the segmenter objective: K outputs, the same losses, weights and columns
    assert ck["d"]["train_config"]["conductor_objective"] == "segmenter"
    assert ck["d"]["C"]["head.weight"].shape[0] == K and ck["o"]["C"]["head.weight"].shape[0] == K + 1
    for a, b in zip(log["d"], log["s"]):
        assert set(a) == set(b) and not {"val_pfake_real", "val_pfake_fake", "c_labelmix"} & set(a)
        assert all(a[k] == b[k] for k in a if k not in ("time", "images_per_s"))
    for net in ("G", "D", "C", "G_ema"):
        assert all(torch.equal(v, ck["s"][net][k]) for k, v in ck["d"][net].items()), net
    # oasis: G, D, batch and noise of step 1 are the same (C is built last), so every term that does not involve
    # the conductor is bit-identical; the conductor's terms are the OASIS ones
    first_d, first_o = log["d"][0], log["o"][0]
    for k in ("g_adv", "g_fm", "d_real", "d_fake"):
        assert first_d[k] == first_o[k], k
    for k in ("g_cond", "c_real", "c_fake"):
        assert first_d[k] != first_o[k], k
    assert all(np.isfinite(r[k]) for r in log["o"] for k in LOSSES)
    # monitoring reads the K real-class channels; the share of pixels called generated is logged too
    last = log["o"][-1]
    assert all(np.isfinite(last[k]) for k in VAL) and 0 <= last["val_acc_real"] <= 1
    assert 0 <= last["val_pfake_real"] <= 1 and 0 <= last["val_pfake_fake"] <= 1
    assert ck["o"]["train_config"]["conductor_objective"] == "oasis"


def test_oasis_without_d_with_diffaug_and_labelmix_resumes_exactly(gid15_tileset: Path, tmp_path: Path) -> None:
    kw: dict[str, Any] = dict(
        steps=3, checkpoint_every=1, sample_every=0, conductor_objective="oasis", discriminator=False, diffaug=ALL
    )
    loss = LossConfig(lambda_vgg=0.0, lambda_labelmix=10.0)
    full = train(gid15_tileset, tmp_path / "full", *tiny_configs(**kw)[:2], loss)
    train(gid15_tileset, tmp_path / "part", *tiny_configs(**kw)[:2], loss, stop_after=2)
    resumed = Trainer(gid15_tileset, tmp_path / "part", resume=True)
    assert resumed.cfg.conductor_objective == "oasis" and resumed.loss_cfg.lambda_labelmix == 10.0
    assert resumed.fit().steps == 3
    log_full, log_part = read_log(tmp_path / "full" / "log.csv"), read_log(tmp_path / "part" / "log.csv")
    assert [int(r["step"]) for r in log_part] == [1, 2, 3] and "c_labelmix" in log_full[0]
    assert not {"g_adv", "d_total"} & set(log_full[0])
    for a, b in zip(log_full, log_part):
        for k in (*LOSSES, "c_labelmix"):
            assert a[k] == b[k], (k, a["step"], a[k], b[k])
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(tmp_path / "part" / "checkpoints" / "last.ckpt")
    assert a["D"] is None
    for net in ("G", "C", "G_ema"):
        assert set(a[net]) == set(b[net]) and all(torch.equal(a[net][k], b[net][k]) for k in a[net]), net
    for k, v in a["opt_C"]["state"].items():
        assert torch.equal(v["exp_avg"], b["opt_C"]["state"][k]["exp_avg"])
    # the OASIS conductor also serves as a frozen K-class segmenter (its fake-class row dropped)
    cfg, mcfg, lcfg = tiny_configs(steps=1, sample_every=0, conductor="frozen", frozen_conductor=str(full.checkpoint))
    frozen = load_checkpoint(train(gid15_tileset, tmp_path / "frozen", cfg, mcfg, lcfg).checkpoint)["C"]
    assert torch.equal(frozen["head.weight"], a["C"]["head.weight"][:K])
    assert all(torch.equal(frozen[k], a["C"][k]) for k in frozen if not k.startswith("head."))


def test_a_checkpoint_without_the_field_resumes_as_segmenter(gid15_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    train(gid15_tileset, run, *tiny_configs(steps=2, checkpoint_every=1, sample_every=0), stop_after=1)
    last = run / "checkpoints" / "last.ckpt"
    state = load_checkpoint(last)
    del state["train_config"]["conductor_objective"]
    del state["loss_config"]["lambda_labelmix"]
    last.unlink()  # a hard link to the step file: write a separate file
    torch.save(state, last)
    resumed = Trainer(gid15_tileset, run, resume=True)
    assert resumed.cfg.conductor_objective == "segmenter" and not resumed.oasis
    assert resumed.fit().steps == 2
    assert load_checkpoint(last)["C"]["head.weight"].shape[0] == K


# ----------------------------------------------------------------------------------------------- CLI
def _run(*args: object):
    from rsaug.cli.main import cli

    return CliRunner().invoke(cli, ["train", *map(str, args)])


TINY_CLI = ["--crop-size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--lambda-vgg", "0"]


def test_cli_oasis_like_run(gid15_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = _run(
        gid15_tileset, "-o", run, *TINY_CLI, "--no-discriminator", "--conductor-objective", "oasis",
        "--lambda-labelmix", "10", "--diffaug", "color,translation", "--steps", "1", "--sample-every", "1",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "c_fake" in res.output and "c_labelmix" in res.output
    row = read_log(run / "log.csv")[0]
    assert {"g_cond", "c_real", "c_fake", "c_labelmix", "val_pfake_fake", *VAL} <= set(row)
    assert not {"g_adv", "g_vgg", "d_total"} & set(row)
    ck = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ck["D"] is None and ck["C"]["head.weight"].shape[0] == K + 1
    assert ck["train_config"]["conductor_objective"] == "oasis" and ck["loss_config"]["lambda_labelmix"] == 10.0
    help_text = _run("--help").output
    assert "--conductor-objective [segmenter|oasis]" in help_text and "--lambda-labelmix FLOAT" in help_text


def test_cli_rejects_unfitting_oasis_options_without_writing_a_run(gid15_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    oasis = ["--conductor-objective", "oasis"]
    cases = [
        ([*oasis, "--no-conductor"], "--conductor-objective oasis trains the conductor on real and generated images"),
        ([*oasis, "--conductor-no-real"], "cannot be combined with --conductor-no-real"),
        ([*oasis, "--frozen-conductor", "pretrain"], "cannot be combined with --frozen-conductor"),
        ([*oasis, "--lambda-cond", "0"], "--conductor-objective oasis needs --lambda-cond > 0"),
        (["--lambda-labelmix", "10"], "--lambda-labelmix regularises the --conductor-objective oasis conductor"),
        ([*oasis, "--lambda-labelmix", "-1"], "lambda_labelmix must be a number >= 0"),
        (["--no-discriminator", "--diffaug", "color"], "the run has no discriminator"),
    ]
    for args, fragment in cases:
        res = _run(gid15_tileset, "-o", run, *TINY_CLI, "--steps", "1", *args)
        _one_line_error(res, fragment)
        assert not run.exists(), args
    # an unknown objective is refused by the option parser itself (exit 2, nothing written)
    res = _run(gid15_tileset, "-o", run, *TINY_CLI, "--conductor-objective", "patchgan")
    assert res.exit_code == 2 and "--conductor-objective" in res.output and not run.exists()
