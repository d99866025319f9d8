"""DiffAugment of the discriminator's inputs (rsaug.gan.augment): draws, labels, gradients, options, training."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from click.testing import CliRunner

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError
from rsaug.gan.augment import POLICIES, AugmentDraw, DiffAugment, check_probability, parse_policy
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.config import LossConfig, ModelConfig, TrainConfig
from rsaug.gan.log import read_log
from rsaug.gan.losses import feature_matching_loss, hinge_d_fake_loss, hinge_d_real_loss, hinge_g_loss
from rsaug.gan.models import Models, build_models
from rsaug.gan.objectives import TrainBatch, conductor_ce, discriminator_objective, generator_objective
from rsaug.gan.trainer import Trainer, train
from tests.conftest import GID15
from tests.fixtures_train import tiny_configs
from tests.gan.test_cli_train import _one_line_error
from tests.gan.test_networks import tiny

torch.set_num_threads(2)

K = 15
STEMS = ("artificial_grassland_006", "garden_plot_030")  # several classes each, plus unlabeled pixels
ALL = "color,translation,cutout"


def _crops(size: int = 32, step: int = 4) -> dict[str, torch.Tensor]:
    """Real GID-15 crops as the loader collates them: internal masks (255 = unknown), images in [-1, 1]."""
    masks, images = [], []
    for stem in STEMS:
        lab = tifffile.imread(GID15 / "labels_index" / f"{stem}.tif")[: size * step : step, : size * step : step]
        img = tifffile.imread(GID15 / "images" / f"{stem}.tif")[: size * step : step, : size * step : step]
        lab = lab.astype(np.int64)
        masks.append(torch.from_numpy(np.where(lab == K, IGNORE, lab)))
        images.append(torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1)
    return {"image": torch.stack(images), "mask": torch.stack(masks)}


@pytest.fixture(scope="module")
def batch() -> TrainBatch:
    return TrainBatch.from_crops(_crops(), K, "cpu")


def _config() -> ModelConfig:
    return tiny(num_classes=K, n_layers_d=2, num_d=2)


def _models() -> Models:
    torch.manual_seed(0)
    m = build_models(_config())
    assert m.D is not None and m.C is not None
    m.D.eval()  # no spectral-norm power iteration: D is the same function in every call compared below
    return m


def _noise(m: Models, seed: int) -> torch.Tensor | None:
    return m.G.sample_noise(2, generator=torch.Generator().manual_seed(seed), device="cpu")


def _draw(policy: str, seed: int, b: int = 2, h: int = 32, w: int = 32, p: float = 1.0) -> AugmentDraw:
    aug = DiffAugment.from_options(policy, p)
    assert aug is not None
    return aug.sample(b, h, w, torch.Generator().manual_seed(seed))


# ----------------------------------------------------------------------------------------------- draws
def test_same_seed_gives_the_same_transform_of_real_fake_and_labels(batch: TrainBatch) -> None:
    a, b, other = _draw(ALL, 7), _draw(ALL, 7), _draw(ALL, 8)
    for name in ("brightness", "saturation", "contrast", "shift", "cutout"):
        assert torch.equal(getattr(a, name), getattr(b, name)), name
    assert any(not torch.equal(getattr(a, n), getattr(other, n)) for n in ("brightness", "shift", "cutout"))
    fake = batch.image.clone().requires_grad_(True)
    # one draw transforms the real image and an identical fake bit for bit alike, and both like a second draw
    # from the same seed (what two processes, or a resumed run, would get)
    assert torch.equal(a.images(batch.image), a.images(fake).detach())
    assert torch.equal(a.images(batch.image), b.images(batch.image))
    assert torch.equal(a.labels(batch.labels, K), b.labels(batch.labels, K))
    assert not torch.equal(a.images(batch.image), other.images(batch.image))


def test_translation_moves_the_label_map_with_the_image_content_on_a_real_tile() -> None:
    crops = _crops(size=64, step=3)
    labels = TrainBatch.from_crops(crops, K, "cpu").labels
    image = crops["image"]
    # draws from seeded generators until both tiles move in both directions (the sampled path, not a hand-set shift)
    seed = next(s for s in range(100) if bool((_draw("translation", s, h=64, w=64).shift != 0).all()))
    draw = _draw("translation", seed, h=64, w=64)
    assert draw.shift is not None and int(draw.shift.abs().max()) <= 8  # round(64 / 8)
    moved_img, moved_lab = draw.images(image), draw.labels(labels, K)
    for i in range(2):
        dy, dx = (int(v) for v in draw.shift[i])
        # every output pixel whose source lies inside the tile holds the source pixel's value AND its label
        rows, cols = torch.meshgrid(torch.arange(64), torch.arange(64), indexing="ij")
        src_r, src_c = rows - dy, cols - dx
        inside = (src_r >= 0) & (src_r < 64) & (src_c >= 0) & (src_c < 64)
        assert 0 < int(inside.sum()) < 64 * 64
        sr, sc = src_r[inside], src_c[inside]
        assert torch.equal(moved_img[i][:, inside], image[i][:, sr, sc])
        assert torch.equal(moved_lab[i][inside], labels[i][sr, sc])
        # the pixels shifted in are zero (mid-grey) in the image and unknown in the label map
        assert torch.all(moved_img[i][:, ~inside] == 0) and torch.all(moved_lab[i][~inside] == K)
        # so the mean colour of each class is that of the same class's pixels that stayed in the tile
        for k in labels[i][sr, sc].unique().tolist():
            if k == K:
                continue
            after = moved_img[i][:, moved_lab[i] == k].mean(1)
            before = image[i][:, sr, sc][:, labels[i][sr, sc] == k].mean(1)
            assert torch.allclose(after, before, atol=1e-6), k
    # the one-hot label input of D is the one-hot of the moved labels
    onehot = draw.onehot(labels, K + 1)
    assert onehot.shape == (2, K + 1, 64, 64) and torch.equal(onehot.argmax(1), moved_lab)
    assert torch.all(onehot.sum(1) == 1)


def test_cutout_cuts_the_same_pixels_of_image_and_labels(batch: TrainBatch) -> None:
    draw = _draw("cutout", 3)
    cut = draw.cutout
    assert cut is not None and cut.shape == (2, 32, 32)
    assert all(0 < int(c.sum()) <= 16 * 16 for c in cut)  # one hole of at most half the size each way
    out, lab = draw.images(batch.image), draw.labels(batch.labels, K)
    for i in range(2):
        assert torch.all(out[i][:, cut[i]] == 0) and torch.equal(out[i][:, ~cut[i]], batch.image[i][:, ~cut[i]])
        assert torch.all(lab[i][cut[i]] == K) and torch.equal(lab[i][~cut[i]], batch.labels[i][~cut[i]])
    # over many images the hole is half the size each way when it lies inside, clipped at the border otherwise
    many = _draw("cutout", 0, b=300).cutout
    assert many is not None
    sizes = many.flatten(1).sum(1)
    assert int(sizes.max()) == 16 * 16 and int(sizes.min()) > 0 and bool((sizes < 16 * 16).any())


def test_color_changes_images_not_labels_and_saturation_depends_on_band_count(batch: TrainBatch) -> None:
    draw = _draw("color", 5)
    out = draw.images(batch.image)
    assert not torch.equal(out, batch.image) and torch.equal(draw.labels(batch.labels, K), batch.labels)
    assert torch.equal(draw.onehot(batch.labels, K + 1), batch.onehot)
    # by hand: brightness, saturation (3 bands), contrast, DiffAugment's formulas
    x = batch.image + draw.brightness
    m = x.mean(1, keepdim=True)
    x = (x - m) * draw.saturation + m
    m = x.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(out, (x - m) * draw.contrast + m, atol=1e-6)
    # 4 bands: saturation acts on the first three (RGB) only; the fourth sees brightness and contrast only
    four = torch.cat([batch.image, batch.image[:, :1] * 0.5], 1)
    sat = DiffAugment(("color",)).sample(2, 32, 32, torch.Generator().manual_seed(5))
    y = sat.images(four)
    b4 = four + sat.brightness
    assert sat.saturation is not None and sat.contrast is not None
    rgb = b4[:, :3]
    rgb = (rgb - rgb.mean(1, keepdim=True)) * sat.saturation + rgb.mean(1, keepdim=True)
    z = torch.cat([rgb, b4[:, 3:]], 1)
    mz = z.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(y, (z - mz) * sat.contrast + mz, atol=1e-6)
    # 1 band: no saturation at all (brightness and contrast only)
    one = batch.image[:, :1]
    y1 = sat.images(one)
    b1 = one + sat.brightness
    m1 = b1.mean((1, 2, 3), keepdim=True)
    assert torch.allclose(y1, (b1 - m1) * sat.contrast + m1, atol=1e-6)


def test_probability_switches_transforms_off_per_image() -> None:
    draw = _draw(ALL, 0, b=400, p=0.5)
    assert draw.brightness is not None and draw.saturation is not None and draw.shift is not None
    assert draw.cutout is not None and draw.contrast is not None
    for off in (draw.brightness.flatten() == 0, draw.saturation.flatten() == 1, draw.cutout.flatten(1).sum(1) == 0):
        assert 0.4 < off.float().mean() < 0.6
    full = _draw(ALL, 0, b=400, p=1.0)
    assert full.brightness is not None and full.cutout is not None and full.shift is not None
    assert not bool((full.brightness == 0).any()) and bool((full.cutout.flatten(1).sum(1) > 0).all())
    # shifts stay within round(32 / 8) = 4 pixels and reach both ends
    assert int(full.shift.min()) == -4 and int(full.shift.max()) == 4
    # an image whose transforms are all off is returned unchanged, with its labels
    x = torch.randn(400, 3, 32, 32)
    labels = torch.randint(0, K + 1, (400, 32, 32))
    off = (draw.brightness.flatten() == 0) & (draw.saturation.flatten() == 1) & (draw.contrast.flatten() == 1)
    off &= (draw.shift == 0).all(1) & (draw.cutout.flatten(1).sum(1) == 0)
    assert off.any()
    assert torch.allclose(draw.images(x)[off], x[off], atol=1e-6)
    assert torch.equal(draw.labels(labels, K)[off], labels[off])


# ----------------------------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("policy", [*POLICIES, ALL])
@pytest.mark.parametrize("p", [1.0, 0.5])
def test_gradients_flow_through_every_policy(policy: str, p: float) -> None:
    draw = _draw(policy, 11, b=2, h=8, w=8, p=p)
    x = torch.randn(2, 4, 8, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(draw.images, (x,))
    y = draw.images(x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_gradients_reach_the_generator_through_the_augmented_discriminator_terms(batch: TrainBatch) -> None:
    m = _models()
    lc = LossConfig(lambda_vgg=0.0, lambda_cond=0.0)
    for policy in (ALL, "cutout"):
        draw = _draw(policy, 2)
        _, terms, fake = generator_objective(
            m.G, m.D, None, None, batch, _noise(m, 1), _config(), lc, lambda: None, draw
        )
        assert list(terms) == ["g_adv", "g_fm", "g_total"] and all(torch.isfinite(v) for v in terms.values())
        params = list(m.G.parameters())
        grads = torch.autograd.grad(terms["g_adv"] + terms["g_fm"], [fake, *params], allow_unused=True)
        g_fake = grads[0]
        assert g_fake is not None and g_fake.abs().sum() > 0
        assert any(g is not None and g.abs().sum() > 0 for g in grads[1:])
        if policy == "cutout":
            # pixels cut out of the fake (the same ones as of the real and the labels) give G no gradient
            assert draw.cutout is not None
            cut = draw.cutout.unsqueeze(1).expand_as(g_fake)
            assert cut.any() and torch.all(g_fake[cut] == 0) and g_fake[~cut].abs().sum() > 0


# ----------------------------------------------------------------------------------------------- default off
def test_default_off_is_the_unaugmented_objective_bit_for_bit(batch: TrainBatch) -> None:
    assert TrainConfig().diffaug == "" and TrainConfig().diffaug_p == 1.0
    assert DiffAugment.from_options("", 1.0) is None
    lc = LossConfig(lambda_vgg=0.0)
    a, b = _models(), _models()
    cfg = _config()
    total, terms, fake = generator_objective(a.G, a.D, a.C, None, batch, _noise(a, 1), cfg, lc, lambda: None)
    # the objective as written before DiffAugment, by hand, on an identical copy of the networks
    fake_b, _ = b.G(batch.labels, _noise(b, 1), None)
    pred_fake = b.D(batch.onehot, fake_b)
    with torch.no_grad():
        pred_real = b.D(batch.onehot, batch.image)
    g_adv, g_fm = hinge_g_loss(pred_fake), feature_matching_loss(pred_real, pred_fake, weight=1.0)
    g_cond = conductor_ce(b.C(fake_b), batch.mask)
    by_hand = torch.zeros(()) + lc.lambda_gan * g_adv + lc.lambda_fm * g_fm + lc.lambda_cond * g_cond
    assert torch.equal(fake, fake_b)
    for name, v in (("g_adv", g_adv), ("g_fm", g_fm), ("g_cond", g_cond), ("g_total", by_hand)):
        assert torch.equal(terms[name], v), name
    total.backward()
    by_hand.backward()
    for pa, pb in zip(a.G.parameters(), b.G.parameters()):
        assert (pa.grad is None and pb.grad is None) or torch.equal(pa.grad, pb.grad)
    d_total, d = discriminator_objective(a.D, batch, fake)
    d_real = hinge_d_real_loss(b.D(batch.onehot, batch.image))
    d_fake = hinge_d_fake_loss(b.D(batch.onehot, fake_b.detach()))
    assert torch.equal(d["d_real"], d_real) and torch.equal(d["d_fake"], d_fake)
    assert torch.equal(d_total, d_real + d_fake)
    # and with a draw the discriminator really sees something else
    _, d_aug = discriminator_objective(a.D, batch, fake, augment=_draw(ALL, 0))
    assert not torch.equal(d_aug["d_real"], d["d_real"])


# ----------------------------------------------------------------------------------------------- options
@pytest.mark.parametrize("p", [0, 0.0, -0.1, 1.5, float("nan"), True, "0.5"])
def test_probability_outside_zero_one_is_rejected(p: object) -> None:
    with pytest.raises(InputError, match=r"diffaug_p must be a probability in \(0, 1\]"):
        check_probability(p)
    with pytest.raises(InputError):
        TrainConfig(diffaug="color", diffaug_p=p).validate()  # type: ignore[arg-type]
    with pytest.raises(InputError):
        DiffAugment(("color",), p)  # type: ignore[arg-type]


def test_policy_strings() -> None:
    assert parse_policy("") == () and parse_policy(" translation , color ") == ("translation", "color")
    cfg = TrainConfig(diffaug=" cutout,color ", diffaug_p=0.3)
    cfg.validate()
    assert cfg.diffaug == "cutout,color"
    for bad, fragment in (
        ("bogus", "unknown policy 'bogus'"),
        ("color,,cutout", "unknown policy (an empty name)"),
        ("color,color", "listed twice"),
        ("Color", "unknown policy 'Color'"),
    ):
        with pytest.raises(InputError, match=fragment.replace("(", r"\(").replace(")", r"\)")) as err:
            TrainConfig(diffaug=bad).validate()
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="no effect without diffaug"):
        TrainConfig(diffaug_p=0.5).validate()
    with pytest.raises(InputError, match="no discriminator"):
        TrainConfig(diffaug="color", discriminator=False).validate()


def test_cli_rejects_bad_diffaug_options_without_writing_a_run(gid15_tileset: Path, tmp_path: Path) -> None:
    from rsaug.cli.main import cli

    cases = [
        (["--diffaug", "bogus"], ["--diffaug: unknown policy 'bogus'"]),
        (["--diffaug", "color", "--diffaug-p", "0"], ["--diffaug-p must be a probability in (0, 1], got 0.0"]),
        (["--diffaug-p", "0.5"], ["--diffaug-p 0.5 has no effect without --diffaug POLICY"]),
        (["--diffaug", "cutout", "--no-discriminator"], ["--diffaug augments", "no discriminator"]),
    ]
    for args, fragments in cases:
        run = tmp_path / "run"
        res = CliRunner().invoke(cli, ["train", str(gid15_tileset), "-o", str(run), *args])
        _one_line_error(res, *fragments)
        assert not run.exists(), args
    help_text = CliRunner().invoke(cli, ["train", "--help"]).output
    assert "--diffaug POLICY" in help_text and "--diffaug-p FLOAT" in help_text and "[default: (off)]" in help_text


# ----------------------------------------------------------------------------------------------- training
def test_training_with_diffaug_logs_finite_losses_and_resumes_exactly(gid15_tileset: Path, tmp_path: Path) -> None:
    kw = dict(steps=3, checkpoint_every=2, sample_every=0, diffaug=ALL)
    full = train(gid15_tileset, tmp_path / "full", *tiny_configs(**kw))
    log_full = read_log(tmp_path / "full" / "log.csv")
    assert [int(r["step"]) for r in log_full] == [1, 2, 3]
    losses = ("g_adv", "g_fm", "g_cond", "g_total", "d_real", "d_fake", "d_total", "c_real", "c_fake", "c_total")
    assert all(np.isfinite(r[k]) for r in log_full for k in losses)
    ck = load_checkpoint(full.checkpoint)
    assert ck["train_config"]["diffaug"] == ALL and ck["train_config"]["diffaug_p"] == 1.0

    # interrupted after step 2, resumed from the stored config alone (no config given): the same steps
    train(gid15_tileset, tmp_path / "part", *tiny_configs(**kw), stop_after=2)
    resumed = Trainer(gid15_tileset, tmp_path / "part", resume=True).fit()
    assert resumed.steps == full.steps == 3
    log_part = read_log(tmp_path / "part" / "log.csv")
    assert [int(r["step"]) for r in log_part] == [1, 2, 3]
    for a, b in zip(log_full, log_part):
        for k in losses:
            assert a[k] == b[k], (k, a["step"], a[k], b[k])
    ck_b = load_checkpoint(resumed.checkpoint)
    for net in ("G", "G_ema", "D", "C"):
        for k in ck[net]:
            assert torch.equal(ck[net][k], ck_b[net][k]), (net, k)

    # the augmentation is live: step 1 without it gives other discriminator terms, but the conductor (which
    # never sees augmented images) and the generator's conductor term are bit-identical
    plain = Trainer(gid15_tileset, tmp_path / "plain", *tiny_configs(steps=1, sample_every=0))
    assert plain.diffaug is None
    plain.fit()
    first = read_log(tmp_path / "plain" / "log.csv")[0]
    for k in ("g_adv", "g_fm", "d_real", "d_fake"):
        assert first[k] != log_full[0][k], k
    for k in ("g_cond", "c_real", "c_fake"):
        assert first[k] == log_full[0][k], k
