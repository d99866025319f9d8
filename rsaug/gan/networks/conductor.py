"""The conductor: a small U-Net segmentation network trained jointly with the GAN, from scratch.

``C(image [B, out_bands, H, W]) -> logits [B, K, H, W]`` over the ``K`` real classes (the unknown label is
the ``ignore_index`` of its loss, see :func:`rsaug.gan.losses.conductor_loss`).

Layout: ``cond_depth`` encoder levels of two 3x3 conv-BatchNorm-ReLU layers (widths ``w, 2w, 4w, ...``,
capped at ``16w``) separated by 2x2 max-pooling, a bottleneck, and a mirrored decoder that upsamples
bilinearly, concatenates the skip connection and applies two conv-BN-ReLU layers; a 1x1 convolution gives the
logits. Any input size works (decoder features are resized to their skip connection).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsaug.gan.config import ModelConfig


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Conductor(nn.Module):
    """U-Net-like encoder-decoder segmentation network.

    Args:
        cfg: Uses ``out_bands`` (input bands), ``num_classes`` (outputs), ``cond_width`` and ``cond_depth``.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.cond_width
        widths = [min(w * 2**i, 16 * w) for i in range(cfg.cond_depth + 1)]
        self.down = nn.ModuleList()
        cin = cfg.out_bands
        for i in range(cfg.cond_depth):
            self.down.append(_double_conv(cin, widths[i]))
            cin = widths[i]
        self.bottleneck = _double_conv(cin, widths[-1])
        self.up = nn.ModuleList()
        cin = widths[-1]
        for i in reversed(range(cfg.cond_depth)):
            self.up.append(_double_conv(cin + widths[i], widths[i]))
            cin = widths[i]
        self.head = nn.Conv2d(cin, cfg.num_classes, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, image: Tensor) -> Tensor:
        """Per-pixel class logits ``[B, K, H, W]`` for images in [-1, 1]."""
        if image.shape[1] != self.cfg.out_bands:
            raise ValueError(f"conductor expects {self.cfg.out_bands} bands, got {image.shape[1]}")
        skips = []
        x = image
        for block in self.down:
            x = block(x)
            skips.append(x)
            x = F.max_pool2d(x, 2, ceil_mode=True)
        x = self.bottleneck(x)
        for block, skip in zip(self.up, reversed(skips)):
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.head(x)


def build_conductor(cfg: ModelConfig) -> Conductor:
    """The conductor segmentation network for ``cfg``."""
    cfg.validate()
    return Conductor(cfg)


__all__ = ["Conductor", "build_conductor"]
