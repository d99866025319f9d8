"""Trainer on real GID-15 tiles: learning, checkpoints, exact resume, ablations, data pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError, RsaugError
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.config import ModelConfig
from rsaug.gan.data import StepSampler, TileCrops
from rsaug.gan.log import read_log
from rsaug.gan.models import build_models
from rsaug.gan.networks.generator import to_model_labels
from rsaug.gan.trainer import Trainer, TrainingDiverged, train
from rsaug.gan.training_state import lr_factor, refresh_batchnorm
from rsaug.io.normalization import Normalization, compute_normalization
from rsaug.io.tileset import TileSet, write_tile
from tests.fixtures_train import TINY_STEPS, tiny_configs

LOSS_COLUMNS_OF = {
    "g_adv",
    "g_fm",
    "g_vgg",
    "g_cond",
    "g_kl",
    "g_ds",
    "g_total",
    "d_real",
    "d_fake",
    "d_total",
    "c_real",
    "c_fake",
    "c_total",
}


def _columns(run: Path) -> list[str]:
    return (run / "log.csv").read_text().splitlines()[0].split(",")


# ----------------------------------------------------------------------------------------------- learning
def test_short_run_lowers_conductor_and_feature_matching_losses(tiny_checkpoint: Path) -> None:
    run = tiny_checkpoint.parents[1]
    log = read_log(run / "log.csv")
    assert [int(r["step"]) for r in log] == list(range(1, TINY_STEPS + 1))
    n = 25
    for key in ("c_total", "c_real", "c_fake", "g_fm"):
        first = np.mean([r[key] for r in log[:n]])
        last = np.mean([r[key] for r in log[-n:]])
        assert last < first, f"{key}: mean of first {n} steps {first:.4f}, of last {n} steps {last:.4f}"
    assert all(np.isfinite(r["g_total"]) for r in log)
    # learning rates: constant for the first half, linear decay to zero over the second half
    assert log[0]["lr_g"] == pytest.approx(1e-4) and log[0]["lr_d"] == pytest.approx(4e-4)
    assert log[TINY_STEPS // 2 - 1]["lr_g"] == pytest.approx(1e-4)
    assert log[-1]["lr_g"] == pytest.approx(1e-4 / (TINY_STEPS // 2), rel=1e-3)
    # monitoring rows and sample grids at the sample interval
    monitored = [r for r in log if "val_c_real" in r]
    assert [int(r["step"]) for r in monitored] == [TINY_STEPS // 2, TINY_STEPS]
    # diversity / texture diagnostics: real GID-15 crops have texture, two noise samples differ, the embeddings'
    # scales and shifts are logged
    for r in monitored:
        assert 0.02 < r["val_texture_real"] < 0.5 and 0 <= r["val_texture_fake"] < 1
        assert r["val_sample_diff"] > 0
        assert 0.5 < r["embed_scale"] < 2 and r["embed_shift"] > 0
    from PIL import Image

    grid = Image.open(run / "samples" / f"step_{TINY_STEPS:06d}.png")
    # 2 rows x (mask | real | 2 fakes) of 32-px cells with 2-px padding
    assert grid.size == (4 * 34 + 2, 2 * 34 + 2)
    assert (run / "checkpoints" / f"step_{TINY_STEPS // 2:06d}.ckpt").is_file()


# ----------------------------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from rsaug.core.files import read_json

    ck = load_checkpoint(tiny_checkpoint)
    assert ck["step"] == TINY_STEPS and ck["total_steps"] == TINY_STEPS
    assert ck["scheme"]["name"] == "gid15" and len(ck["scheme"]["classes"]) == 15
    assert ck["normalization"] == {"dtype": "uint8", "low": [0.0] * 3, "high": [255.0] * 3}
    assert ck["tileset"]["format"] == "rsaug-tileset"
    assert {"torch", "numpy", "python"} <= set(ck["rng"])
    assert set(ck["schedulers"]) == {"G", "D", "C"}
    cfg = ModelConfig.from_dict(ck["model_config"])
    assert (cfg.num_classes, cfg.out_bands, cfg.crop_size, cfg.ngf) == (15, 3, 32, 8)
    run_cfg = read_json(tiny_checkpoint.parents[1] / "config.json")
    assert run_cfg["model"] == ck["model_config"] and run_cfg["train"] == ck["train_config"]
    models = build_models(cfg)
    for name, net in (("G", models.G), ("D", models.D), ("C", models.C)):
        net.load_state_dict(ck[name], strict=True)
    # EMA weights differ from the raw generator after training
    diffs = [not torch.equal(a, b) for a, b in zip(ck["G"].values(), ck["G_ema"].values()) if a.is_floating_point()]
    assert any(diffs)
    # last.ckpt is the same content as the final step checkpoint
    step_file = tiny_checkpoint.parent / f"step_{TINY_STEPS:06d}.ckpt"
    assert step_file.read_bytes() == tiny_checkpoint.read_bytes()
    # a re-saved copy loads identically
    copy = tmp_path / "copy.ckpt"
    torch.save(ck, copy)
    ck2 = load_checkpoint(copy)
    assert all(torch.equal(ck["G_ema"][k], ck2["G_ema"][k]) for k in ck["G_ema"])


def test_resume_gives_the_same_steps_as_an_uninterrupted_run(gid15_tileset: Path, tmp_path: Path) -> None:
    kw = dict(steps=4, checkpoint_every=2, sample_every=0)
    full = train(gid15_tileset, tmp_path / "full", *tiny_configs(lambda_vgg=10.0, **kw))
    train(gid15_tileset, tmp_path / "part", *tiny_configs(lambda_vgg=10.0, **kw), stop_after=2)
    assert load_checkpoint(tmp_path / "part" / "checkpoints" / "last.ckpt")["step"] == 2
    resumed = Trainer(gid15_tileset, tmp_path / "part", resume=True).fit()
    assert resumed.steps == full.steps == 4
    log_full, log_part = read_log(tmp_path / "full" / "log.csv"), read_log(tmp_path / "part" / "log.csv")
    assert [int(r["step"]) for r in log_part] == [1, 2, 3, 4]
    for a, b in zip(log_full, log_part):
        for k in LOSS_COLUMNS_OF & set(a):
            assert a[k] == b[k], (k, a["step"], a[k], b[k])
    a = load_checkpoint(full.checkpoint)
    b = load_checkpoint(resumed.checkpoint)
    for net in ("G", "G_ema", "D", "C"):
        for k in a[net]:
            assert torch.equal(a[net][k], b[net][k]), (net, k)
    for k, v in a["opt_G"]["state"].items():
        assert torch.equal(v["exp_avg"], b["opt_G"]["state"][k]["exp_avg"])


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(
    gid15_tileset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rsaug.gan.losses as losses

    real_hinge = losses.hinge_g_loss
    calls = {"n": 0}

    def poisoned(fake):  # the adversarial term turns NaN at step 3
        calls["n"] += 1
        out = real_hinge(fake)
        return out * float("nan") if calls["n"] == 3 else out

    monkeypatch.setattr(losses, "hinge_g_loss", poisoned)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss g_adv = nan at step 3.*last good checkpoint") as err:
        train(gid15_tileset, tmp_path / "run", *tiny_configs(steps=4, checkpoint_every=2, sample_every=0))
    assert isinstance(err.value, RsaugError) and err.value.exit_code == 1 and "\n" not in str(err.value)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.ckpt")["step"] == 2
    assert [int(r["step"]) for r in read_log(tmp_path / "run" / "log.csv")] == [1, 2]


# ----------------------------------------------------------------------------------------------- ablations
ABLATIONS = {
    "joint": ({}, {}),
    "no-conductor": ({"conductor": "none"}, {}),
    "conductor-no-real": ({"conductor": "no-real"}, {}),
    "frozen-pretrain": ({"conductor": "frozen", "frozen_conductor": "pretrain", "conductor_pretrain_steps": 3}, {}),
    "no-discriminator": ({"discriminator": False}, {}),
    "no-shared-embeddings": ({}, {"share_embeddings": False}),
    "vspade": ({}, {"model": "vspade"}),
    "pix2pixhd": ({}, {"model": "pix2pixhd", "p2p_downsampling": 2, "p2p_blocks": 1}),
}


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablation_flags_change_the_training_graph(name: str, gid15_tileset: Path, tmp_path: Path) -> None:
    train_kw, model_kw = ABLATIONS[name]
    model_kw = dict(model_kw)
    model = model_kw.pop("model", "csebgan")
    cfg, mcfg, lcfg = tiny_configs(
        model, model_overrides=model_kw, steps=2, checkpoint_every=1, sample_every=0, **train_kw
    )
    res = train(gid15_tileset, tmp_path / "run", cfg, mcfg, lcfg)
    cols = set(_columns(res.run_dir))
    ck1 = load_checkpoint(res.run_dir / "checkpoints" / "step_000001.ckpt")
    ck2 = load_checkpoint(res.checkpoint)
    losses = cols & LOSS_COLUMNS_OF
    if name == "joint":
        assert losses == {
            "g_adv",
            "g_fm",
            "g_cond",
            "g_total",
            "d_real",
            "d_fake",
            "d_total",
            "c_real",
            "c_fake",
            "c_total",
        }
        assert ck2["C"] is not None and ck2["opt_C"] is not None
    if name == "no-conductor":
        assert ck2["C"] is None and ck2["opt_C"] is None and "C" not in ck2["schedulers"]
        assert not cols & {"g_cond", "c_real", "c_fake", "c_total", "lr_c", "val_c_real", "val_c_fake"}
        assert losses == {"g_adv", "g_fm", "g_total", "d_real", "d_fake", "d_total"}
    if name == "conductor-no-real":
        assert "c_real" not in cols and {"c_fake", "c_total", "g_cond"} <= cols
        assert any(not torch.equal(ck1["C"][k], ck2["C"][k]) for k in ck1["C"])  # trained on fakes
    if name == "frozen-pretrain":
        assert "g_cond" in cols and not {"c_real", "c_fake", "c_total", "lr_c"} & cols
        assert ck2["opt_C"] is None
        assert all(torch.equal(ck1["C"][k], ck2["C"][k]) for k in ck1["C"])  # frozen
        torch.manual_seed(cfg.seed)
        from rsaug.gan.networks.conductor import build_conductor

        fresh = build_conductor(ModelConfig.from_dict(ck2["model_config"])).state_dict()
        assert any(not torch.equal(fresh[k], ck2["C"][k]) for k in fresh)  # but pre-trained
    if name == "no-discriminator":
        assert ck2["D"] is None and ck2["opt_D"] is None
        assert losses == {"g_cond", "g_total", "c_real", "c_fake", "c_total"}
    if name == "no-shared-embeddings":
        assert ck2["model_config"]["share_embeddings"] is False
        assert ck2["G"]["embeddings.shift"].shape[0] > 1  # one embedding set per modulation layer
        assert ck1["model_config"]["share_embeddings"] is False
    if name == "vspade":
        assert "g_kl" in cols and any(k.startswith("encoder.") for k in ck2["G"])
    if name == "pix2pixhd":
        assert ck2["model_config"]["model"] == "pix2pixhd"


def test_no_shared_embeddings_has_more_embedding_parameters(gid15_tileset: Path) -> None:
    _, shared, _ = tiny_configs()
    _, unshared, _ = tiny_configs(model_overrides={"share_embeddings": False})
    n = [sum(p.numel() for p in build_models(c).G.embeddings.parameters()) for c in (shared, unshared)]
    assert n[1] > n[0]


def test_frozen_conductor_from_a_checkpoint_is_used_as_is(
    tiny_checkpoint: Path, gid15_tileset: Path, tmp_path: Path
) -> None:
    cfg, mcfg, lcfg = tiny_configs(steps=1, sample_every=0, conductor="frozen", frozen_conductor=str(tiny_checkpoint))
    res = train(gid15_tileset, tmp_path / "run", cfg, mcfg, lcfg)
    src, ck = load_checkpoint(tiny_checkpoint)["C"], load_checkpoint(res.checkpoint)["C"]
    assert all(torch.equal(src[k], ck[k]) for k in src)


def test_diversity_loss_column_and_model_without_noise_rejected(gid15_tileset: Path, tmp_path: Path) -> None:
    from rsaug.gan.config import LossConfig

    cfg, mcfg, _ = tiny_configs(steps=1, sample_every=0)
    res = train(gid15_tileset, tmp_path / "ds", cfg, mcfg, LossConfig(lambda_vgg=0.0, lambda_ds=1.0))
    log = read_log(res.run_dir / "log.csv")
    assert "g_ds" in log[0] and -1.0 <= log[0]["g_ds"] < 0
    cfg, mcfg, _ = tiny_configs("spade", steps=1)
    with pytest.raises(InputError, match="diversity-sensitive loss needs a generator with noise"):
        Trainer(gid15_tileset, tmp_path / "spade", cfg, mcfg, LossConfig(lambda_ds=1.0))


# ----------------------------------------------------------------------------------------------- pieces
def test_train_config_errors_name_python_options() -> None:
    from rsaug.gan.config import TrainConfig

    with pytest.raises(InputError) as err:
        TrainConfig(steps=0).validate()
    assert str(err.value) == "steps must be at least 1, got 0"  # the CLI renders it as --steps
    assert err.value.render(lambda name: "--" + name) == "--steps must be at least 1, got 0"


def test_lr_factor_linear_decay_over_second_half() -> None:
    assert [lr_factor(s, 10, 0.5) for s in (0, 4, 5, 6, 9, 10)] == [1, 1, 1, 0.8, 0.2, 0]


def test_refresh_batchnorm_gives_the_mean_of_the_batch_statistics() -> None:
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2))

    class Wrap(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, x, noise):
            return self.net(x)

    g = Wrap()
    xs = [torch.randn(3, 1, 4, 4) + i for i in range(3)]
    refresh_batchnorm(g, [(x, None) for x in xs])
    with torch.no_grad():
        means = torch.stack([net[0](x).mean(dim=(0, 2, 3)) for x in xs]).mean(0)
    assert torch.allclose(net[1].running_mean, means, atol=1e-5) and not g.training


def test_crops_are_a_function_of_seed_and_sample_number(gid15_tileset: Path) -> None:
    tiles = TileSet.open(gid15_tileset)
    norm = compute_normalization(tiles)
    a = TileCrops(tiles, "train", 48, norm, seed=1)
    b = TileCrops(tiles, "train", 48, norm, seed=1)
    c = TileCrops(tiles, "train", 48, norm, seed=2)
    for n in (0, 7, 1000):
        assert torch.equal(a[n]["image"], b[n]["image"]) and torch.equal(a[n]["mask"], b[n]["mask"])
    assert not all(torch.equal(a[n]["image"], c[n]["image"]) for n in range(4))
    # every tile exactly once per epoch
    assert sorted(a.tile_for(n) for n in range(len(a))) == list(range(len(a)))
    s = a[3]
    assert s["image"].shape == (3, 48, 48) and s["image"].min() >= -1 and s["image"].max() <= 1
    assert set(torch.unique(s["mask"]).tolist()) <= set(range(15)) | {IGNORE}
    # the crop is a window of the stored tile (up to flips)
    raw = norm.normalize(tiles.read_image(tiles.split("train").iloc[a.tile_for(3)]))
    found = False
    for img in (s["image"], s["image"].flip(-1), s["image"].flip(-2), s["image"].flip(-1).flip(-2)):
        ys, xs = torch.nonzero((raw[:, :-47, :-47] == img[:, :1, :1]).all(0), as_tuple=True)
        found |= any(torch.equal(raw[:, y : y + 48, x : x + 48], img) for y, x in zip(ys.tolist(), xs.tolist()))
    assert found
    # rank/step layout of the sampler
    assert list(StepSampler(2, 1, 3, rank=1, world_size=2)) == [6, 7, 10, 11]


def test_unknown_maps_to_label_k_and_normalization_round_trips() -> None:
    m = torch.tensor([[0, 14, IGNORE]])
    assert to_model_labels(m, 15).tolist() == [[0, 14, 15]]
    norm = Normalization("uint16", [100.0, 0.0], [1100.0, 50.0])
    x = np.array([[[100, 600, 1100]], [[0, 25, 50]]], dtype=np.uint16)
    t = norm.normalize(x)
    assert torch.allclose(t, torch.tensor([[[-1.0, 0.0, 1.0]], [[-1.0, 0.0, 1.0]]]))
    back = norm.denormalize(t)
    assert back.dtype == np.uint16 and np.array_equal(back, x)


def _copy_tiles(src: Path, dst: Path) -> TileSet:
    shutil.copytree(src, dst)
    return TileSet.open(dst)


def test_bad_mask_values_and_empty_split_are_input_errors(gid15_tileset: Path, tmp_path: Path) -> None:
    tiles = _copy_tiles(gid15_tileset, tmp_path / "bad")
    row = tiles.split("train").iloc[0]
    mask = tiles.read_mask(row)
    mask[:3, :3] = 20
    write_tile(tiles.mask_path(row), mask, is_mask=True)
    with pytest.raises(InputError, match=r"mask values outside class scheme 'gid15'.*20 \(9 px\)"):
        Trainer(tiles.root, tmp_path / "run", *tiny_configs(steps=1))
    from rsaug.io.tileset import write_index

    empty = _copy_tiles(gid15_tileset, tmp_path / "empty")
    idx = empty.index.copy()
    idx["split"] = "test"
    write_index(empty.root, idx)
    with pytest.raises(InputError, match="'train' split of the tile set is empty"):
        Trainer(empty.root, tmp_path / "run2", *tiny_configs(steps=1))
    assert not (tmp_path / "run").exists() and not (tmp_path / "run2").exists()


def test_epochs_set_the_number_of_steps(gid15_tileset: Path, tmp_path: Path) -> None:
    cfg, mcfg, lcfg = tiny_configs(epochs=0.5)
    assert cfg.steps is None
    trainer = Trainer(gid15_tileset, tmp_path / "run", cfg, mcfg, lcfg)
    assert trainer.total_steps == int(np.ceil(0.5 * len(trainer.train_data) / cfg.batch_size))
