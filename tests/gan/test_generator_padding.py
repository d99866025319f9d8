"""Generator padding (``ModelConfig.g_padding``, ``rsaug train --g-padding``) and ``--num-upsampling``.

With zero padding a generator trained on small crops paints larger tiles with another brightness (its coarse maps
are all border at 64 px, mostly interior at 224 px; docs/results/gid15-generator-levers-val/). The checks here
are the mechanism: on a label map that is one class throughout, a reflect- or replicate-padded CSEBGAN generator
(no spatial noise) produces exactly one colour at every size, while the zero-padded one paints a border whose
share, and so the image mean, changes with the size. Plus: the paper's default is unchanged, the option
reaches every 3x3 convolution, too-small inputs, validation, the CLI and checkpoint round trips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from torch import nn

from rsaug.cli.main import cli
from rsaug.core.errors import InputError
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.config import ModelConfig
from rsaug.gan.inference import load_generator
from rsaug.gan.networks.generator import SPADELayoutGenerator
from tests.gan.test_spatial_noise import build as sn_build
from tests.gan.test_spatial_noise import gid_labels
from tests.gan.test_spatial_noise import tiny as sn_tiny

WOOD = 8  # arbor woodland: the real woodland tile's top-left 64 x 64 is that class throughout


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """One torch thread for these tiny models, restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny(model: str = "csebgan", **kw: object) -> ModelConfig:
    """The tiny 64-px generator config of the spatial-noise tests (no spatial noise), for ``model``."""
    return sn_tiny(0.0, model=model, **kw)


def build(cfg: ModelConfig, seed: int = 0) -> SPADELayoutGenerator:
    """Seeded generator in eval mode (as synthesis runs it)."""
    return sn_build(cfg, seed).eval()


def uniform_labels(size: int) -> torch.Tensor:
    """One woodland label map ``[1, size, size]``, taken from the real tile (asserted uniform)."""
    lab = gid_labels(64)[0]
    assert bool((lab == WOOD).all()), "the woodland crop is expected to be one class throughout"
    return torch.full((1, size, size), WOOD, dtype=torch.long)


def generate(g: SPADELayoutGenerator, labels: torch.Tensor, seed: int = 0) -> torch.Tensor:
    noise = g.sample_noise(labels.shape[0], torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return g(labels, noise)[0]


def three_by_three_convs(g: nn.Module) -> list[nn.Conv2d]:
    return [m for m in g.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]


def test_zero_padding_is_the_default_and_the_option_reaches_every_3x3_convolution() -> None:
    assert ModelConfig().g_padding == "zeros"
    for model in ("csebgan", "spade", "clade"):
        default = build(tiny(model))
        assert {c.padding_mode for c in three_by_three_convs(default)} == {"zeros"}
        refl = build(tiny(model, g_padding="reflect"))
        trunk = [c for name, c in refl.named_modules() if isinstance(c, nn.Conv2d) and c.kernel_size == (3, 3)]
        # SPADE's modulation convolutions read the label map and keep zero padding; every other 3x3 reflects
        modulated = {id(c) for name, c in refl.named_modules() if ".norm" in name and isinstance(c, nn.Conv2d)}
        painted = [c for c in trunk if id(c) not in modulated]
        assert len(painted) == 2 * 7 + 1 + (model == "spade")  # two per residual block, the output conv, SPADE's fc
        assert {c.padding_mode for c in painted} == {"reflect"}
        # the same parameters as the zero-padded generator: a padding mode, not an architecture change
        assert list(default.state_dict()) == list(refl.state_dict())


@pytest.mark.parametrize("padding", ["reflect", "replicate"])
def test_uniform_labels_give_one_colour_at_every_size(padding: str) -> None:
    g = build(tiny(g_padding=padding))
    colours = []
    for size in (64, 128, 224):
        img = generate(g, uniform_labels(size))
        flat = img.reshape(img.shape[1], -1)
        assert float((flat.max(1).values - flat.min(1).values).max()) < 1e-5, (padding, size)
        colours.append(flat[:, 0])
    for c in colours[1:]:
        torch.testing.assert_close(c, colours[0], atol=1e-5, rtol=0)


def test_zero_padding_paints_a_border_and_a_size_dependent_mean() -> None:
    g = build(tiny())
    means = []
    for size in (64, 224):
        img = generate(g, uniform_labels(size))[0]
        spread = float(img.amax((1, 2)).sub(img.amin((1, 2))).max())
        assert spread > 1e-3, "zero padding should make the border differ from the interior"
        centre = img[:, size // 2 - 4 : size // 2 + 4, size // 2 - 4 : size // 2 + 4]
        assert float(centre.amax() - centre.amin()) < spread
        means.append(img.mean((1, 2)))
    assert float((means[0] - means[1]).abs().max()) > 1e-4


def test_reflect_padding_needs_a_coarsest_map_of_two_pixels() -> None:
    g = build(tiny(g_padding="reflect"))
    with pytest.raises(ValueError, match=r"at least 2 x 2: a 16 x 16 input gives 1 x 1 after 4 halvings .*32 px"):
        generate(g, uniform_labels(16))
    assert generate(build(tiny(g_padding="replicate")), uniform_labels(16)).shape == (1, 3, 16, 16)


@pytest.mark.parametrize(
    "fields,fragment",
    [
        ({"g_padding": "circular"}, "g_padding must be one of zeros, reflect, replicate, got 'circular'"),
        ({"model": "pix2pixhd", "num_upsampling": 3, "g_padding": "reflect"}, "pix2pixhd has its own reflection"),
        ({"num_upsampling": 7}, "num_upsampling must be between 1 and 6"),
    ],
)
def test_config_validation(fields: dict[str, object], fragment: str, tmp_path: Path) -> None:
    with pytest.raises(InputError) as err:
        ModelConfig.from_dict({**tiny().to_dict(), **fields}, tmp_path / "config.json")
    assert fragment in str(err.value)
    assert "config.json" in str(err.value)


def _train(*args: object):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


TINY_RUN = ["--crop-size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--lambda-vgg", "0", "--quiet"]


def test_cli_trains_with_reflect_padding_and_three_upsamplings(gid15_tileset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    res = _train(
        gid15_tileset, "-o", run_dir, *TINY_RUN, "--steps", "1", "--g-padding", "reflect", "--num-upsampling", 3
    )
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")
    assert (ck["model_config"]["g_padding"], ck["model_config"]["num_upsampling"]) == ("reflect", 3)
    gen = load_generator(run_dir, device="cpu")
    assert {c.padding_mode for c in three_by_three_convs(gen.net)} == {"reflect"}
    mask = np.full((48, 48), WOOD, dtype=np.uint8)  # a multiple of 8, not of 16: three upsamplings allow it
    out = gen.generate(mask[None], seed=1)
    assert out.shape == (1, 3, 48, 48)
    assert torch.equal(out, gen.generate(mask[None], seed=1))


def test_a_checkpoint_without_the_field_loads_zero_padded(gid15_tileset: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    assert _train(gid15_tileset, "-o", run_dir, *TINY_RUN, "--steps", "1").exit_code == 0
    ck = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")  # memory-mapped: write the old one elsewhere
    assert ck["model_config"]["g_padding"] == "zeros"
    del ck["model_config"]["g_padding"]  # as written before the option existed
    old = tmp_path / "old.ckpt"
    torch.save(ck, old)
    gen = load_generator(old, device="cpu")
    assert gen.config.g_padding == "zeros"


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--g-padding", "circular"], "Invalid value for '--g-padding'"),
        (["--model", "pix2pixhd", "--g-padding", "reflect"], "pix2pixhd has its own reflection padding"),
        (["--num-upsampling", "0"], "Invalid value for '--num-upsampling': 0 is not in the range 1<=x<=6"),
        (["--num-upsampling", "7"], "Invalid value for '--num-upsampling': 7 is not in the range 1<=x<=6"),
        (["--crop-size", "32", "--num-upsampling", "6"], "crop_size 32 is not a multiple of 64"),
    ],
)
def test_cli_rejects_options_that_do_not_fit(
    args: list[str], fragment: str, gid15_tileset: Path, tmp_path: Path
) -> None:
    run_dir = tmp_path / "run"
    res = _train(gid15_tileset, "-o", run_dir, *args)
    assert res.exit_code == 2, res.output
    text = res.output.strip().splitlines()[-1]
    assert text.startswith("Error: ") and "Traceback" not in res.output, res.output
    assert fragment in text, text
    assert not run_dir.exists()
