"""The conductor: a small U-Net segmentation network trained jointly with the GAN, from scratch.

``C(image [B, out_bands, H, W]) -> logits [B, K, H, W]`` over the ``K`` real classes (the unknown label is
the ``ignore_index`` of its loss, see :func:`rsaug.gan.losses.conductor_loss`). The OASIS-style conductor
(``fake_class=True``, ``rsaug train --conductor-objective oasis``) has ``K + 1`` outputs: channels ``0..K-1`` are
the real classes and channel ``K`` is the class "generated" (not the generator's unknown label ``K``: unknown
pixels are ignored by every loss). Whoever reads the conductor as a segmenter takes the first ``K`` channels
(``logits[:, :K]``, the same tensor for the ``K``-class conductor) and their argmax; :func:`segmenter_state` turns
an OASIS conductor's weights into a ``K``-class segmenter's.

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
        fake_class: Add the OASIS "generated" class as output channel ``K`` (``K + 1`` outputs).

    Attributes:
        num_outputs: ``K`` or ``K + 1`` (with ``fake_class``).
    """

    def __init__(self, cfg: ModelConfig, fake_class: bool = False) -> None:
        super().__init__()
        self.cfg = cfg
        self.fake_class = bool(fake_class)
        self.num_outputs = cfg.num_classes + int(self.fake_class)
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
        self.head = nn.Conv2d(cin, self.num_outputs, 1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, image: Tensor) -> Tensor:
        """Per-pixel logits ``[B, num_outputs, H, W]`` for images in [-1, 1] (``K``, or ``K + 1`` with the fake
        class last)."""
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


def segmenter_state(state: dict[str, Tensor], num_classes: int) -> dict[str, Tensor]:
    """A conductor state dict as a ``K``-class segmenter's: an OASIS conductor's head (``K + 1`` outputs) loses
    its fake-class row; any other state is returned as it is. Only for a state known to be an OASIS conductor's
    (the trainer asks the checkpoint's stored ``conductor_objective``): the head of a segmenter trained on a
    scheme with one class more has the same shape.

    Args:
        state: A :class:`Conductor` state dict.
        num_classes: ``K``.
    """
    w = state.get("head.weight")
    if not isinstance(w, Tensor) or w.shape[0] != num_classes + 1:
        return state
    out = dict(state)
    out["head.weight"] = w[:num_classes]
    if isinstance(state.get("head.bias"), Tensor):
        out["head.bias"] = state["head.bias"][:num_classes]
    return out


def build_conductor(cfg: ModelConfig, fake_class: bool = False) -> Conductor:
    """The conductor segmentation network for ``cfg`` (``fake_class``: the OASIS-style ``K + 1`` outputs)."""
    cfg.validate()
    return Conductor(cfg, fake_class=fake_class)


__all__ = ["Conductor", "build_conductor", "segmenter_state"]
