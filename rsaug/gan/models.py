"""The networks of one model config: a generator with its (optional) discriminator and conductor.

:func:`build_models` is how the trainer, the tests and anyone who wants fresh networks build them.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from rsaug.gan.config import ModelConfig
from rsaug.gan.networks.conductor import build_conductor
from rsaug.gan.networks.discriminator import build_discriminator
from rsaug.gan.networks.generator import _Generator, build_generator


@dataclass
class Models:
    """A generator with its (optional) discriminator and conductor.

    Attributes:
        G: Generator (``G(labels, noise, real) -> (image, kl)``).
        D: Multi-scale discriminator, or ``None`` (no-discriminator ablation).
        C: Segmentation conductor, or ``None`` (no-conductor ablation).
    """

    G: _Generator
    D: nn.Module | None
    C: nn.Module | None


def build_models(
    cfg: ModelConfig, discriminator: bool = True, conductor: bool = True, conductor_fake_class: bool = False
) -> Models:
    """Build the networks of a model config (fresh initialisation from the current torch seed).

    Args:
        cfg: Architecture (``cfg.model`` picks the generator family).
        discriminator: Build the discriminator.
        conductor: Build the conductor.
        conductor_fake_class: Give the conductor the OASIS "generated" class (``K + 1`` outputs,
            ``TrainConfig.conductor_objective="oasis"``).

    Returns:
        :class:`Models`.
    """
    G = build_generator(cfg)
    D = build_discriminator(cfg) if discriminator else None
    C = build_conductor(cfg, fake_class=conductor_fake_class) if conductor else None
    return Models(G=G, D=D, C=C)


__all__ = ["Models", "build_models"]
