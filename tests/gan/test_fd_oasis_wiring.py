"""How the trainer wires ``--feature-d vgg`` and ``--conductor-objective oasis`` (on real GID-15 crops): the feature
discriminator and the OASIS conductor see exactly the DiffAugment draws the patch discriminator sees, the conductor's
update uses the fake class and the generator's term does not, the logged totals use the configured weights; runs
with both options export and load as generators; a frozen conductor drops a fake-class row only from an OASIS
checkpoint; the feature discriminator runs under Lightning Fabric mixed precision and sees the perceptual loss's
VGG19 features; a non-finite new loss term stops the run."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError
from rsaug.gan import losses
from rsaug.gan.checkpoint import CHECKPOINT_FORMAT, CHECKPOINT_VERSION, export_generator, load_checkpoint
from rsaug.gan.config import LossConfig, ModelConfig
from rsaug.gan.feature_discriminator import FeatureDiscriminator, build_feature_discriminator
from rsaug.gan.inference import load_generator
from rsaug.gan.log import read_log
from rsaug.gan.losses import PerceptualLoss
from rsaug.gan.networks.conductor import Conductor
from rsaug.gan.networks.discriminator import MultiscaleDiscriminator
from rsaug.gan.trainer import TrainingDiverged, train
from rsaug.io.tileset import TileSet
from tests.fixtures_train import tiny_configs
from tests.gan.test_augment import ALL, _crops
from tests.gan.test_networks import tiny

torch.set_num_threads(2)


def _spy(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str, record: list[Any], keep: Any) -> None:
    """Record ``keep(*args, **kwargs)`` on every call of ``owner.name``, then run the original."""
    original = getattr(owner, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        record.append(keep(*args, **kwargs))
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)


def _pair(_self: Any, onehot: torch.Tensor, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return onehot.detach().clone(), image.detach().clone()


def _same_labels(onehot: torch.Tensor, mask: torch.Tensor, k: int) -> bool:
    """The conductor's mask (unknown = IGNORE) and the discriminator's one-hot map (unknown = label K) agree."""
    as_labels = torch.where(mask == IGNORE, torch.full_like(mask, k), mask)
    return bool(torch.equal(onehot.argmax(1), as_labels)) and bool(
        torch.equal(onehot.sum(1), torch.ones_like(onehot[:, 0]))
    )


def test_fd_and_oasis_conductor_see_ds_draws_and_the_runs_export(
    gid15_tileset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, list[Any]] = {"D": [], "FD": [], "C": [], "oasis": [], "labelmix": []}
    _spy(monkeypatch, MultiscaleDiscriminator, "forward", seen["D"], _pair)
    _spy(monkeypatch, FeatureDiscriminator, "forward", seen["FD"], _pair)
    _spy(monkeypatch, Conductor, "forward", seen["C"], lambda _self, image: image.detach().clone())
    _spy(
        monkeypatch,
        losses,
        "oasis_conductor_loss",
        seen["oasis"],
        lambda logits, labels, fake=False: (labels.clone(), fake, logits.shape[1], logits.requires_grad),
    )
    _spy(monkeypatch, losses, "labelmix_loss", seen["labelmix"], lambda *a: True)
    cfg, mcfg, _ = tiny_configs(
        steps=1, sample_every=0, feature_d="vgg", feature_d_weight=0.5, conductor_objective="oasis", diffaug=ALL
    )
    lc = LossConfig(lambda_vgg=0.0, lambda_cond=1.5, lambda_labelmix=10.0)
    result = train(gid15_tileset, tmp_path / "run", cfg, mcfg, lc)
    K = TileSet.open(gid15_tileset).scheme.num_classes
    D, FD, C, oasis = seen["D"], seen["FD"], seen["C"], seen["oasis"]
    # one step: G's update D(fake), D(real) [no grad], FD(fake), C(fake); D's update D(real), D(fake); FD's
    # update FD(real), FD(fake); C's update C(real), C(fake), C(mixed); then the monitor's C(val real), C(val fake)
    assert (len(D), len(FD), len(C), len(seen["labelmix"])) == (4, 3, 6, 1)
    # the two updates draw different transforms, and the transforms are applied (cut-out holes are 0 in every band)
    assert not torch.equal(D[0][0], D[2][0])
    assert all(bool((img == 0).all(1).any()) for _, img in D)
    # FD sees exactly D's pairs, in both updates
    for fd_call, d_call in ((FD[0], D[0]), (FD[1], D[2]), (FD[2], D[3])):
        assert torch.equal(fd_call[0], d_call[0]) and torch.equal(fd_call[1], d_call[1])
    # the OASIS conductor sees D's images (G's draw in G's update, D's draw in its own) ...
    for c_image, d_call in ((C[0], D[0]), (C[1], D[2]), (C[2], D[3])):
        assert torch.equal(c_image, d_call[1])
    # ... and D's label map: its targets are the classes of D's one-hot map, unknown where D's is unknown
    assert [(fake, channels) for _, fake, channels, _ in oasis] == [(False, K + 1), (False, K + 1), (True, K + 1)]
    for (mask, *_), d_call in zip(oasis, (D[0], D[2], D[3])):
        assert _same_labels(d_call[0], mask, K)
    assert oasis[0][3]  # the generator's term is differentiable (through the fake)
    # the logged totals use the configured weights
    row = read_log(tmp_path / "run" / "log.csv")[0]
    g = row["g_adv"] * lc.lambda_gan + row["g_fm"] * lc.lambda_fm + 0.5 * row["g_fd"] + 1.5 * row["g_cond"]
    assert np.isclose(row["g_total"], g, rtol=1e-5)
    assert np.isclose(row["c_total"], row["c_real"] + row["c_fake"] + 10.0 * row["c_labelmix"], rtol=1e-5)
    assert np.isclose(row["fd_total"], row["fd_real"] + row["fd_fake"], rtol=1e-5)
    # a checkpoint holding FD and a (K+1)-output conductor exports and loads as a generator like any other
    ck = load_checkpoint(result.checkpoint)
    assert ck["FD"] is not None and ck["C"]["head.weight"].shape[0] == K + 1
    card = export_generator(result.checkpoint, tmp_path / "g.ckpt")
    assert card["model"]["num_classes"] == K
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, 16:] = 3
    mask[:4] = IGNORE
    a = load_generator(result.checkpoint, device="cpu").generate(mask, seed=1)
    b = load_generator(tmp_path / "g.ckpt", device="cpu").generate(mask, seed=1)
    assert a.shape == (1, 3, 32, 32) and bool(torch.isfinite(a).all())
    assert float((a - b).abs().max()) < 0.02  # float16 weights


def _conductor_file(path: Path, cfg: ModelConfig, num_classes: int, objective: str | None) -> torch.Tensor:
    """An rsaug checkpoint holding a conductor with ``num_classes`` outputs, trained with ``objective`` (``None``:
    a plain state-dict file); returns its head weight."""
    torch.manual_seed(3)
    net = Conductor(ModelConfig.from_dict({**cfg.to_dict(), "num_classes": num_classes}))
    state: dict[str, Any] = net.state_dict()
    if objective is not None:
        state = {
            "format": CHECKPOINT_FORMAT,
            "version": CHECKPOINT_VERSION,
            "train_config": {"conductor_objective": objective},
            "C": state,
        }
    torch.save(state, path)
    return net.head.weight.detach().clone()


def test_frozen_conductor_drops_a_row_only_from_an_oasis_checkpoint(gid15_tileset: Path, tmp_path: Path) -> None:
    tiles = TileSet.open(gid15_tileset)
    K = tiles.scheme.num_classes
    mcfg = tiny_configs()[1]
    mcfg = ModelConfig.from_dict({**mcfg.to_dict(), "out_bands": tiles.bands})
    # K + 1 outputs from an OASIS run: the K real-class rows serve as the frozen segmenter
    head = _conductor_file(tmp_path / "oasis.ckpt", mcfg, K + 1, "oasis")
    cfg = tiny_configs(steps=1, sample_every=0, conductor="frozen", frozen_conductor=str(tmp_path / "oasis.ckpt"))[0]
    frozen = load_checkpoint(train(gid15_tileset, tmp_path / "ok", cfg, mcfg, LossConfig(lambda_vgg=0.0)).checkpoint)
    assert torch.equal(frozen["C"]["head.weight"], head[:K])
    # K + 1 outputs from a segmenter run (a scheme with one class more) or a plain state dict: they do not fit
    for name, objective in (("seg.ckpt", "segmenter"), ("plain.pt", None)):
        _conductor_file(tmp_path / name, mcfg, K + 1, objective)
        cfg = tiny_configs(steps=1, sample_every=0, conductor="frozen", frozen_conductor=str(tmp_path / name))[0]
        with pytest.raises(InputError, match="conductor weights do not fit this model config") as err:
            train(gid15_tileset, tmp_path / name.split(".")[0], cfg, mcfg, LossConfig(lambda_vgg=0.0))
        assert str(tmp_path / name) in str(err.value)
    # an OASIS run of another class count does not fit either
    _conductor_file(tmp_path / "other.ckpt", mcfg, K, "oasis")
    cfg = tiny_configs(steps=1, sample_every=0, conductor="frozen", frozen_conductor=str(tmp_path / "other.ckpt"))[0]
    with pytest.raises(InputError, match=f"the OASIS conductor has {K - 1} real classes, the tile set {K}"):
        train(gid15_tileset, tmp_path / "other", cfg, mcfg, LossConfig(lambda_vgg=0.0))


def test_feature_discriminator_under_fabric_bf16_mixed() -> None:
    """Fabric's setup moves FD (its hidden VGG included), casts its float inputs to bfloat16 and runs it under
    autocast; the generator's gradient still reaches the image, and FD's heads still train."""
    import lightning as L

    K = 15
    torch.manual_seed(0)
    fd = build_feature_discriminator("vgg", tiny(num_classes=K, out_bands=4), mix_seed=1)
    assert fd is not None
    opt = torch.optim.Adam(fd.parameters(), lr=1e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fabric = L.Fabric(accelerator="cpu", devices=1, precision="bf16-mixed")
    fdw, optw = fabric.setup(fd, opt)
    gen = torch.Generator().manual_seed(2)
    image = (torch.rand(2, 4, 32, 32, generator=gen) * 2 - 1).requires_grad_(True)
    labels = torch.randint(0, K + 1, (2, 32, 32), generator=gen)
    onehot = torch.nn.functional.one_hot(labels, K + 1).permute(0, 3, 1, 2).float()
    out = fdw(onehot, image)
    assert [tuple(s[-1].shape) for s in out] == [(2, 1, 16, 16), (2, 1, 8, 8), (2, 1, 4, 4)]
    fd.requires_grad_(False)
    fabric.backward(losses.hinge_g_loss(out))
    assert image.grad is not None and float(image.grad[:, :3].abs().sum()) > 0
    assert float(image.grad[:, 3].abs().sum()) == 0  # the 4th band is not seen
    assert all(p.grad is None for p in fd.extractor.parameters())
    fd.requires_grad_(True)
    before = {k: v.clone() for k, v in fd.heads.state_dict().items()}
    loss = losses.hinge_d_real_loss(fdw(onehot, image.detach())) + losses.hinge_d_fake_loss(
        fdw(onehot, -image.detach())
    )
    optw.zero_grad()
    fabric.backward(loss)
    optw.step()
    assert any(not torch.equal(v, fd.heads.state_dict()[k]) for k, v in before.items())
    assert all(p.grad is None for p in fd.extractor.parameters())


def test_feature_discriminator_sees_the_perceptual_losss_vgg_features() -> None:
    """FD's frozen features are the perceptual loss's VGG19 on the same input conversion ([-1, 1] -> BGR 0-255
    minus the ImageNet mean): relu4_1 is in both."""
    x = _crops(size=32)["image"]
    fd = build_feature_discriminator("vgg", tiny(num_classes=15), mix_seed=0)
    assert fd is not None
    with torch.no_grad():
        mine = fd.extractor(x)[-1]
        theirs = PerceptualLoss().vgg(x)[3]
    assert mine.shape == (2, 512, 4, 4) and torch.equal(mine, theirs)


@pytest.mark.parametrize("term", ["g_fd", "c_labelmix"])
def test_a_non_finite_new_term_stops_the_run(
    term: str, gid15_tileset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if term == "g_fd":
        original = FeatureDiscriminator.forward

        def nan_fd(self: FeatureDiscriminator, onehot: torch.Tensor, image: torch.Tensor) -> list[list[torch.Tensor]]:
            return [[s[-1] * float("nan")] for s in original(self, onehot, image)]

        monkeypatch.setattr(FeatureDiscriminator, "forward", nan_fd)
    else:
        monkeypatch.setattr(losses, "labelmix_loss", lambda *a: torch.tensor(float("inf")))
    cfg, mcfg, _ = tiny_configs(steps=1, sample_every=0, feature_d="vgg", conductor_objective="oasis")
    lc = LossConfig(lambda_vgg=0.0, lambda_labelmix=1.0)
    with pytest.raises(TrainingDiverged, match=f"non-finite loss {term} = (nan|inf) at step 1"):
        train(gid15_tileset, tmp_path / "run", cfg, mcfg, lc)
    assert not (tmp_path / "run" / "checkpoints" / "last.ckpt").exists()
