"""Networks: config round-trip, generator shapes, semantic embeddings, modulation, D and C (real GID-15 masks)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tifffile
import torch
import torch.nn.functional as F

from rsaug.core.errors import InputError
from rsaug.gan.config import ModelConfig, model_preset
from rsaug.gan.networks.conductor import build_conductor
from rsaug.gan.networks.discriminator import build_discriminator
from rsaug.gan.networks.generator import build_generator, count_modulation_layers, label_onehot, to_model_labels
from rsaug.gan.networks.modulation import SMBlk, class_affine
from tests.conftest import GID15

torch.set_num_threads(2)

STEMS = ("artificial_grassland_006", "garden_plot_030")  # tiles with 4-5 classes plus unlabeled pixels


def gid_batch(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Real GID-15 labels (0..14, 15 = unlabeled = K) and images in [-1, 1], nearest-resized to ``size``."""
    labels, images = [], []
    step = 192 // size
    for stem in STEMS:
        lab = tifffile.imread(GID15 / "labels_index" / f"{stem}.tif")[:192:step, :192:step]
        img = tifffile.imread(GID15 / "images" / f"{stem}.tif")[:192:step, :192:step]
        labels.append(torch.from_numpy(lab.astype(np.int64)))
        images.append(torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1)
    return torch.stack(labels), torch.stack(images)


def tiny(model: str = "csebgan", **kw: object) -> ModelConfig:
    base = dict(
        model=model,
        num_classes=15,
        crop_size=32,
        ngf=4,
        ndf=8,
        num_upsampling=3,
        embed_dim=8,
        mlp_hidden=8,
        spade_hidden=8,
        z_dim=8,
        clade_noise_dim=4,
        p2p_downsampling=2,
        p2p_blocks=1,
        n_layers_d=3,
        cond_width=4,
        cond_depth=2,
    )
    base.update(kw)
    return ModelConfig(**base)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- config
def test_config_json_round_trip_and_validation(tmp_path):
    cfg = model_preset("cpu-small", model="vspade", out_bands=4, band_low=[0, 0, 0, 0], band_high=[255] * 4)
    again = ModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.num_labels == 16 and again.has_noise
    with pytest.raises(InputError, match="unknown keys bogus"):
        ModelConfig.from_dict({"bogus": 1}, tmp_path / "cfg.json")
    with pytest.raises(InputError, match="not a multiple"):
        ModelConfig.from_dict({"crop_size": 100})
    with pytest.raises(InputError, match="unknown model"):
        ModelConfig.from_dict({"model": "stylegan"})
    with pytest.raises(InputError, match="one value per output band"):
        ModelConfig.from_dict({"out_bands": 4, "band_low": [0, 0, 0]})


# ------------------------------------------------------------------------------------------ generators
@pytest.mark.parametrize("model", ["csebgan", "spade", "vspade", "pix2pixhd", "clade"])
@pytest.mark.parametrize("bands", [3, 4])
def test_generator_shapes(model, bands):
    labels, images = gid_batch(32)
    real = torch.cat([images, images[:, :1]], 1) if bands == 4 else images
    cfg = tiny(model, out_bands=bands, clade_noise=model == "clade")
    g = build_generator(cfg)
    out, kl = g(labels, real=real)
    assert out.shape == (2, bands, 32, 32)
    assert out.abs().max() <= 1 and torch.isfinite(out).all()
    assert (kl is not None) == (model == "vspade")
    noise = g.sample_noise(2, torch.Generator().manual_seed(0))
    assert (noise is None) == (model in ("spade", "pix2pixhd"))
    # generation without a real image works for every model, at another size too
    out2, _ = g.eval()(torch.cat([labels, labels], 2), noise=noise)
    assert out2.shape == (2, bands, 32, 64)


def test_generator_rejects_bad_labels():
    g = build_generator(tiny())
    labels, _ = gid_batch(32)
    with pytest.raises(ValueError, match=r"0\.\.15"):
        g(labels * 2)
    with pytest.raises(ValueError, match="multiple of 8"):
        g(labels[:, :30, :30])
    mask = torch.tensor([[0, 14, 255]], dtype=torch.uint8)
    assert to_model_labels(mask, 15).tolist() == [[0, 14, 15]]
    with pytest.raises(ValueError, match=r"\[20\]"):
        to_model_labels(torch.tensor([[20]]), 15)


def _modulation_maps(g, labels, noise):
    """Per-pixel Gamma and B maps of every SMBlk for ``noise`` (list of [B, C, h, w] tensors)."""
    maps = []

    def hook(mod: SMBlk, args, _out):
        x, lab, gc, bc = args
        gamma, beta = mod.tables(gc, bc)  # [B, C, L]
        idx = lab.reshape(lab.shape[0], 1, -1).expand(-1, gamma.shape[1], -1)
        maps.append((torch.gather(gamma, 2, idx).view_as(x), torch.gather(beta, 2, idx).view_as(x), lab))

    handles = [m.register_forward_hook(hook) for m in g.modules() if isinstance(m, SMBlk)]
    with torch.no_grad():
        g(labels, noise=noise)
    for h in handles:
        h.remove()
    return maps


@pytest.mark.parametrize("share", [True, False])
def test_resample_class_changes_only_that_class(share):
    torch.manual_seed(0)
    g = build_generator(tiny(share_embeddings=share)).eval()
    labels, _ = gid_batch(32)
    k = 11  # artificial grassland, present in the first tile
    gen = torch.Generator().manual_seed(1)
    noise = g.sample_noise(2, gen)
    noise2 = g.resample_class(noise, k, gen)
    assert not torch.equal(noise[:, :, k], noise2[:, :, k])
    mask = torch.ones_like(noise, dtype=torch.bool)
    mask[:, :, k] = False
    assert torch.equal(noise[mask], noise2[mask])
    before, after = _modulation_maps(g, labels, noise), _modulation_maps(g, labels, noise2)
    assert len(before) == count_modulation_layers(g.cfg)
    for (g1, b1, lab), (g2, b2, _) in zip(before, after):
        is_k = (lab == k)[:, None].expand_as(g1)
        assert is_k.any() and (~is_k).any()
        assert torch.equal(g1[~is_k], g2[~is_k]) and torch.equal(b1[~is_k], b2[~is_k])
        assert (g1[is_k] != g2[is_k]).all() and (b1[is_k] != b2[is_k]).all()


def test_clade_instance_noise_resampling_and_errors():
    g = build_generator(tiny("clade", clade_noise=True))
    noise = g.sample_noise(2, torch.Generator().manual_seed(0))
    noise2 = g.resample_class(noise, 3, torch.Generator().manual_seed(1))
    assert torch.equal(noise[:, :3], noise2[:, :3]) and not torch.equal(noise[:, 3], noise2[:, 3])
    with pytest.raises(ValueError, match="no per-class noise"):
        build_generator(tiny("vspade")).resample_class(torch.zeros(2, 8), 1)


def test_noise_is_seeded_and_generation_deterministic():
    g = build_generator(tiny()).eval()
    labels, _ = gid_batch(32)
    n1 = g.sample_noise(2, torch.Generator().manual_seed(5))
    n2 = g.sample_noise(2, torch.Generator().manual_seed(5))
    assert torch.equal(n1, n2)
    with torch.no_grad():
        a, b = g(labels, noise=n1)[0], g(labels, noise=n2)[0]
        c = g(labels, noise=g.sample_noise(2, torch.Generator().manual_seed(6)))[0]
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_gradients_reach_embedding_shift_and_scale():
    g = build_generator(tiny())
    labels, images = gid_batch(32)
    out, _ = g(labels)
    (out - images).abs().mean().backward()
    emb = g.embeddings
    present = labels.unique()
    for p in (emb.shift, emb.log_scale):
        assert p.grad is not None
        assert (p.grad[:, present].abs().sum(dim=(-1, -2)) > 0).all()  # every present class gets a gradient
        absent = torch.tensor([c for c in range(16) if c not in present.tolist()])
        assert torch.equal(p.grad[:, absent], torch.zeros_like(p.grad[:, absent]))


def test_share_embeddings_false_has_per_layer_parameters():
    shared = build_generator(tiny())
    per_layer = build_generator(tiny(share_embeddings=False))
    n_layers = count_modulation_layers(per_layer.cfg)
    assert n_layers > 1 and per_layer.num_mod_layers == n_layers
    assert shared.embeddings.shift.shape == (1, 16, 2, 8)
    assert per_layer.embeddings.shift.shape == (n_layers, 16, 2, 8)
    assert per_layer.sample_noise(3).shape == (3, n_layers, 16, 2, 8)
    labels, images = gid_batch(32)
    out, _ = per_layer(labels)
    (out - images).abs().mean().backward()
    per_set = per_layer.embeddings.shift.grad.abs().sum(dim=(1, 2, 3))
    assert (per_set > 0).all()  # every layer's own parameters are used


# ----------------------------------------------------------------------------------------- modulation
@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_class_affine_gradcheck(layout):
    torch.manual_seed(0)
    x = torch.randn(2, 3, 4, 5, dtype=torch.double).contiguous(memory_format=layout).requires_grad_(True)
    lab = torch.randint(0, 4, (2, 4, 5))
    s = torch.randn(2, 3, 4, dtype=torch.double, requires_grad=True)
    b = torch.randn(2, 3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x, s, b: class_affine(x, lab, s, b), (x, s, b))


@pytest.mark.parametrize("layout", [torch.contiguous_format, torch.channels_last])
def test_fused_norm_matches_batchnorm_reference_in_double(layout):
    """The analytic backward of the fused norm (incl. batch-statistics terms) equals autograd through BN."""
    torch.manual_seed(0)
    x = torch.randn(3, 4, 5, 6, dtype=torch.double).contiguous(memory_format=layout).requires_grad_(True)
    lab = torch.randint(0, 3, (3, 5, 6))
    gamma = torch.randn(3, 4, 3, dtype=torch.double, requires_grad=True)
    beta = torch.randn(3, 4, 3, dtype=torch.double, requires_grad=True)
    norm = SMBlk(4, 3, 2, 2, fused=True).double()
    out = norm.modulate(x, lab, gamma, beta)
    bi = torch.arange(3)[:, None, None]
    look = lambda t: t.permute(0, 2, 1)[bi, lab].permute(0, 3, 1, 2)
    ref = F.batch_norm(x, None, None, training=True, eps=1e-5) * look(gamma) + look(beta)
    torch.testing.assert_close(out, ref)
    w = torch.randn_like(ref)
    got = torch.autograd.grad((out * w).sum(), (x, gamma, beta))
    want = torch.autograd.grad((ref * w).sum(), (x, gamma, beta))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b)


def test_fused_smblk_equals_batchnorm_then_lookup():
    torch.manual_seed(0)
    fused, plain = SMBlk(8, 5, 6, 7, fused=True), SMBlk(8, 5, 6, 7, fused=False)
    plain.f_gamma.load_state_dict(fused.f_gamma.state_dict())
    plain.f_beta.load_state_dict(fused.f_beta.state_dict())
    x = torch.randn(3, 8, 6, 6) * 3 + 1
    lab = torch.randint(0, 5, (3, 6, 6))
    gc, bc = torch.randn(3, 5, 6), torch.randn(3, 5, 6)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    o1, o2 = fused(x1, lab, gc, bc), plain(x2, lab, gc, bc)
    torch.testing.assert_close(o1, o2, atol=1e-5, rtol=1e-5)
    # x_hat * Gamma + B with Gamma/B looked up per pixel, written out explicitly
    gamma, beta = fused.tables(gc, bc)
    xh = (x - x.mean((0, 2, 3), keepdim=True)) / torch.sqrt(x.var((0, 2, 3), unbiased=False, keepdim=True) + 1e-5)
    ref = xh * gamma.permute(0, 2, 1)[torch.arange(3)[:, None, None], lab].permute(0, 3, 1, 2) + beta.permute(0, 2, 1)[
        torch.arange(3)[:, None, None], lab
    ].permute(0, 3, 1, 2)
    torch.testing.assert_close(o1, ref, atol=1e-5, rtol=1e-5)
    w = torch.randn_like(o1)
    (o1 * w).sum().backward()
    (o2 * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.f_gamma.w2.grad, plain.f_gamma.w2.grad, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(fused.running_var, plain.bn.running_var)
    fused.eval(), plain.eval()
    torch.testing.assert_close(fused(x, lab, gc, bc), plain(x, lab, gc, bc), atol=1e-5, rtol=1e-5)


def test_smblk_starts_close_to_plain_batchnorm():
    torch.manual_seed(0)
    g = build_generator(tiny())
    with torch.no_grad():
        gammas = [m.f_gamma(torch.randn(4, 16, 8)) for m in g.modules() if isinstance(m, SMBlk)]
    allg = torch.cat([t.flatten() for t in gammas])
    assert abs(float(allg.mean()) - 1) < 0.05 and 0.02 < float(allg.std()) < 0.3


# --------------------------------------------------------------------------------- discriminator, conductor
@pytest.mark.parametrize("bands", [3, 4])
def test_discriminator_returns_multiscale_features(bands):
    cfg = tiny(out_bands=bands, n_layers_d=4, num_d=2)
    d = build_discriminator(cfg)
    labels, images = gid_batch(32)
    img = torch.cat([images, images[:, :1]], 1) if bands == 4 else images
    feats = d(label_onehot(labels, 16), img)
    assert len(feats) == 2 and all(len(f) == 5 for f in feats)
    assert [t.shape[1] for t in feats[0]] == [8, 16, 32, 64, 1]
    assert feats[0][-1].shape[-1] > feats[1][-1].shape[-1]  # second scale sees a pooled input
    with pytest.raises(ValueError, match="label channels"):
        d(label_onehot(labels, 16)[:, :15], img)


def test_conductor_shapes_and_it_learns_a_real_tile():
    torch.manual_seed(0)
    c = build_conductor(tiny(out_bands=3, cond_width=4))
    labels, images = gid_batch(32)
    assert c(images).shape == (2, 15, 32, 32)
    assert c(torch.zeros(1, 3, 36, 20)).shape == (1, 15, 36, 20)
    from rsaug.gan.losses import conductor_loss

    opt = torch.optim.Adam(c.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        loss = conductor_loss(c(images), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


def test_csebgan_fits_a_real_tile():
    """End-to-end gradient flow through embeddings, fused SMBlks and the trunk: L1 to real GID-15 images drops."""
    torch.manual_seed(0)
    g = build_generator(tiny())
    labels, images = gid_batch(32)
    opt = torch.optim.Adam(g.parameters(), lr=2e-3, betas=(0.5, 0.999))
    losses = []
    for _ in range(12):
        out, _ = g(labels)
        loss = (out - images).abs().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize(
    "shape, size, layout",
    [
        ((8, 4, 3), 16, torch.contiguous_format),  # weight divided by sigma
        ((64, 64, 3), 2, torch.channels_last),  # output divided by sigma
        ((16, 8, 1), 4, torch.channels_last),  # 1x1 on channels-last input: matrix product over pixels
    ],
)
def test_snconv_equals_torch_spectral_norm(shape, size, layout):
    from torch.nn.utils import parametrizations

    from rsaug.gan.networks.generator import SNConv2d

    torch.manual_seed(0)
    cin, cout, k = shape
    conv = torch.nn.Conv2d(cin, cout, k, padding=k // 2).double()
    sn = SNConv2d.from_conv(conv).double().to(memory_format=layout)
    ref = parametrizations.spectral_norm(torch.nn.Conv2d(cin, cout, k, padding=k // 2).double())
    with torch.no_grad():
        ref.parametrizations.weight.original.copy_(conv.weight)
        ref.bias.copy_(conv.bias)
        ref.parametrizations.weight[0]._u.copy_(sn.u)
        # SNConv2d orders the matrix columns (kh, kw, in), torch (in, kh, kw)
        ref.parametrizations.weight[0]._v.copy_(sn.v.view(k, k, cin).permute(2, 0, 1).reshape(-1))
    x = torch.randn(2, cin, size, size, dtype=torch.double).contiguous(memory_format=layout)
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    o1, o2 = sn(x1), ref(x2)
    torch.testing.assert_close(o1, o2)
    w = torch.randn_like(o1)
    (o1 * w).sum().backward()
    (o2 * w).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad)
    torch.testing.assert_close(sn.weight.grad, ref.parametrizations.weight.original.grad)
    torch.testing.assert_close(sn.u, ref.parametrizations.weight[0]._u)
    # two forwards before one backward (diversity loss) must work: power steps update the buffers in place
    (sn(x).sum() + sn(x).sum()).backward()
    sigma = torch.linalg.matrix_norm(conv.weight.flatten(1), 2)
    estimate = torch.dot(sn.u, sn._matrix(sn.weight) @ sn.v).item()
    assert 0.8 * sigma.item() < estimate <= sigma.item() * (1 + 1e-9)  # power iteration approaches from below
