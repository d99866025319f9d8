"""The GAN stage (``rsaug train``): configs and presets, networks, losses, training data, trainer, checkpoints
and inference with a trained generator.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""
from __future__ import annotations

from rsaug.gan.config import LossConfig, ModelConfig, model_preset
from rsaug.gan.inference import Generator, build_models, load_generator
from rsaug.gan.trainer import TrainConfig, Trainer, TrainingDiverged, preset_configs, train

__all__ = [
    "Generator",
    "LossConfig",
    "ModelConfig",
    "TrainConfig",
    "Trainer",
    "TrainingDiverged",
    "build_models",
    "load_generator",
    "model_preset",
    "preset_configs",
    "train",
]
