"""Multi-scale PatchGAN discriminator on (one-hot label map, image) pairs.

``D(onehot [B, K+1, H, W], image [B, out_bands, H, W]) -> list[list[Tensor]]``: one list per scale (full
resolution first, then each 3x3 stride-2 average-pooled copy), holding every layer's output - the
intermediate features used by feature matching, and the patch prediction last.

Each scale is a PatchGAN with ``n_layers_d`` 4x4 convolutions (stride 2 except the last one, widths
``ndf, 2ndf, ...`` capped at 512) plus a final 4x4 convolution to one channel. Following SPADE, the first
convolution is followed by LeakyReLU(0.2) only, the middle ones are spectrally normalised and followed by
instance norm and LeakyReLU(0.2), the last one is a plain convolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from rsaug.gan.config import ModelConfig
from rsaug.gan.networks.generator import init_weights


class PatchDiscriminator(nn.Module):
    """One PatchGAN scale returning all its layer outputs.

    Args:
        in_channels: ``K + 1 + out_bands``.
        ndf: Width of the first layer.
        n_layers: Number of 4x4 convolutions before the prediction layer.
    """

    def __init__(
        self, in_channels: int, ndf: int = 64, n_layers: int = 4, init: str = "xavier", gain: float = 0.02
    ) -> None:
        super().__init__()
        pad = math.ceil((4 - 1.0) / 2)

        def conv(cin: int, cout: int, stride: int) -> nn.Conv2d:
            c = nn.Conv2d(cin, cout, 4, stride=stride, padding=pad)
            init_weights(c, init, gain)
            return c

        layers: list[nn.Module] = [nn.Sequential(conv(in_channels, ndf, 2), nn.LeakyReLU(0.2))]
        nf = ndf
        for n in range(1, n_layers):
            prev, nf = nf, min(nf * 2, 512)
            stride = 1 if n == n_layers - 1 else 2
            layers.append(
                nn.Sequential(
                    parametrizations.spectral_norm(conv(prev, nf, stride)),
                    nn.InstanceNorm2d(nf, affine=False),
                    nn.LeakyReLU(0.2),
                )
            )
        layers.append(conv(nf, 1, 1))
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """Outputs of every layer; the last is the patch prediction ``[B, 1, h, w]``."""
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs on successively average-pooled (label, image) pairs."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        in_ch = cfg.num_labels + cfg.out_bands
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_ch, cfg.ndf, cfg.n_layers_d, cfg.init, cfg.init_gain) for _ in range(cfg.num_d)
        )

    def forward(self, onehot: Tensor, image: Tensor) -> list[list[Tensor]]:
        """Features per scale for the pair (``onehot`` ``[B, K+1, H, W]``, ``image`` ``[B, bands, H, W]``)."""
        if onehot.shape[1] != self.cfg.num_labels or image.shape[1] != self.cfg.out_bands:
            raise ValueError(
                f"discriminator expects {self.cfg.num_labels} label channels and "
                f"{self.cfg.out_bands} image bands, got {onehot.shape[1]} and {image.shape[1]}"
            )
        x = torch.cat([onehot.to(image.dtype), image], dim=1)
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


def build_discriminator(cfg: ModelConfig) -> MultiscaleDiscriminator:
    """The multi-scale PatchGAN discriminator for ``cfg``."""
    cfg.validate()
    return MultiscaleDiscriminator(cfg)


__all__ = ["MultiscaleDiscriminator", "PatchDiscriminator", "build_discriminator"]
