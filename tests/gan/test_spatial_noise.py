"""CSEBGAN spatial noise (``ModelConfig.spatial_noise``) on real GID-15 masks: off = the paper's generator
unchanged, determinism in ``(labels, noise)``, texture inside uniform regions, locality of ``resample_class``,
validation, the ``rsaug train --spatial-noise`` option and checkpoint round trips."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.core.classes import BUILTIN_SCHEMES, IGNORE
from rsaug.core.errors import InputError
from rsaug.gan.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, load_checkpoint
from rsaug.gan.config import ModelConfig
from rsaug.gan.inference import load_generator
from rsaug.gan.networks.embeddings import spatial_noise_field
from rsaug.gan.networks.generator import BLOCKS, ModContext, SPADELayoutGenerator, build_generator
from rsaug.io.normalization import Normalization
from tests.conftest import GID15


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread for these tiny models (thread start-up costs more than it saves; on a busy machine
    two threads made building a generator 70x slower), restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


K = 15  # GID-15 real classes; label K is "unknown" (stored as 15 in labels_index)
N_BLOCKS = len(BLOCKS)
# woodland crop that is one class throughout (the large uniform region), plus three mixed crops
STEMS = ("arbor_woodland_001", "dry_cropland_054", "irrigated_land_072", "river_009")
WOOD = 8


def gid_labels(size: int = 64) -> torch.Tensor:
    """Generator labels ``[4, size, size]`` (0..K-1 classes, K unknown) of real GID-15 masks (top-left crop)."""
    out = []
    for stem in STEMS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the label tiles carry no geotransform
            with rasterio.open(GID15 / "labels_index" / f"{stem}.tif") as src:
                lab = src.read(1)[:size, :size].astype(np.int64)
        lab[lab == 15] = K  # unlabeled -> the generator's unknown label
        out.append(torch.from_numpy(lab))
    return torch.stack(out)


def tiny(spatial_noise: float = 0.0, **kw: object) -> ModelConfig:
    base: dict[str, object] = dict(
        model="csebgan",
        num_classes=K,
        crop_size=64,
        ngf=4,
        ndf=8,
        num_upsampling=4,
        embed_dim=8,
        mlp_hidden=8,
        spatial_noise=spatial_noise,
    )
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


def build(cfg: ModelConfig, seed: int = 0) -> SPADELayoutGenerator:
    torch.manual_seed(seed)
    g = build_generator(cfg)
    assert isinstance(g, SPADELayoutGenerator)
    return g


def noise_for(g: SPADELayoutGenerator, batch: int, seed: int) -> torch.Tensor:
    noise = g.sample_noise(batch, torch.Generator().manual_seed(seed))
    assert noise is not None
    return noise


@torch.no_grad()
def run(g: SPADELayoutGenerator, labels: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    return g(labels, noise)[0]


def local_std(img: torch.Tensor, region: torch.Tensor, win: int = 8) -> float:
    """Mean standard deviation inside the ``win x win`` windows lying wholly in ``region`` (one image)."""
    m = F.avg_pool2d(img[None], win)[0]
    m2 = F.avg_pool2d(img[None] ** 2, win)[0]
    std = (m2 - m * m).clamp(min=0).sqrt().mean(0)
    inside = F.avg_pool2d(region[None, None].float(), win)[0, 0] == 1
    assert inside.any()
    return float(std[inside].mean())


# ------------------------------------------------------------------------------------------- (a) off = paper
def test_zero_spatial_noise_is_the_paper_generator() -> None:
    labels = gid_labels()
    old_dict = {k: v for k, v in tiny().to_dict().items() if k != "spatial_noise"}
    old_cfg = ModelConfig.from_dict(old_dict)  # a config written before the field existed
    assert old_cfg.spatial_noise == 0.0 and old_cfg == tiny(0.0)
    g_old, g0, g1 = build(old_cfg), build(tiny(0.0)), build(tiny(0.5))
    keys0 = list(g0.state_dict())
    assert keys0 == list(g_old.state_dict())
    assert not any("noise_strength" in k for k in keys0)
    extra = {f"blocks.{i}.noise_strength" for i in range(N_BLOCKS)}
    keys1 = list(g1.state_dict())
    assert set(keys1) - set(keys0) == extra and [k for k in keys1 if k not in extra] == keys0
    # the new parameter consumes no random numbers: every other weight is identical for one seed
    s0, s1 = g0.state_dict(), g1.state_dict()
    assert all(torch.equal(s0[k], s1[k]) for k in keys0)
    for block, (_, fin, _) in zip(g1.blocks, BLOCKS):
        assert block.noise_strength is not None
        assert torch.equal(block.noise_strength.detach(), torch.full((fin * 4,), 0.5))
    noise = noise_for(g0, 4, 1)
    for train in (True, False):
        g_old.train(train)
        g0.train(train)
        a, b = run(g_old, labels, noise), run(g0, labels, noise)
        assert torch.equal(a, b)
    assert all(block.noise_strength is None for block in g0.blocks) and not g0.spatial_noise


# ---------------------------------------------------------------------------------------- (b) determinism
@pytest.mark.parametrize("channels_last", [True, False])
def test_output_is_a_function_of_labels_and_noise(channels_last: bool) -> None:
    labels = gid_labels()
    g = build(tiny(1.0, channels_last=channels_last)).eval()
    noise = noise_for(g, 4, 3)
    a = run(g, labels, noise)
    assert a.is_contiguous() and torch.isfinite(a).all()
    assert torch.equal(a, run(g, labels, noise))
    # chunks of the batch: the fields are bit-identical, the images equal up to batched-convolution rounding
    f = spatial_noise_field(labels, noise, N_BLOCKS)
    f_chunks = torch.cat([spatial_noise_field(labels[i : i + 2], noise[i : i + 2], N_BLOCKS) for i in (0, 2)])
    assert torch.equal(f, f_chunks)
    chunks = torch.cat([run(g, labels[:1], noise[:1]), run(g, labels[1:], noise[1:])])
    torch.testing.assert_close(chunks, a, atol=1e-6, rtol=0)
    # another image in the batch does not change an image's field
    other = torch.cat([labels[:1], labels[3:], labels[2:3]])
    other_noise = torch.cat([noise[:1], noise_for(g, 2, 9)])
    assert torch.equal(spatial_noise_field(other, other_noise, N_BLOCKS)[0], f[0])
    # the other memory layout, same weights: the same images
    g2 = build(tiny(1.0, channels_last=not channels_last)).eval()
    g2.load_state_dict(g.state_dict())
    torch.testing.assert_close(run(g2, labels, noise), a, atol=1e-6, rtol=0)


def test_fields_are_standard_normal_and_subsampled_like_the_labels() -> None:
    labels = gid_labels()
    noise = noise_for(build(tiny(1.0)), 4, 5)
    f = spatial_noise_field(labels, noise, N_BLOCKS)
    assert f.shape == (4, N_BLOCKS, 64, 64) and f.dtype == torch.float32
    assert abs(float(f.mean())) < 0.02 and abs(float(f.std()) - 1) < 0.02
    assert not torch.equal(f[:, 0], f[:, 1])  # one independent field per block
    ctx = ModContext(labels, K + 1)
    ctx.spatial = f
    for i, (h, w) in enumerate([(4, 4), (8, 8), (16, 16), (64, 64), (24, 40)]):
        lab, fld = ctx.labels_at(h, w), ctx.spatial_at(i, h, w)
        assert fld.shape == (4, h, w)
        # every subsampled value sits where the subsampled label says: it is that label's field value
        full = F.interpolate(f[:, i : i + 1], size=(h, w), mode="nearest")[:, 0]
        assert torch.equal(fld, full)
        ref = F.interpolate(labels[:, None].float(), size=(h, w), mode="nearest")[:, 0].long()
        assert torch.equal(lab, ref)
    with pytest.raises(ValueError, match="one batch size"):
        spatial_noise_field(labels[:2], noise, N_BLOCKS)


# -------------------------------------------------------------------------- (c) texture in uniform regions
def test_spatial_noise_adds_texture_inside_a_uniform_region() -> None:
    labels = gid_labels()
    region = labels[0] == WOOD
    assert bool(region.all())  # the woodland crop is one class throughout
    g0 = build(tiny(0.0))
    g1 = build(tiny(1.0), seed=1)
    missing, unexpected = g1.load_state_dict(g0.state_dict(), strict=False)
    assert sorted(missing) == sorted(f"blocks.{i}.noise_strength" for i in range(N_BLOCKS)) and not unexpected
    n1, n2 = noise_for(g0, 4, 1), noise_for(g0, 4, 2)
    for train in (True, False):  # batch statistics (training) and running statistics (generation)
        g0.train(train)
        g1.train(train)
        a0, b0 = run(g0, labels, n1), run(g0, labels, n2)
        a1, b1 = run(g1, labels, n1), run(g1, labels, n2)
        # two noise samples differ inside the region, and with spatial noise they differ pixel by pixel
        assert float((a1 - b1)[0][:, region].abs().mean()) > 0
        assert local_std(a1[0] - b1[0], region) > 1.5 * local_std(a0[0] - b0[0], region)
        # within-region variation of one image: larger with spatial noise (same weights otherwise)
        assert float(a1[0][:, region].std(1).mean()) > float(a0[0][:, region].std(1).mean())
        assert local_std(a1[0], region) > 1.5 * local_std(a0[0], region), train


def test_noise_strength_is_learned() -> None:
    labels = gid_labels()
    g = build(tiny(0.5)).train()
    out, _ = g(labels, noise_for(g, 4, 0))
    out.square().mean().backward()
    grads = [b.noise_strength.grad for b in g.blocks if b.noise_strength is not None]
    assert len(grads) == N_BLOCKS and all(gr is not None and bool(gr.abs().sum() > 0) for gr in grads)


# -------------------------------------------------------------------------------- (d) resample_class locality
def test_resampling_a_class_changes_the_field_only_at_its_pixels() -> None:
    labels = gid_labels()
    g = build(tiny(1.0))
    noise = noise_for(g, 4, 4)
    k = 5  # irrigated land: about half of the third crop, absent from the woodland crop
    assert bool((labels == k).any()) and bool((labels != k).any())
    fresh = g.resample_class(noise, k, torch.Generator().manual_seed(11))
    f_old = spatial_noise_field(labels, noise, N_BLOCKS)
    f_new = spatial_noise_field(labels, fresh, N_BLOCKS)
    at_k = (labels == k)[:, None].expand_as(f_old)
    assert torch.equal(f_old[~at_k], f_new[~at_k])
    assert bool((f_old[at_k] != f_new[at_k]).all())
    # a class absent from every mask: nothing changes
    absent = next(c for c in range(K + 1) if not bool((labels == c).any()))
    same = spatial_noise_field(labels, g.resample_class(noise, absent, torch.Generator().manual_seed(12)), N_BLOCKS)
    assert torch.equal(same, f_old)


# -------------------------------------------------------------------------------------------- (e) validation
@pytest.mark.parametrize(
    "fields,fragment",
    [
        ({"spatial_noise": -0.1}, "spatial_noise must be a number between 0 and 10, got -0.1"),
        ({"spatial_noise": 10.5}, "spatial_noise must be a number between 0 and 10"),
        ({"spatial_noise": float("nan")}, "spatial_noise must be a number between 0 and 10"),
        ({"spatial_noise": True}, "spatial_noise must be a number"),
        ({"spatial_noise": "1"}, "spatial_noise must be a number"),
        ({"spatial_noise": 0.5, "model": "spade"}, "model config: spatial_noise needs model csebgan, got 'spade'"),
        ({"spatial_noise": 1, "model": "clade"}, "model config: spatial_noise needs model csebgan"),
    ],
)
def test_config_validation(fields: dict[str, object], fragment: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as info:
        ModelConfig.from_dict(fields, tmp_path / "config.json")
    msg = str(info.value)
    assert fragment in msg and "\n" not in msg, msg
    cfg = ModelConfig.from_dict({"spatial_noise": 10})
    assert cfg.spatial_noise == 10.0 and isinstance(cfg.spatial_noise, float)
    assert ModelConfig(model="spade").spatial_noise == 0.0


def _train(*args: object):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--spatial-noise", "-1"], "--spatial-noise must be a number between 0 and 10, got -1.0"),
        (["--spatial-noise", "11"], "--spatial-noise must be a number between 0 and 10"),
        (["--spatial-noise", "0.5", "--model", "spade"], "--spatial-noise needs --model csebgan, got 'spade'"),
    ],
)
def test_cli_rejects_bad_spatial_noise(args: list[str], fragment: str, gid15_tileset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    res = _train(gid15_tileset, "-o", run_dir, *args)
    assert res.exit_code == 2, res.output
    text = res.output.strip()
    assert text.startswith("Error: ") and "\n" not in text and "Traceback" not in text, text
    assert fragment in text, text
    assert not run_dir.exists()


def test_cli_trains_with_spatial_noise(gid15_tileset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    tiny_run = ["--crop-size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--lambda-vgg", "0"]
    res = _train(gid15_tileset, "-o", run_dir, *tiny_run, "--steps", "1", "--spatial-noise", "0.25", "--quiet")
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert ck["model_config"]["spatial_noise"] == 0.25
    for key in ("G", "G_ema"):
        assert ck[key]["blocks.0.noise_strength"].shape == (16 * 8,)
    gen = load_generator(run_dir, device="cpu")
    assert gen.config.spatial_noise == 0.25
    lab = gid_labels(32)[2].numpy()
    mask = np.where(lab == K, IGNORE, lab).astype(np.uint8)
    assert torch.equal(gen.generate(mask, seed=3), gen.generate(mask, seed=3))


# ---------------------------------------------------------------------------------------- (f) checkpoints
def _save(path: Path, cfg_dict: dict[str, object], state: dict[str, torch.Tensor]) -> Path:
    torch.save(
        {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "step": 0,
            "model_config": cfg_dict,
            "scheme": BUILTIN_SCHEMES["gid15"].to_dict(),
            "normalization": Normalization("uint8", [0.0] * 3, [255.0] * 3).to_dict(),
            "G": state,
            "G_ema": state,
        },
        path,
    )
    return path


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    labels = gid_labels()
    masks = np.where(labels.numpy() == K, IGNORE, labels.numpy()).astype(np.uint8)  # internal convention
    g = build(tiny(0.75))
    with torch.no_grad():  # distinct strengths, so a lost or reordered parameter would show
        for block in g.blocks:
            assert block.noise_strength is not None
            block.noise_strength.copy_(torch.rand_like(block.noise_strength) * 2)
    g.eval()
    noise = noise_for(g, 4, 6)
    want = run(g, labels, noise)
    gen = load_generator(_save(tmp_path / "sn.ckpt", g.cfg.to_dict(), g.state_dict()), device="cpu")
    assert gen.config.spatial_noise == 0.75
    loaded = gen.net.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in g.state_dict().items())
    assert torch.equal(gen.generate(masks, noise=noise), want)
    assert torch.equal(gen.generate(masks, noise=noise, batch_size=3), gen.generate(masks, noise=noise, batch_size=3))
    torch.testing.assert_close(gen.generate(masks, noise=noise, batch_size=3), want, atol=1e-6, rtol=0)
    # a checkpoint written before the field existed: no key in its config, no parameter in its weights
    g0 = build(tiny(0.0)).eval()
    old = {k: v for k, v in g0.cfg.to_dict().items() if k != "spatial_noise"}
    gen0 = load_generator(_save(tmp_path / "old.ckpt", old, g0.state_dict()), device="cpu")
    assert gen0.config.spatial_noise == 0.0
    assert torch.equal(gen0.generate(masks, noise=noise), run(g0, labels, noise))
    # weights without the strengths under a config that asks for them: a one-line error, not a silent default
    with pytest.raises(InputError, match="do not match the stored config"):
        load_generator(_save(tmp_path / "bad.ckpt", g.cfg.to_dict(), g0.state_dict()), device="cpu")
