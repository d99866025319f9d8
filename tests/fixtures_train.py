"""Session fixtures producing briefly trained checkpoints (owned by the trainer).

* ``tiny_checkpoint``: CSEBGAN trained for :data:`TINY_STEPS` steps on the real ``gid15_tileset`` fixture
  (32-px crops, batch 4, ngf 8, no VGG term), about 30-60 s on two CPU cores. Returns ``RUN/checkpoints/
  last.ckpt``; the run directory (``log.csv``, ``samples/``) is its ``parents[1]``.
* ``spade_checkpoint``: the same for the SPADE baseline (fewer steps).

Both are built once per session in a temporary directory and must be treated as read-only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

TINY_STEPS = 120
TINY_MODEL: dict[str, Any] = {
    "ngf": 8,
    "ndf": 16,
    "num_upsampling": 3,
    "embed_dim": 8,
    "mlp_hidden": 16,
    "cond_width": 8,
    "cond_depth": 2,
    "n_layers_d": 2,
    "spade_hidden": 16,
}
TINY_TRAIN: dict[str, Any] = {
    "crop_size": 32,
    "batch_size": 4,
    "tensorboard": False,
    "sample_rows": 2,
    "sample_fakes": 2,
    "ema_bn_batches": 2,
}


def tiny_configs(
    model: str = "csebgan", lambda_vgg: float = 0.0, model_overrides: dict[str, Any] | None = None, **train: Any
) -> tuple[Any, Any, Any]:
    """(TrainConfig, ModelConfig, LossConfig) of the tiny test runs; ``train`` overrides TrainConfig fields."""
    from rsaug.gan.config import LossConfig, ModelConfig, preset_configs

    cfg, over = preset_configs("cpu-small", model=model, **{**TINY_TRAIN, **train})
    over.update(TINY_MODEL)
    over.update(model_overrides or {})
    return cfg, ModelConfig.from_dict(over), LossConfig(lambda_vgg=lambda_vgg)


def _train_tiny(tiles: Path, out: Path, model: str, steps: int) -> Path:
    from rsaug.gan.trainer import train

    cfg, mcfg, lcfg = tiny_configs(model, steps=steps, checkpoint_every=steps // 2, sample_every=steps // 2)
    return train(tiles, out, cfg, mcfg, lcfg).checkpoint


@pytest.fixture(scope="session")
def tiny_checkpoint(gid15_tileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained CSEBGAN checkpoint (``RUN/checkpoints/last.ckpt``) on the GID-15 tile set fixture."""
    return _train_tiny(gid15_tileset, tmp_path_factory.mktemp("tiny_run") / "run", "csebgan", TINY_STEPS)


@pytest.fixture(scope="session")
def spade_checkpoint(gid15_tileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A briefly trained SPADE-baseline checkpoint on the GID-15 tile set fixture."""
    return _train_tiny(gid15_tileset, tmp_path_factory.mktemp("spade_run") / "run", "spade", 40)
