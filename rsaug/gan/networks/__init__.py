"""The GAN's networks: semantic embeddings, modulation layers, generators, discriminator, conductor, and the
label conversions they share (:func:`to_model_labels`: internal mask -> labels 0..K with K = unknown;
:func:`label_onehot`: labels -> the discriminator's one-hot map).

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
