"""The pretrained-feature discriminator (``--feature-d vgg``, rsaug.gan.feature_discriminator) on real GID-15 data:
frozen VGG, trained heads, fixed mixing, gradients into G, default off, exact resume, CLI errors."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from rsaug.core.errors import InputError
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.config import LossConfig, TrainConfig
from rsaug.gan.feature_discriminator import (
    FEATURE_LAYERS,
    FeatureDiscriminator,
    build_feature_discriminator,
    check_feature_discriminator,
)
from rsaug.gan.log import read_log
from rsaug.gan.losses import hinge_d_fake_loss, hinge_d_real_loss, hinge_g_loss
from rsaug.gan.models import build_models
from rsaug.gan.objectives import TrainBatch, feature_discriminator_objective, generator_objective
from rsaug.gan.trainer import Trainer, train
from rsaug.gan.vgg import load_vgg19_state
from rsaug.tiling import TileOptions, tile_scenes
from tests.fixtures_tiles import gid15_fixture_stems, gid15_pairs
from tests.fixtures_train import tiny_configs
from tests.gan.test_augment import ALL, K, _crops, _draw
from tests.gan.test_cli_train import _one_line_error
from tests.gan.test_networks import tiny

torch.set_num_threads(2)

FD_COLUMNS = ("g_fd", "fd_real", "fd_fake", "fd_total")
LOSSES = ("g_adv", "g_fm", "g_fd", "g_cond", "g_total", "d_real", "d_fake", "d_total", "fd_real", "fd_fake", "fd_total")


@pytest.fixture(scope="module")
def batch() -> TrainBatch:
    return TrainBatch.from_crops(_crops(), K, "cpu")


def _fd(out_bands: int = 3, seed: int = 5) -> FeatureDiscriminator:
    torch.manual_seed(0)
    fd = build_feature_discriminator("vgg", tiny(num_classes=K, out_bands=out_bands), mix_seed=seed)
    assert isinstance(fd, FeatureDiscriminator)
    return fd


def _vgg_state_unchanged(fd: FeatureDiscriminator) -> bool:
    ref = load_vgg19_state()
    return all(
        torch.equal(conv.weight, ref[name][0]) and torch.equal(conv.bias, ref[name][1])
        for name, conv in fd.extractor.convs.items()
    )


# ----------------------------------------------------------------------------------------------- the network
def test_vgg_is_frozen_and_outside_the_state_heads_learn_mixing_is_fixed(batch: TrainBatch) -> None:
    fd = _fd()
    assert build_feature_discriminator("none", tiny(num_classes=K)) is None
    vgg_params = list(fd.extractor.parameters())
    assert vgg_params and not any(p.requires_grad for p in vgg_params) and not fd.extractor.training
    own = {id(p) for p in fd.parameters()}
    assert not own & {id(p) for p in vgg_params}
    # the state dict: heads and the three mixing buffers only, no VGG weight (16 MB) in it
    state = fd.state_dict()
    assert {k for k in state if k.startswith("mix_")} == {"mix_0", "mix_1", "mix_2"}
    assert all(k.startswith(("mix_", "heads.")) for k in state)
    assert sum(v.numel() for v in state.values()) < sum(p.numel() for p in vgg_params) / 4
    assert [m.shape[0] for m in fd.mixing()] == [128, 256, 512] and len(FEATURE_LAYERS) == 3
    assert not any(m.requires_grad for m in fd.mixing())
    # outputs: one patch map per scale at 1/2, 1/4 and 1/8 of the 32-px crops
    out = fd(batch.onehot, batch.image)
    assert [tuple(s[-1].shape) for s in out] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    # one optimiser step of the feature discriminator's own loss: the heads change, VGG and mixing do not
    mix_before = [m.clone() for m in fd.mixing()]
    heads_before = {k: v.clone() for k, v in fd.heads.state_dict().items()}
    fake = torch.tanh(torch.randn_like(batch.image))
    opt = torch.optim.Adam(fd.parameters(), lr=4e-4, betas=(0.0, 0.9))
    loss, terms = feature_discriminator_objective(fd, batch, fake, weight=2.0)
    assert list(terms) == ["fd_real", "fd_fake", "fd_total"] and torch.equal(loss, 2.0 * terms["fd_total"])
    opt.zero_grad()
    loss.backward()
    assert all(p.grad is None for p in vgg_params)
    opt.step()
    after = fd.heads.state_dict()
    changed = [k for k in heads_before if "original" in k and not torch.equal(heads_before[k], after[k])]
    assert len(changed) == 6  # both spectrally normalised convolutions of all three heads
    assert all(torch.equal(a, b) for a, b in zip(mix_before, fd.mixing()))
    assert _vgg_state_unchanged(fd)
    # the mixing is a function of its seed alone
    assert all(torch.equal(a, b) for a, b in zip(_fd(seed=5).mixing(), mix_before))
    assert not torch.equal(_fd(seed=6).mixing()[0], mix_before[0])
    # .to() / .cuda() / .double() reach the hidden extractor (what Fabric's setup uses to move FD to the device)
    fd.double()
    assert fd.extractor.convs["block1_conv1"].weight.dtype == torch.float64 and fd.mixing()[0].dtype == torch.float64
    assert fd(batch.onehot.double(), batch.image.double())[0][-1].dtype == torch.float64


def test_generator_gets_gradient_from_the_feature_term_alone_through_the_d_view(batch: TrainBatch) -> None:
    torch.manual_seed(0)
    m = build_models(tiny(num_classes=K, n_layers_d=2))
    fd = _fd()
    fd.requires_grad_(False)  # the trainer freezes the heads for the generator's step
    fd.eval()  # no spectral-norm power iteration: FD is the same function in every call compared below
    lc = LossConfig(lambda_vgg=0.0, lambda_cond=0.0)
    cfg = tiny(num_classes=K, n_layers_d=2)
    noise = m.G.sample_noise(2, generator=torch.Generator().manual_seed(1), device="cpu")
    for draw in (None, _draw(ALL, 3)):
        m.G.zero_grad()
        total, terms, fake = generator_objective(
            m.G, None, None, None, batch, noise, cfg, lc, lambda: None, draw, feature_d=fd, feature_d_weight=0.5
        )
        assert list(terms) == ["g_fd", "g_total"] and torch.equal(total, torch.zeros(()) + 0.5 * terms["g_fd"])
        # FD judged the fake and the label map as D sees them: the same DiffAugment draw on both
        onehot = batch.onehot if draw is None else draw.onehot(batch.labels, K + 1)
        seen = fake if draw is None else draw.images(fake)
        assert torch.equal(terms["g_fd"], hinge_g_loss(fd(onehot, seen)))
        total.backward()
        grads = [p.grad for p in m.G.parameters() if p.grad is not None]
        assert grads and sum(float(g.abs().sum()) for g in grads) > 0
        assert all(p.grad is None for p in fd.parameters()) and all(p.grad is None for p in fd.extractor.parameters())
    # the real/fake terms of FD's update use the same view too
    draw = _draw(ALL, 4)
    _, d = feature_discriminator_objective(fd, batch, fake, augment=draw)
    onehot = draw.onehot(batch.labels, K + 1)
    assert torch.equal(d["fd_real"], hinge_d_real_loss(fd(onehot, draw.images(batch.image))))
    assert torch.equal(d["fd_fake"], hinge_d_fake_loss(fd(onehot, draw.images(fake.detach()))))


def test_band_mapping_first_three_bands_are_rgb_and_fewer_are_refused(batch: TrainBatch) -> None:
    fd4 = _fd(out_bands=4).eval()
    nir = torch.rand(2, 1, 32, 32) * 2 - 1
    a = fd4(batch.onehot, torch.cat([batch.image, nir], dim=1))
    b = fd4(batch.onehot, torch.cat([batch.image, -nir], dim=1))
    c = fd4(batch.onehot, torch.cat([batch.image.flip(1), nir], dim=1))
    assert all(torch.equal(x[-1], y[-1]) for x, y in zip(a, b))  # the 4th band is not seen
    assert not torch.equal(a[0][-1], c[0][-1])  # the first three are
    for bands in (1, 2):
        with pytest.raises(InputError, match=r"needs at least 3 bands \(RGB first\)") as err:
            _fd(out_bands=bands)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="feature_d must be one of none, vgg"):
        check_feature_discriminator("resnet", 3)


def test_train_config_options() -> None:
    cfg = TrainConfig()
    assert (cfg.feature_d, cfg.feature_d_weight) == ("none", 1.0)
    cfg.validate()
    TrainConfig(feature_d="vgg", feature_d_weight=3).validate()
    TrainConfig(feature_d="vgg", diffaug="color", discriminator=False).validate()  # FD alone is a discriminator
    bad = [
        ({"feature_d": "vgg", "feature_d_weight": 0}, "feature_d_weight must be a number > 0, got 0"),
        ({"feature_d": "vgg", "feature_d_weight": -1.5}, "feature_d_weight must be a number > 0"),
        ({"feature_d": "vgg", "feature_d_weight": float("nan")}, "feature_d_weight must be a number > 0"),
        ({"feature_d_weight": 2.0}, "feature_d_weight 2.0 has no effect without feature_d vgg"),
        ({"feature_d": "clip"}, "feature_d must be one of none, vgg, got 'clip'"),
    ]
    for kw, message in bad:
        with pytest.raises(InputError) as err:
            TrainConfig(**kw).validate()  # type: ignore[arg-type]
        assert message in str(err.value), (kw, str(err.value))
    # configs stored before the option existed load as off
    old = {k: v for k, v in TrainConfig().to_dict().items() if not k.startswith("feature_d")}
    assert TrainConfig.from_dict(old).feature_d == "none"


# ----------------------------------------------------------------------------------------------- training
def test_default_off_is_todays_training_and_the_option_leaves_the_other_draws_alone(
    gid15_tileset: Path, tmp_path: Path
) -> None:
    kw = dict(steps=2, checkpoint_every=2, sample_every=0)
    off = train(gid15_tileset, tmp_path / "off", *tiny_configs(**kw))
    on = train(gid15_tileset, tmp_path / "on", *tiny_configs(feature_d="vgg", **kw))
    ck_off, ck_on = load_checkpoint(off.checkpoint), load_checkpoint(on.checkpoint)
    # off: no feature discriminator anywhere - same state, schedulers and log columns as before the option
    assert ck_off["FD"] is None and ck_off["opt_FD"] is None and set(ck_off["schedulers"]) == {"G", "D", "C"}
    assert ck_off["train_config"]["feature_d"] == "none"
    log_off, log_on = read_log(tmp_path / "off" / "log.csv"), read_log(tmp_path / "on" / "log.csv")
    assert not set(FD_COLUMNS) & set(log_off[0])
    # on: its columns are logged and finite, its state and optimiser are checkpointed
    assert all(np.isfinite(r[k]) for r in log_on for k in LOSSES)
    assert ck_on["FD"] is not None and ck_on["opt_FD"] is not None and "FD" in ck_on["schedulers"]
    assert ck_on["train_config"]["feature_d"] == "vgg"
    # step 1 of both runs starts from the same G, D, C, batch and noise: every term that does not involve FD
    # is bit-identical (FD is built from its own seeds), the generator's update then differs
    for k in ("g_adv", "g_fm", "g_cond", "d_real", "c_real", "c_fake"):
        assert log_off[0][k] == log_on[0][k], k
    assert log_off[0]["g_total"] != log_on[0]["g_total"]
    assert any(not torch.equal(ck_off["G"][k], ck_on["G"][k]) for k in ck_off["G"])


def test_feature_d_training_resumes_exactly(gid15_tileset: Path, tmp_path: Path) -> None:
    kw = dict(steps=3, checkpoint_every=1, sample_every=0, feature_d="vgg", feature_d_weight=0.5, diffaug=ALL)
    full = train(gid15_tileset, tmp_path / "full", *tiny_configs(**kw))
    train(gid15_tileset, tmp_path / "part", *tiny_configs(**kw), stop_after=2)
    resumed = Trainer(gid15_tileset, tmp_path / "part", resume=True)
    assert resumed.cfg.feature_d == "vgg" and resumed.cfg.feature_d_weight == 0.5
    assert resumed.fit().steps == 3
    log_full, log_part = read_log(tmp_path / "full" / "log.csv"), read_log(tmp_path / "part" / "log.csv")
    assert [int(r["step"]) for r in log_part] == [1, 2, 3]
    for a, b in zip(log_full, log_part):
        for k in LOSSES:
            assert a[k] == b[k], (k, a["step"], a[k], b[k])
    a, b = load_checkpoint(full.checkpoint), load_checkpoint(tmp_path / "part" / "checkpoints" / "last.ckpt")
    for net in ("G", "D", "C", "FD", "G_ema"):
        assert set(a[net]) == set(b[net])
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    for k, v in a["opt_FD"]["state"].items():
        assert torch.equal(v["exp_avg"], b["opt_FD"]["state"][k]["exp_avg"])
    # between steps 2 and 3 the heads trained while the mixing stayed what the seed made it
    step2 = load_checkpoint(tmp_path / "full" / "checkpoints" / "step_000002.ckpt")["FD"]
    assert any(not torch.equal(step2[k], a["FD"][k]) for k in a["FD"] if k.startswith("heads."))
    fresh = resumed.FD
    assert fresh is not None
    for i in range(3):
        assert torch.equal(step2[f"mix_{i}"], a["FD"][f"mix_{i}"])
        assert torch.equal(fresh.mixing()[i], a["FD"][f"mix_{i}"])
    assert _vgg_state_unchanged(fresh)


# ----------------------------------------------------------------------------------------------- CLI
def _run(*args: object):
    from rsaug.cli.main import cli

    return CliRunner().invoke(cli, ["train", *map(str, args)])


TINY_CLI = ["--crop-size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--lambda-vgg", "0"]


def test_cli_spade_with_the_feature_discriminator_alone(gid15_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = _run(
        gid15_tileset, "-o", run, *TINY_CLI, "--model", "spade", "--no-discriminator", "--feature-d", "vgg",
        "--feature-d-weight", "0.5", "--steps", "1", "--sample-every", "0",
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "g_fd" in res.output and "fd_total" in res.output
    row = read_log(run / "log.csv")[0]
    assert set(FD_COLUMNS) <= set(row) and not {"g_adv", "g_fm", "d_total"} & set(row)
    ck = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ck["D"] is None and ck["FD"] is not None and ck["model_config"]["model"] == "spade"
    assert ck["train_config"]["feature_d_weight"] == 0.5
    help_text = _run("--help").output
    assert "--feature-d [none|vgg]" in help_text and "--feature-d-weight FLOAT" in help_text


@pytest.fixture(scope="module")
def narrow_tilesets(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Tile sets of the first one and two bands of real GID-15 scenes (12 scenes, 224-px tiles, 4:1:1)."""
    base = tmp_path_factory.mktemp("narrow")
    pairs = gid15_pairs(gid15_fixture_stems()[::8])
    out = {}
    with warnings.catch_warnings():  # the GID-15 scenes are not georeferenced
        warnings.simplefilter("ignore")
        for bands in (1, 2):
            scenes = []
            for image, label in pairs:
                with rasterio.open(image) as src:
                    data, profile = src.read(list(range(1, bands + 1))), src.profile
                profile.update(count=bands, photometric="MINISBLACK")
                dst = base / f"b{bands}" / image.name
                dst.parent.mkdir(exist_ok=True)
                with rasterio.open(dst, "w", **profile) as f:
                    f.write(data)
                scenes.append((dst, label))
            out[bands] = base / f"tiles{bands}"
            tile_scenes(scenes, out[bands], TileOptions(tile_size=224, scheme="gid15", split="4:1:1", seed=0))
    return out


def test_cli_rejects_bad_feature_d_options_without_writing_a_run(
    gid15_tileset: Path, narrow_tilesets: dict[int, Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    cases = [
        ([gid15_tileset, "--feature-d", "vgg", "--feature-d-weight", "0"], ["--feature-d-weight must be a number > 0"]),
        (
            [gid15_tileset, "--feature-d", "vgg", "--feature-d-weight", "-1"],
            ["--feature-d-weight must be a number > 0"],
        ),
        ([gid15_tileset, "--feature-d-weight", "2"], ["--feature-d-weight 2.0 has no effect without --feature-d vgg"]),
        *(
            (
                [narrow_tilesets[n], "--feature-d", "vgg"],
                [str(narrow_tilesets[n]), f"needs at least 3 bands (RGB first); the images have {n}", "--feature-d"],
            )
            for n in (1, 2)
        ),
    ]
    for args, fragments in cases:
        res = _run(args[0], "-o", run, *TINY_CLI, *args[1:])
        _one_line_error(res, *fragments)
        assert not run.exists(), args
