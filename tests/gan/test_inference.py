"""Generation API on briefly trained checkpoints: determinism, any size, class resampling, raster output."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError
from rsaug.gan.config import ModelConfig
from rsaug.gan.inference import Generator, load_generator
from rsaug.gan.models import build_models
from rsaug.io.tileset import TileSet


@pytest.fixture(scope="module")
def gen(tiny_checkpoint: Path) -> Generator:
    return load_generator(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def real_masks(gid15_tileset: Path) -> np.ndarray:
    tiles = TileSet.open(gid15_tileset)
    rows = tiles.split("val")
    return np.stack([tiles.read_mask(rows.iloc[i]) for i in range(3)])


def test_loaded_generator_describes_itself(gen: Generator, tiny_checkpoint: Path) -> None:
    assert gen.scheme.name == "gid15" and gen.num_classes == 15
    assert isinstance(gen.config, ModelConfig) and gen.config.model == "csebgan"
    assert gen.out_bands == 3 and gen.dtype == "uint8" and gen.multiple == 8 and gen.has_noise
    assert gen.normalization.low == [0.0] * 3 and gen.normalization.high == [255.0] * 3
    assert gen.checkpoint_sha256 == hashlib.sha256(tiny_checkpoint.read_bytes()).hexdigest()
    assert gen.ema and not gen.net.training
    assert load_generator(tiny_checkpoint.parents[1], device="cpu").checkpoint_sha256 == gen.checkpoint_sha256


def test_generate_is_deterministic_for_a_seed_and_any_size(gen: Generator, real_masks: np.ndarray) -> None:
    a = gen.generate(real_masks, seed=7)
    assert a.shape == (3, 3, 224, 224) and a.dtype == torch.float32
    assert a.min() >= -1 and a.max() <= 1
    assert torch.equal(a, gen.generate(real_masks, seed=7))
    assert not torch.allclose(a, gen.generate(real_masks, seed=8))
    # same noise given explicitly, and processed in chunks
    noise = gen.sample_noise(3, seed=7)
    assert torch.equal(a, gen.generate(real_masks, noise=noise))
    assert torch.allclose(a, gen.generate(real_masks, seed=7, batch_size=2), atol=1e-5)
    # sizes that are not multiples of the generator's stride, 2-D masks, torch masks
    for h, w in ((37, 53), (5, 3), (64, 40)):
        out = gen.generate(torch.from_numpy(real_masks[0, :h, :w]), seed=1)
        assert out.shape == (1, 3, h, w)
    one = gen.generate(real_masks[1], seed=3)
    assert one.shape == (1, 3, 224, 224)


def test_resampling_a_class_changes_only_images_that_contain_it(gen: Generator, real_masks: np.ndarray) -> None:
    mask = real_masks[:1]
    present = [int(v) for v in np.unique(mask) if v != IGNORE]
    absent = next(k for k in range(15) if k not in present)
    noise = gen.sample_noise(1, seed=0)
    base = gen.generate(mask, noise=noise)
    same = gen.generate(mask, noise=gen.resample_class(noise, absent, seed=1))
    assert torch.allclose(base, same, atol=1e-6)  # eval-mode BN: an absent class cannot change the image
    name = gen.scheme.names[present[0]]
    changed = gen.generate(mask, noise=gen.resample_class(noise, name, seed=1))
    region = torch.from_numpy(mask[0] == present[0])
    diff = (changed - base).abs().mean(1)[0]
    assert diff[region].mean() > 0
    n2 = gen.resample_class(noise, present[0], seed=1)
    untouched = [k for k in range(16) if k != present[0]]
    assert torch.equal(n2[:, :, untouched], noise[:, :, untouched])


def test_to_raster_returns_source_dtype(gen: Generator, gid15_tileset: Path) -> None:
    tiles = TileSet.open(gid15_tileset)
    raw = tiles.read_image(tiles.split("val").iloc[0])
    x = gen.normalization.normalize(raw[None])
    back = gen.to_raster(x)
    assert back.dtype == np.uint8 and back.shape == (1, 3, 224, 224) and np.array_equal(back, raw[None])
    img = gen.generate(np.zeros((16, 16), np.uint8), seed=0)
    arr = gen.to_raster(img)
    assert arr.dtype == np.uint8 and arr.shape == (1, 3, 16, 16)


def test_ema_and_raw_weights_differ(gen: Generator, tiny_checkpoint: Path, real_masks: np.ndarray) -> None:
    raw = load_generator(tiny_checkpoint, device="cpu", ema=False)
    assert not raw.ema
    assert not torch.allclose(gen.generate(real_masks[:1], seed=0), raw.generate(real_masks[:1], seed=0))


def test_bad_masks_and_files_are_input_errors(gen: Generator, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"mask values \[15, 200\] outside class scheme 'gid15'"):
        gen.generate(np.array([[0, 15], [200, 255]], np.uint8))
    with pytest.raises(InputError, match="integers"):
        gen.generate(np.zeros((8, 8), np.float32))
    with pytest.raises(InputError, match=r"\(H, W\) or \(B, H, W\)"):
        gen.generate(np.zeros((1, 1, 8, 8), np.uint8))
    with pytest.raises(InputError, match="noise has batch 2, the mask 3"):
        gen.generate(np.zeros((3, 8, 8), np.uint8), noise=gen.sample_noise(2, seed=0))
    with pytest.raises(InputError, match="checkpoint not found"):
        load_generator(tmp_path / "nope.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_generator(junk)
    with pytest.raises(InputError, match="no checkpoint"):
        load_generator(tmp_path)


def test_noise_free_baseline(spade_checkpoint: Path, real_masks: np.ndarray) -> None:
    g = load_generator(spade_checkpoint, device="cpu")
    assert g.config.model == "spade" and not g.has_noise and g.sample_noise(2, seed=0) is None
    a = g.generate(real_masks[:2], seed=0)
    assert torch.equal(a, g.generate(real_masks[:2], seed=1))  # no noise: the seed does not matter
    with pytest.raises(InputError):
        g.resample_class(None, 0)


def test_build_models_follows_the_config() -> None:
    from tests.fixtures_train import tiny_configs

    _, cfg, _ = tiny_configs()
    m = build_models(cfg)
    assert m.D is not None and m.C is not None
    m = build_models(cfg, discriminator=False, conductor=False)
    assert m.D is None and m.C is None
    out, kl = m.G(torch.zeros(2, 32, 32, dtype=torch.long), m.G.sample_noise(2))
    assert out.shape == (2, 3, 32, 32) and kl is None


def test_sample_grid_png(gen: Generator, gid15_tileset: Path, chesapeake_tileset: Path, tmp_path: Path) -> None:
    from PIL import Image

    from rsaug.gan.preview import sample_grid

    out = sample_grid(gen, gid15_tileset, tmp_path / "grid.png", rows=3, fakes=2, crop=40)
    assert Image.open(out).size == (4 * 42 + 2, 3 * 42 + 2)
    with pytest.raises(InputError, match="class scheme 'chesapeake' differs"):
        sample_grid(gen, chesapeake_tileset, tmp_path / "x.png")


def test_old_spectral_norm_keys_are_upgraded() -> None:
    from torch.nn.utils import parametrizations

    from rsaug.gan.inference import upgrade_state_dict
    from rsaug.gan.networks.generator import SNConv2d

    torch.manual_seed(0)
    old = torch.nn.Module()
    old.conv = parametrizations.spectral_norm(torch.nn.Conv2d(5, 7, 3, padding=1))
    for _ in range(20):  # converge the power iteration
        old.conv(torch.randn(1, 5, 8, 8))
    new = torch.nn.Module()
    new.conv = SNConv2d(5, 7, 3, padding=1)
    sd = upgrade_state_dict(old.state_dict(), new.state_dict())
    new.load_state_dict(sd)
    w = new.conv._matrix(new.conv.weight.detach())
    with torch.no_grad():
        old_sigma = float(
            old.conv.parametrizations.weight.original.flatten(1).matmul(old.conv.parametrizations.weight[0]._v)
            @ old.conv.parametrizations.weight[0]._u
        )
    assert float(new.conv.u @ w @ new.conv.v) == pytest.approx(old_sigma, rel=1e-5)
