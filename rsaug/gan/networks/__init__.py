"""The GAN's networks: semantic embeddings, modulation layers, generators, discriminator, conductor.

May import: :mod:`rsaug.core`, :mod:`rsaug.gan.config`.
"""
from __future__ import annotations

from rsaug.gan.networks.conductor import Conductor, build_conductor
from rsaug.gan.networks.discriminator import MultiscaleDiscriminator, build_discriminator
from rsaug.gan.networks.generator import build_generator, label_onehot, to_model_labels

__all__ = [
    "Conductor",
    "MultiscaleDiscriminator",
    "build_conductor",
    "build_discriminator",
    "build_generator",
    "label_onehot",
    "to_model_labels",
]
