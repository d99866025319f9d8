"""The GAN stage (``rsaug train``): configs and presets, networks, losses and objectives, training data,
trainer, checkpoints, previews and inference with a trained generator.

Modules, lowest first (none imports a module below it in this list):

* :mod:`rsaug.gan.config` - :class:`ModelConfig`, :class:`LossConfig`, :class:`TrainConfig` and the one
  preset registry (:data:`rsaug.gan.config.PRESETS`, :func:`model_preset`, :func:`preset_configs`).
* :mod:`rsaug.gan.networks` - generators, discriminator, conductor, label conversions.
* :mod:`rsaug.gan.models` - :func:`build_models` (the G / D / C triple of a config).
* :mod:`rsaug.gan.vgg`, :mod:`rsaug.gan.losses` - the offline VGG19 and every loss function.
* :mod:`rsaug.gan.augment` - DiffAugment of what the discriminator sees (optional, off by default).
* :mod:`rsaug.gan.feature_discriminator` - the optional discriminator on frozen VGG19 features (``--feature-d vgg``).
* :mod:`rsaug.gan.objectives` - what G, D and C minimise in one step.
* :mod:`rsaug.gan.data` - crops of a tile set and the step sampler; :mod:`rsaug.gan.training_state` - seeds,
  RNG states, EMA, BatchNorm refresh, learning-rate schedule; :mod:`rsaug.gan.log` - ``log.csv``.
* :mod:`rsaug.gan.checkpoint` - the checkpoint file; :mod:`rsaug.gan.inference` - :func:`load_generator`;
  :mod:`rsaug.gan.preview` - PNG sample grids.
* :mod:`rsaug.gan.trainer` - :class:`Trainer`, :func:`train`.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""

from __future__ import annotations

from rsaug.gan.checkpoint import find_checkpoint, load_checkpoint
from rsaug.gan.config import LossConfig, ModelConfig, TrainConfig, model_preset, preset_configs
from rsaug.gan.inference import Generator, load_generator
from rsaug.gan.models import Models, build_models
from rsaug.gan.trainer import Trainer, TrainingDiverged, TrainResult, train

__all__ = [
    "Generator",
    "LossConfig",
    "ModelConfig",
    "Models",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "TrainingDiverged",
    "build_models",
    "find_checkpoint",
    "load_checkpoint",
    "load_generator",
    "model_preset",
    "preset_configs",
    "train",
]
