"""Tripartite GAN training (generator, discriminator, conductor) with Lightning Fabric.

One trainer covers CSEBGAN, the baselines (``spade``, ``vspade``, ``pix2pixhd``, ``clade``) and the paper's
ablations. A step is:

1. **Generator**: ``fake, kl = G(labels, noise, real)``; loss = ``lambda_gan`` * hinge(D(fake)) +
   ``lambda_fm`` * feature matching + ``lambda_vgg`` * VGG perceptual + ``lambda_cond`` * L_c^fake (the
   conductor's cross-entropy on the fake, back-propagated into G) + ``lambda_kl`` * KL (VSPADE) +
   ``lambda_ds`` * diversity-sensitive loss (when enabled). The discriminator and conductor parameters do not
   receive gradients in this step.
2. **Discriminator**: hinge loss on the real image and the (detached) fake of step 1.
3. **Conductor**: ``L_c^real + L_c^fake`` on the real image and the detached fake (``--conductor-no-real``
   drops the real term; a frozen conductor is not updated).

Adam with betas (0, 0.9) and learning rates 1e-4 (G), 4e-4 (D), 1e-4 (C), decayed linearly to zero over the
second half of training. An exponential moving average of G (``G_ema``) is kept; its BatchNorm statistics are
recomputed on training batches before every checkpoint and every sample grid (as OASIS does).

Exact resume: the batch of step ``s`` is a function of ``(seed, s, rank)`` (:mod:`rsaug.gan.data`) and every
step re-seeds torch from ``(seed, s, rank)``, so a run resumed from a checkpoint repeats the uninterrupted run
step for step. Checkpoints also store the RNG states for completeness.

A run directory holds ``config.json``, ``checkpoints/last.ckpt`` and ``checkpoints/step_XXXXXX.ckpt``,
``log.csv`` (every loss at every step), ``tb/`` (TensorBoard), ``samples/step_XXXXXX.png`` (mask | real |
fakes) and ``summary.json``.
"""
from __future__ import annotations

import csv
import copy
import dataclasses
import math
import os
import random
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rsaug import __version__
from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.gan.config import PRESETS as MODEL_PRESETS
from rsaug.gan.config import LossConfig, ModelConfig
from rsaug.gan.data import Normalization, StepSampler, TileCrops, compute_normalization, generator_labels, one_hot
from rsaug.core.errors import InputError
from rsaug.core.files import atomic_path, remove_temporaries, write_json
from rsaug.io.tileset import TileSet

CHECKPOINT_FORMAT = "rsaug-checkpoint"
CHECKPOINT_VERSION = 1
CONDUCTOR_MODES = ("joint", "none", "frozen", "no-real")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed", "32", "16", "bf16")


class TrainingDiverged(RuntimeError):
    """A loss became NaN or infinite; the run stopped and the last good checkpoint was kept."""


@dataclass
class TrainConfig:
    """Everything about a training run that is not the architecture or the loss weights.

    Attributes:
        preset: Name of the preset the run started from (``cpu-small``, ``paper`` or ``None``).
        crop_size: Square crop size in pixels (must be a multiple of the generator's size multiple).
        batch_size: Images per step and device.
        steps: Total number of optimisation steps (if ``None``, computed from ``epochs``).
        epochs: Number of passes over the train split (used when ``steps`` is ``None``).
        seed: Seed of the data order, augmentation, initialisation and noise.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        devices: Number of devices (GPUs) per node, or ``auto``.
        num_nodes: Number of nodes.
        strategy: Lightning Fabric strategy (``auto``, ``ddp``, ``ddp_spawn``, ...).
        precision: ``32-true``, ``16-mixed`` or ``bf16-mixed`` (mixed precision only on CUDA).
        workers: Data-loader worker processes.
        lr_g: Generator learning rate.
        lr_d: Discriminator learning rate.
        lr_c: Conductor learning rate.
        beta1: Adam beta1.
        beta2: Adam beta2.
        decay_start: Fraction of the steps after which the learning rates decay linearly to zero.
        conductor: ``joint`` (paper), ``none`` (no conductor), ``frozen`` (pre-trained on real data, then
            frozen) or ``no-real`` (conductor trained on fakes only; L_c^real dropped).
        frozen_conductor: With ``conductor="frozen"``: ``pretrain`` or the path of a checkpoint / state dict.
        conductor_pretrain_steps: Steps of conductor pre-training on real crops for ``frozen``/``pretrain``.
        discriminator: Use a discriminator (``False`` = the no-discriminator ablation: no adversarial and no
            feature-matching terms).
        ema_decay: Decay of the generator's exponential moving average (ramped up as ``(1+s)/(10+s)``).
        ema_bn_batches: Training batches used to recompute ``G_ema``'s BatchNorm statistics.
        checkpoint_every: Write a checkpoint every this many steps (and at the end).
        keep_checkpoints: Keep the newest this many ``step_*.ckpt`` files (0 = keep all).
        sample_every: Write a sample grid (and validation numbers) every this many steps (0 = only at the end).
        sample_rows: Masks (rows) in a sample grid.
        sample_fakes: Fakes per mask in a sample grid.
        val_tiles: Validation crops (spread over the val split) for the ``val_*`` monitoring columns.
        tensorboard: Also log to TensorBoard (``RUN/tb``) when ``torch.utils.tensorboard`` is available.
    """

    preset: str | None = None
    crop_size: int = 64
    batch_size: int = 4
    steps: int | None = None
    epochs: float | None = None
    seed: int = 0
    device: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    workers: int = 0
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    lr_c: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    decay_start: float = 0.5
    conductor: str = "joint"
    frozen_conductor: str | None = None
    conductor_pretrain_steps: int = 200
    discriminator: bool = True
    ema_decay: float = 0.999
    ema_bn_batches: int = 4
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 250
    sample_rows: int = 4
    sample_fakes: int = 3
    val_tiles: int = 16
    tensorboard: bool = True

    def validate(self) -> None:
        """Check values that do not depend on the data.

        Raises:
            InputError: On the first invalid value.
        """
        def need(cond: bool, problem: str) -> None:
            if not cond:
                raise InputError(None, problem)

        need(self.crop_size >= 8, f"crop size must be at least 8, got {self.crop_size}")
        need(self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}")
        need(self.steps is None or self.steps >= 1, f"--steps must be at least 1, got {self.steps}")
        need(self.epochs is None or self.epochs > 0, f"--epochs must be positive, got {self.epochs}")
        need(self.conductor in CONDUCTOR_MODES, f"conductor mode must be one of {CONDUCTOR_MODES}")
        need(self.conductor != "frozen" or bool(self.frozen_conductor),
             "a frozen conductor needs --frozen-conductor PATH or 'pretrain'")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS[:3])}")
        need(0.0 <= self.decay_start <= 1.0, "decay_start must be in [0, 1]")
        need(0.0 <= self.ema_decay < 1.0, "ema_decay must be in [0, 1)")
        need(self.checkpoint_every >= 1, "checkpoint interval must be at least 1")
        need(self.sample_every >= 0, "sample interval must be >= 0")
        need(self.workers >= 0, "workers must be >= 0")
        need(self.lr_g > 0 and self.lr_d > 0 and self.lr_c > 0, "learning rates must be positive")

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(None, f"train config: unknown keys {', '.join(unknown)}")
        return cls(**data)


TRAIN_PRESETS: dict[str, dict[str, Any]] = {
    # Visibly learns in about 20 minutes on 2 CPU cores (see docs/training.md for what it reaches).
    "cpu-small": {"crop_size": 64, "batch_size": 4, "steps": 800, "epochs": None, "ema_decay": 0.995,
                  "ema_bn_batches": 2, "checkpoint_every": 100, "sample_every": 100, "keep_checkpoints": 2,
                  "conductor_pretrain_steps": 100},
    # The paper: 256 px, paper widths, 200 epochs with linear decay over the last 100.
    "paper": {"crop_size": 256, "batch_size": 8, "steps": None, "epochs": 200, "ema_decay": 0.9999,
              "ema_bn_batches": 16, "checkpoint_every": 2000, "sample_every": 1000, "keep_checkpoints": 3,
              "conductor_pretrain_steps": 2000},
}
"""Training presets; the architecture part of a preset is :data:`rsaug.gan.config.PRESETS`."""


def preset_configs(name: str | None, model: str = "csebgan", **train_overrides: Any) -> tuple[TrainConfig,
                                                                                            dict[str, Any]]:
    """The :class:`TrainConfig` and model-config overrides of a preset.

    Args:
        name: ``cpu-small``, ``paper`` or ``None`` (defaults).
        model: Generator family.
        **train_overrides: TrainConfig fields to override (``None`` values are ignored).

    Returns:
        ``(train_config, model_overrides)``; the model overrides still lack ``num_classes`` / ``out_bands``,
        which come from the tile set.

    Raises:
        InputError: For an unknown preset.
    """
    if name is not None and name not in TRAIN_PRESETS:
        raise InputError(None, f"unknown preset {name!r}; choose one of {', '.join(TRAIN_PRESETS)}")
    base = dict(TRAIN_PRESETS.get(name, {})) if name else {}
    given = {k: v for k, v in train_overrides.items() if v is not None}
    base.update(given)
    if "epochs" in given and "steps" not in given:
        base["steps"] = None
    if "steps" in given and "epochs" not in given:
        base["epochs"] = None
    cfg = TrainConfig(preset=name, **{k: v for k, v in base.items() if k != "preset"})
    model_over: dict[str, Any] = dict(MODEL_PRESETS.get(name, {})) if name else {}
    model_over["model"] = model
    model_over["crop_size"] = cfg.crop_size
    return cfg, model_over


# ----------------------------------------------------------------------------------------------- helpers
def _seed_for(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _requires_grad(module: nn.Module | None, flag: bool) -> None:
    if module is not None:
        for p in module.parameters():
            p.requires_grad_(flag)


def lr_factor(step: int, total: int, decay_start: float) -> float:
    """Learning-rate multiplier at ``step``: 1 until ``decay_start * total``, then linear to 0 at ``total``."""
    start = int(round(decay_start * total))
    if step < start or total <= start:
        return 1.0
    return max(0.0, (total - step) / (total - start))


def conductor_ce(logits: torch.Tensor, mask: torch.Tensor, class_balanced: bool = False) -> torch.Tensor:
    """Delegate to :func:`rsaug.gan.losses.conductor_loss` (pixel-wise CE, unknown pixels ignored)."""
    from rsaug.gan import losses

    return losses.conductor_loss(logits.float(), mask, class_balanced=class_balanced)


def _running_stat_modules(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules()
            if isinstance(getattr(m, "running_mean", None), torch.Tensor)
            and isinstance(getattr(m, "running_var", None), torch.Tensor) and hasattr(m, "momentum")]


@torch.no_grad()
def refresh_batchnorm(G: nn.Module, batches: list[tuple[torch.Tensor, Any]]) -> None:
    """Recompute the BatchNorm running statistics of ``G`` as exact averages over ``batches``.

    Works for ``nn.BatchNorm*`` / ``SyncBatchNorm`` and for the fused class-modulated norms of
    :mod:`rsaug.gan.networks.modulation` (any module with ``running_mean``, ``running_var`` and ``momentum``): the statistics
    are reset and batch ``i`` is folded in with momentum ``1 / (i + 1)``, giving the plain mean.

    Args:
        G: Generator (typically the EMA copy); left in eval mode.
        batches: ``(labels, noise)`` pairs to run through ``G`` in train mode.
    """
    mods = _running_stat_modules(G)
    if not mods or not batches:
        G.eval()
        return
    momenta = [m.momentum for m in mods]
    for m in mods:
        m.running_mean.zero_()
        m.running_var.fill_(1.0)
        if isinstance(getattr(m, "num_batches_tracked", None), torch.Tensor):
            m.num_batches_tracked.zero_()
    G.train()
    for i, (labels, noise) in enumerate(batches):
        for m in mods:
            m.momentum = 1.0 / (i + 1)
        G(labels, noise)
    for m, mom in zip(mods, momenta):
        m.momentum = mom
    G.eval()


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema = decay * ema + (1 - decay) * model`` for parameters (buffers are refreshed separately)."""
    for pe, pm in zip(ema.parameters(), model.parameters()):
        pe.lerp_(pm.detach().to(pe.dtype), 1.0 - decay)


def image_to_rgb8(img: torch.Tensor) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H, W, 3) uint8 for previews (first three bands; grey for 1-2 bands)."""
    x = img.detach().float().cpu().clamp(-1, 1)
    x = x[:3] if x.shape[0] >= 3 else x[:1].expand(3, -1, -1)
    return ((x + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()


def save_grid(path: Path, masks: torch.Tensor, reals: torch.Tensor, fakes: list[torch.Tensor],
              scheme: ClassScheme, pad: int = 2) -> None:
    """Write a PNG grid: one row per mask, columns mask | real | fake 1 | fake 2 | ...

    Args:
        path: Destination PNG.
        masks: (N, H, W) internal masks.
        reals: (N, C, H, W) real images in [-1, 1].
        fakes: List of (N, C, H, W) fakes in [-1, 1].
        scheme: Class scheme (mask colours).
        pad: White padding between cells.
    """
    from PIL import Image

    n, h, w = masks.shape
    cols = 2 + len(fakes)
    grid = np.full((n * (h + pad) + pad, cols * (w + pad) + pad, 3), 255, np.uint8)
    pal = scheme.palette()
    for r in range(n):
        cells = [pal[masks[r].cpu().numpy().astype(np.uint8)], image_to_rgb8(reals[r])]
        cells += [image_to_rgb8(f[r]) for f in fakes]
        for c, cell in enumerate(cells):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            grid[y:y + h, x:x + w] = cell
    with atomic_path(path) as tmp:
        Image.fromarray(grid).save(tmp, format="PNG")


class CsvLog:
    """Append-only CSV of per-step values with a fixed header (rows beyond a resumed step are dropped)."""

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path = path
        self.columns = columns
        if resume_step is not None and path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                wr.writeheader()
                wr.writerows(rows)
        else:
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                csv.DictWriter(f, fieldnames=columns).writeheader()
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns stay empty)."""
        self._writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def read_log(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read a run's ``log.csv`` as a list of ``{column: float}`` (empty cells omitted)."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


def find_checkpoint(run: str | os.PathLike[str]) -> Path:
    """``RUN/checkpoints/last.ckpt`` of a run directory (or ``run`` itself if it is a file).

    Raises:
        InputError: If there is none.
    """
    p = Path(run)
    if p.is_file():
        return p
    last = p / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise InputError(p, "no checkpoint to resume from (checkpoints/last.ckpt missing)")
    return last


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an rsaug checkpoint dictionary.

    Raises:
        InputError: If the file is missing or not an rsaug checkpoint.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "checkpoint not found")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:  # corrupt / foreign file
        raise InputError(p, f"cannot read checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(p, "not an rsaug checkpoint")
    return ckpt


# ----------------------------------------------------------------------------------------------- trainer
@dataclass
class TrainResult:
    """What :func:`train` returns (also written to ``RUN/summary.json``).

    Attributes:
        run_dir: The run directory.
        checkpoint: Path of ``last.ckpt``.
        steps: Last completed step.
        seconds: Wall time of this invocation.
        images_per_second: Training throughput of this invocation.
        first_losses: Mean of each loss over the first 10 % of the steps run in this invocation.
        last_losses: Mean of each loss over the last 10 % of the steps run in this invocation.
        samples: Paths of the sample grids written.
    """

    run_dir: Path
    checkpoint: Path
    steps: int
    seconds: float
    images_per_second: float
    first_losses: dict[str, float]
    last_losses: dict[str, float]
    samples: list[Path]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        d = dataclasses.asdict(self)
        d["run_dir"], d["checkpoint"] = str(self.run_dir), str(self.checkpoint)
        d["samples"] = [str(s) for s in self.samples]
        return d


class Trainer:
    """Runs (or resumes) one training run; see the module docstring.

    Args:
        tiles: Tile-set directory (train split for training, val split for monitoring).
        run_dir: Output run directory.
        train_config: Training options (ignored when resuming: the checkpoint's are used, except device,
            workers and precision).
        model_config: Architecture; ``num_classes``, ``out_bands``, ``band_low``/``band_high`` and
            ``crop_size`` are filled in from the tile set and ``train_config``.
        loss_config: Loss weights.
        resume: Continue the run in ``run_dir`` from ``checkpoints/last.ckpt``.
        quiet: No progress bar.
        echo: Where to print messages (``None``: silent).

    Raises:
        InputError: Missing/invalid tile set, empty split, mask values outside the scheme, class scheme
            different from the resumed checkpoint's, a run directory that already holds checkpoints...
    """

    def __init__(self, tiles: str | os.PathLike[str], run_dir: str | os.PathLike[str],
                 train_config: TrainConfig | None = None, model_config: ModelConfig | None = None,
                 loss_config: LossConfig | None = None, resume: bool = False, quiet: bool = True,
                 echo: Callable[[str], None] | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.quiet = quiet
        self.echo = echo or (lambda s: None)
        self.tiles = TileSet.open(tiles)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.resume_state: dict[str, Any] | None = None
        if resume:
            ckpt_path = find_checkpoint(self.run_dir)
            state = load_checkpoint(ckpt_path)
            ck_scheme = ClassScheme.from_dict(state["scheme"])
            if not ck_scheme.same_classes(self.tiles.scheme) or ck_scheme.name != self.tiles.scheme.name:
                raise InputError(self.tiles.root, f"class scheme {self.tiles.scheme.name!r} "
                                 f"({self.tiles.scheme.num_classes} classes) differs from the checkpoint's "
                                 f"{ck_scheme.name!r} ({ck_scheme.num_classes} classes) in {ckpt_path}")
            old = TrainConfig.from_dict(state["train_config"])
            if train_config is not None:  # the machine may differ on resume
                for name in ("device", "workers", "precision", "devices", "num_nodes", "strategy"):
                    setattr(old, name, getattr(train_config, name))
            self.cfg = old
            self.model_cfg = ModelConfig.from_dict(state["model_config"])
            self.loss_cfg = LossConfig.from_dict(state["loss_config"])
            self.normalization = Normalization.from_dict(state["normalization"])
            if self.tiles.bands != self.model_cfg.out_bands:
                raise InputError(self.tiles.root, f"tile set has {self.tiles.bands} bands, the checkpoint "
                                 f"{self.model_cfg.out_bands}")
            self.resume_state = state
            self.resume_path = ckpt_path
        else:
            if self.ckpt_dir.is_dir() and any(self.ckpt_dir.glob("*.ckpt")):
                raise InputError(self.run_dir, "run directory already holds checkpoints; use --resume to "
                                               "continue it or choose another -o")
            self.cfg = train_config or TrainConfig()
            self.cfg.validate()
            mc = model_config or ModelConfig()
            self.normalization = compute_normalization(self.tiles, "train", self.cfg.seed)
            self.model_cfg = ModelConfig.from_dict({
                **mc.to_dict(), "num_classes": self.tiles.scheme.num_classes, "out_bands": self.tiles.bands,
                "crop_size": self.cfg.crop_size, "band_low": self.normalization.low,
                "band_high": self.normalization.high})
            self.loss_cfg = loss_config or LossConfig()
        if self.cfg.crop_size % self.model_cfg.size_multiple:
            raise InputError(None, f"crop size {self.cfg.crop_size} is not a multiple of "
                                   f"{self.model_cfg.size_multiple} (required by the {self.model_cfg.model} "
                                   f"generator with this config)")
        if self.loss_cfg.lambda_ds > 0 and not self.model_cfg.has_noise:
            raise InputError(None, f"the diversity-sensitive loss needs a generator with noise; "
                                   f"{self.model_cfg.model} has none")
        self.scheme = self.tiles.scheme
        self.K = self.scheme.num_classes
        # data (validates masks and split sizes before anything is written)
        self.train_data = TileCrops(self.tiles, "train", self.cfg.crop_size, self.normalization, self.cfg.seed)
        if len(self.tiles.split("val")):
            self.val_data = TileCrops(self.tiles, "val", self.cfg.crop_size, self.normalization, self.cfg.seed,
                                      augment=False)
        else:
            self.echo("note: the tile set has no val split; monitoring uses centre crops of train tiles")
            self.val_data = TileCrops(self.tiles, "train", self.cfg.crop_size, self.normalization,
                                      self.cfg.seed, augment=False)
        self.bn_data = copy.copy(self.train_data)
        self.bn_data.seed = self.cfg.seed + 1_000_003
        if self.cfg.steps is None:
            epochs = self.cfg.epochs if self.cfg.epochs is not None else 1.0
            self.total_steps = max(1, math.ceil(epochs * len(self.train_data) / self.cfg.batch_size))
        else:
            self.total_steps = int(self.cfg.steps)

    # ------------------------------------------------------------------ setup
    def _fabric(self) -> Any:
        import lightning as L

        dev = self.cfg.device
        if dev == "auto":
            accelerator, devices = ("cuda" if torch.cuda.is_available() else "cpu"), self.cfg.devices
        else:
            from rsaug.core.runtime import select_device

            d = select_device(dev)
            accelerator = d.type
            devices = [d.index] if d.type == "cuda" and d.index is not None else self.cfg.devices
        precision = self.cfg.precision
        if accelerator == "cpu" and precision not in ("32-true", "32"):
            raise InputError(None, f"precision {precision} needs CUDA; use 32-true on the CPU")
        return L.Fabric(accelerator=accelerator, devices=devices, num_nodes=self.cfg.num_nodes,
                        strategy=self.cfg.strategy, precision=precision)

    def _build(self, fabric: Any) -> None:
        from rsaug.gan.inference import build_models

        sync_bn = fabric.world_size > 1 and fabric.device.type == "cuda"  # SyncBatchNorm is CUDA-only
        if sync_bn and self.model_cfg.fused_modulation:
            # fused statistics are per device; plain BatchNorm2d converts to SyncBatchNorm
            self.model_cfg.fused_modulation = False
            self.echo("note: multi-process training uses unfused modulation (synchronised BatchNorm)")
        torch.manual_seed(self.cfg.seed)
        models = build_models(self.model_cfg, discriminator=self.cfg.discriminator,
                              conductor=self.cfg.conductor != "none")
        self.G, self.D, self.C = models.G, models.D, models.C
        if sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            if self.C is not None:
                self.C = nn.SyncBatchNorm.convert_sync_batchnorm(self.C)
        self.G_ema = copy.deepcopy(self.G)
        _requires_grad(self.G_ema, False)
        self.G_ema.eval()
        betas = (self.cfg.beta1, self.cfg.beta2)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)
        self.opt_D = (torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas)
                      if self.D is not None else None)
        self.c_trainable = self.C is not None and self.cfg.conductor in ("joint", "no-real")
        self.opt_C = (torch.optim.Adam(self.C.parameters(), lr=self.cfg.lr_c, betas=betas)
                      if self.c_trainable else None)
        lam = lambda s: lr_factor(s, self.total_steps, self.cfg.decay_start)  # noqa: E731
        self.scheds = {"G": torch.optim.lr_scheduler.LambdaLR(self.opt_G, lam)}
        if self.opt_D is not None:
            self.scheds["D"] = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lam)
        if self.c_trainable:
            self.scheds["C"] = torch.optim.lr_scheduler.LambdaLR(self.opt_C, lam)
        self.vgg = None
        if self.loss_cfg.lambda_vgg > 0:
            from rsaug.gan.losses import PerceptualLoss

            self.vgg = PerceptualLoss(feature_scale=self.loss_cfg.vgg_feature_scale)
            self.vgg.to(fabric.device)

    def _setup_fabric_objects(self, fabric: Any) -> None:
        self.Gw, self.opt_Gw = fabric.setup(self.G, self.opt_G)
        self.Dw = self.opt_Dw = None
        if self.D is not None:
            self.Dw, self.opt_Dw = fabric.setup(self.D, self.opt_D)
        self.Cw = self.opt_Cw = None
        if self.C is not None:
            if self.c_trainable:
                self.Cw, self.opt_Cw = fabric.setup(self.C, self.opt_C)
            else:
                self.C.to(fabric.device)
                self.Cw = self.C
        self.G_ema.to(fabric.device)

    def _state(self, step: int) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "rsaug_version": __version__,
            "step": step, "total_steps": self.total_steps,
            "train_config": self.cfg.to_dict(), "model_config": self.model_cfg.to_dict(),
            "loss_config": self.loss_cfg.to_dict(), "scheme": self.scheme.to_dict(),
            "normalization": self.normalization.to_dict(), "tileset": self.tiles.description,
            "tileset_path": str(self.tiles.root.resolve()),
            "G": self.G.state_dict(), "G_ema": self.G_ema.state_dict(),
            "D": None if self.D is None else self.D.state_dict(),
            "C": None if self.C is None else self.C.state_dict(),
            "opt_G": self.opt_G.state_dict(),
            "opt_D": None if self.opt_D is None else self.opt_D.state_dict(),
            "opt_C": None if not self.c_trainable else self.opt_C.state_dict(),
            "schedulers": {k: s.state_dict() for k, s in self.scheds.items()},
            "rng": _rng_state(), "log_columns": self.columns,
            "grad_scaler": None if self._scaler() is None else self._scaler().state_dict(),
        }

    def _scaler(self) -> Any:
        fabric = getattr(self, "_fabric_obj", None)
        return getattr(getattr(getattr(fabric, "strategy", None), "precision", None), "scaler", None)

    def _load_state(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        if self.D is not None:
            self.D.load_state_dict(state["D"])
        if self.C is not None:
            self.C.load_state_dict(state["C"])
        self.opt_G.load_state_dict(state["opt_G"])
        if self.opt_D is not None:
            self.opt_D.load_state_dict(state["opt_D"])
        if self.c_trainable:
            self.opt_C.load_state_dict(state["opt_C"])
        for k, s in self.scheds.items():
            s.load_state_dict(state["schedulers"][k])
        _set_rng_state(state["rng"])

    def _save_checkpoint(self, fabric: Any, step: int) -> Path:
        self._refresh_ema_bn(fabric, step)
        last = self.ckpt_dir / "last.ckpt"
        if fabric.global_rank == 0:
            state = self._state(step)
            step_path = self.ckpt_dir / f"step_{step:06d}.ckpt"
            with atomic_path(step_path) as tmp:
                torch.save(state, tmp)
            with atomic_path(last) as tmp:
                try:
                    os.link(step_path, tmp)
                except OSError:
                    shutil.copyfile(step_path, tmp)
            if self.cfg.keep_checkpoints > 0:
                old = sorted(self.ckpt_dir.glob("step_*.ckpt"),
                             key=lambda p: int(p.stem.split("_")[1]))[:-self.cfg.keep_checkpoints]
                for p in old:
                    p.unlink()
        fabric.barrier()
        return last

    # ------------------------------------------------------------------ conductor pre-training
    def _pretrain_conductor(self, fabric: Any) -> None:
        src = self.cfg.frozen_conductor
        assert self.C is not None
        if src != "pretrain":
            p = Path(str(src))
            try:
                obj = torch.load(p, map_location="cpu", weights_only=False)
            except FileNotFoundError:
                raise InputError(p, "frozen conductor file not found") from None
            except Exception as exc:
                raise InputError(p, f"cannot read frozen conductor: {exc}") from None
            sd = obj.get("C") if isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT else obj
            try:
                self.C.load_state_dict(sd)
            except Exception as exc:
                raise InputError(p, f"conductor weights do not fit this model config: {exc}") from None
        else:
            C = self.C.to(fabric.device)
            C.train()
            opt = torch.optim.Adam(C.parameters(), lr=self.cfg.lr_c, betas=(self.cfg.beta1, self.cfg.beta2))
            data = copy.copy(self.train_data)
            data.seed = self.cfg.seed + 2_000_003
            n = self.cfg.conductor_pretrain_steps
            loader = torch.utils.data.DataLoader(data, batch_size=self.cfg.batch_size,
                                                 sampler=StepSampler(self.cfg.batch_size, 0, n),
                                                 num_workers=self.cfg.workers)
            from tqdm import tqdm

            bar = tqdm(loader, total=n, desc="pretraining conductor", disable=self.quiet, leave=False)
            for i, batch in enumerate(bar):
                torch.manual_seed(_seed_for(self.cfg.seed, 3, i))
                img, mask = batch["image"].to(fabric.device), batch["mask"].to(fabric.device)
                loss = conductor_ce(C(img), mask, self.loss_cfg.cond_class_balanced)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.set_postfix(ce=f"{loss.item():.3f}")
            self.echo(f"conductor pre-trained for {n} steps (last CE {loss.item():.3f})")
        _requires_grad(self.C, False)
        self.C.eval()

    # ------------------------------------------------------------------ columns
    def _columns(self) -> list[str]:
        cols = ["step", "epoch", "time", "images_per_s", "lr_g"]
        if self.D is not None:
            cols += ["lr_d"]
        if self.c_trainable:
            cols += ["lr_c"]
        g = []
        if self.D is not None:
            g += ["g_adv", "g_fm"]
        if self.vgg is not None:
            g += ["g_vgg"]
        if self.C is not None:
            g += ["g_cond"]
        if self.model_cfg.model == "vspade":
            g += ["g_kl"]
        if self.loss_cfg.lambda_ds > 0:
            g += ["g_ds"]
        cols += g + ["g_total"]
        if self.D is not None:
            cols += ["d_real", "d_fake", "d_total"]
        if self.c_trainable:
            if self.cfg.conductor == "joint":
                cols += ["c_real"]
            cols += ["c_fake", "c_total"]
        if self.C is not None:
            cols += ["val_c_real", "val_acc_real", "val_c_fake", "val_acc_fake"]
        cols += ["val_l1_ema"]
        return cols

    # ------------------------------------------------------------------ one step
    def _check(self, losses: dict[str, torch.Tensor], step: int) -> None:
        for name, v in losses.items():
            if not torch.isfinite(v.detach()).all():
                last = self.ckpt_dir / "last.ckpt"
                kept = f"last good checkpoint kept: {last}" if last.is_file() else "no checkpoint written yet"
                raise TrainingDiverged(f"non-finite loss {name} = {v.item()} at step {step + 1}; training "
                                       f"stopped ({kept}). Try a lower learning rate or 32-bit precision.")

    def _step(self, fabric: Any, step: int, batch: dict[str, torch.Tensor]) -> dict[str, float]:
        cfg, lc = self.cfg, self.loss_cfg
        torch.manual_seed(_seed_for(cfg.seed, 1, step, fabric.global_rank))
        gen = torch.Generator(device="cpu").manual_seed(_seed_for(cfg.seed, 2, step, fabric.global_rank))
        image = batch["image"].to(fabric.device)
        mask = batch["mask"].to(fabric.device)
        labels = generator_labels(mask, self.K)
        onehot = one_hot(labels, self.K)
        B = image.shape[0]
        single = fabric.world_size == 1
        out: dict[str, torch.Tensor] = {}

        # ---- generator
        if single:
            _requires_grad(self.D, False)
            if self.c_trainable:
                _requires_grad(self.C, False)
        noise = self._noise(B, gen, fabric.device)
        real_in = image if self.model_cfg.model == "vspade" else None
        fake, kl = self.Gw(labels, noise, real_in)
        g_total = torch.zeros((), device=fabric.device)
        if self.Dw is not None:
            from rsaug.gan import losses

            pred_fake = self.Dw(onehot, fake)
            with torch.no_grad():
                pred_real = self.Dw(onehot, image)
            out["g_adv"] = losses.hinge_g_loss(pred_fake)
            out["g_fm"] = losses.feature_matching_loss(pred_real, pred_fake, weight=1.0)
            g_total = g_total + lc.lambda_gan * out["g_adv"] + lc.lambda_fm * out["g_fm"]
        if self.vgg is not None:
            out["g_vgg"] = self.vgg(fake.float(), image)
            g_total = g_total + lc.lambda_vgg * out["g_vgg"]
        if self.Cw is not None:
            out["g_cond"] = conductor_ce(self.Cw(fake), mask, lc.cond_class_balanced)
            g_total = g_total + lc.lambda_cond * out["g_cond"]
        if self.model_cfg.model == "vspade":
            out["g_kl"] = kl if kl is not None else torch.zeros((), device=fabric.device)
            g_total = g_total + lc.lambda_kl * out["g_kl"]
        if lc.lambda_ds > 0:
            from rsaug.gan import losses

            noise2 = self._noise(B, gen, fabric.device)
            fake2, _ = self.Gw(labels, noise2, None)
            out["g_ds"] = losses.diversity_sensitive_loss(fake, fake2, noise, noise2, tau=lc.ds_tau)
            g_total = g_total + lc.lambda_ds * out["g_ds"]
        out["g_total"] = g_total
        self._check(out, step)
        self.opt_Gw.zero_grad(set_to_none=True)
        fabric.backward(g_total)
        self.opt_Gw.step()
        update_ema(self.G_ema, self.G, min(cfg.ema_decay, (1 + step) / (10 + step)))
        fake = fake.detach()

        # ---- discriminator
        if self.Dw is not None:
            from rsaug.gan import losses

            if single:
                _requires_grad(self.D, True)
            d_real = losses.hinge_d_real_loss(self.Dw(onehot, image))
            d_fake = losses.hinge_d_fake_loss(self.Dw(onehot, fake))
            d = {"d_real": d_real, "d_fake": d_fake, "d_total": d_real + d_fake}
            self._check(d, step)
            self.opt_Dw.zero_grad(set_to_none=True)
            fabric.backward(d["d_total"])
            self.opt_Dw.step()
            out.update(d)

        # ---- conductor
        if self.c_trainable:
            if single:
                _requires_grad(self.C, True)
            c: dict[str, torch.Tensor] = {}
            c_total = torch.zeros((), device=fabric.device)
            if cfg.conductor == "joint":
                c["c_real"] = conductor_ce(self.Cw(image), mask, lc.cond_class_balanced)
                c_total = c_total + c["c_real"]
            c["c_fake"] = conductor_ce(self.Cw(fake), mask, lc.cond_class_balanced)
            c["c_total"] = c_total + c["c_fake"]
            self._check(c, step)
            self.opt_Cw.zero_grad(set_to_none=True)
            fabric.backward(lc.lambda_cond * c["c_total"])
            self.opt_Cw.step()
            out.update(c)

        for s in self.scheds.values():
            s.step()
        return {k: float(v.detach().float().item()) for k, v in out.items()}

    def _noise(self, batch: int, gen: torch.Generator, device: torch.device) -> Any:
        noise = self.G.sample_noise(batch, generator=gen, device="cpu")
        return None if noise is None else noise.to(device)

    # ------------------------------------------------------------------ monitoring
    def _bn_batches(self, fabric: Any, step: int) -> list[tuple[torch.Tensor, Any]]:
        out = []
        gen = torch.Generator().manual_seed(_seed_for(self.cfg.seed, 4, step))
        B = self.cfg.batch_size
        for b in range(self.cfg.ema_bn_batches):
            items = [self.bn_data[(step * self.cfg.ema_bn_batches + b) * B + i] for i in range(B)]
            mask = torch.stack([it["mask"] for it in items]).to(fabric.device)
            out.append((generator_labels(mask, self.K), self._noise(B, gen, fabric.device)))
        return out

    def _refresh_ema_bn(self, fabric: Any, step: int) -> None:
        if getattr(self, "_bn_refreshed_at", None) == step:
            return
        refresh_batchnorm(self.G_ema, self._bn_batches(fabric, step))
        self._bn_refreshed_at = step

    @torch.no_grad()
    def _monitor(self, fabric: Any, step: int) -> tuple[dict[str, float], Path | None]:
        self._refresh_ema_bn(fabric, step)
        # metrics on up to `val_tiles` val crops spread over the split (sorted tile sets group similar
        # scenes together); the grid shows `sample_rows` of them
        n = min(max(self.cfg.val_tiles, self.cfg.sample_rows), len(self.val_data))
        picks = np.linspace(0, len(self.val_data) - 1, n).round().astype(int).tolist()
        items = [self.val_data[i] for i in picks]
        image = torch.stack([it["image"] for it in items]).to(fabric.device)
        mask = torch.stack([it["mask"] for it in items]).to(fabric.device)
        labels = generator_labels(mask, self.K)
        rows = np.linspace(0, n - 1, min(self.cfg.sample_rows, n)).round().astype(int).tolist()
        gen = torch.Generator().manual_seed(_seed_for(self.cfg.seed, 5))
        fake0 = self.G_ema(labels, self._noise(n, gen, fabric.device), None)[0].float()
        fakes = [fake0[rows]]
        for _ in range(self.cfg.sample_fakes - 1):
            fakes.append(self.G_ema(labels[rows], self._noise(len(rows), gen, fabric.device), None)[0].float())
        vals: dict[str, float] = {"val_l1_ema": float((fake0 - image).abs().mean())}
        if self.C is not None:
            was = self.C.training
            self.C.eval()
            known = mask != IGNORE
            for tag, x in (("real", image), ("fake", fake0)):
                logits = self.C(x).float()
                vals[f"val_c_{tag}"] = float(conductor_ce(logits, mask))
                acc = (logits.argmax(1) == mask)[known].float().mean() if known.any() else torch.tensor(0.0)
                vals[f"val_acc_{tag}"] = float(acc)
            self.C.train(was)
        path = None
        if fabric.global_rank == 0:
            path = self.run_dir / "samples" / f"step_{step:06d}.png"
            save_grid(path, mask[rows].cpu(), image[rows].cpu(), [f.cpu() for f in fakes], self.scheme)
        return vals, path

    # ------------------------------------------------------------------ main loop
    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train until ``total_steps`` (or until ``stop_after`` steps, to simulate an interrupted run).

        Returns:
            A :class:`TrainResult`.

        Raises:
            TrainingDiverged: If a loss becomes non-finite.
        """
        from tqdm import tqdm

        fabric = self._fabric()
        fabric.launch()
        self.global_rank = fabric.global_rank
        self._build(fabric)
        start = 0
        if self.resume_state is not None:
            start = int(self.resume_state["step"])
            try:
                self._load_state(self.resume_state)
            except (RuntimeError, ValueError, KeyError) as exc:
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise InputError(self.resume_path, "cannot resume: the checkpoint's networks or optimiser "
                                 f"states do not fit this rsaug version ({first[:200]})") from None
            if self.cfg.conductor == "frozen" and self.C is not None:
                _requires_grad(self.C, False)
                self.C.eval()
            self.echo(f"resuming {self.run_dir} at step {start} of {self.total_steps}")
        elif self.cfg.conductor == "frozen":
            self._pretrain_conductor(fabric)
        self.columns = self._columns()
        self._setup_fabric_objects(fabric)
        self._fabric_obj = fabric
        if self.resume_state is not None and self.resume_state.get("grad_scaler") and self._scaler() is not None:
            self._scaler().load_state_dict(self.resume_state["grad_scaler"])
        self.G.train()
        if self.D is not None:
            self.D.train()
        if self.c_trainable:
            self.C.train()

        if fabric.global_rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.run_dir)
            write_json(self.run_dir / "config.json", {
                "rsaug_version": __version__, "tiles": str(self.tiles.root.resolve()),
                "train": self.cfg.to_dict(), "model": self.model_cfg.to_dict(), "loss": self.loss_cfg.to_dict(),
                "scheme": self.scheme.to_dict(), "normalization": self.normalization.to_dict(),
                "total_steps": self.total_steps, "world_size": fabric.world_size})
        log = CsvLog(self.run_dir / "log.csv", self.columns, start if self.resume_state else None) \
            if fabric.global_rank == 0 else None
        tb = None
        if self.cfg.tensorboard and fabric.global_rank == 0:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    from torch.utils.tensorboard import SummaryWriter
                tb = SummaryWriter(str(self.run_dir / "tb"), purge_step=start + 1 if start else None)
            except Exception:  # tensorboard not installed
                tb = None

        end = self.total_steps if stop_after is None else min(self.total_steps, stop_after)
        sampler = StepSampler(self.cfg.batch_size, start, end, fabric.global_rank, fabric.world_size)
        loader = torch.utils.data.DataLoader(self.train_data, batch_size=self.cfg.batch_size, sampler=sampler,
                                             num_workers=self.cfg.workers,
                                             persistent_workers=False, pin_memory=fabric.device.type == "cuda")
        bar = tqdm(total=self.total_steps, initial=start, disable=self.quiet or fabric.global_rank != 0,
                   desc=f"train {self.model_cfg.model}", dynamic_ncols=True)
        history: list[dict[str, float]] = []
        samples: list[Path] = []
        t0 = time.perf_counter()
        t_last = t0
        step = start
        images_per_rank_step = self.cfg.batch_size * fabric.world_size
        last_ckpt = self.ckpt_dir / "last.ckpt"
        try:
            for batch in loader:
                lrs = {"lr_g": self.opt_G.param_groups[0]["lr"]}
                if self.opt_D is not None:
                    lrs["lr_d"] = self.opt_D.param_groups[0]["lr"]
                if self.c_trainable:
                    lrs["lr_c"] = self.opt_C.param_groups[0]["lr"]
                vals = self._step(fabric, step, batch)
                step += 1
                now = time.perf_counter()
                ips = images_per_rank_step / max(now - t_last, 1e-9)
                t_last = now
                row: dict[str, Any] = {"step": step, "epoch": step * images_per_rank_step / len(self.train_data),
                                       "time": now - t0, "images_per_s": ips,
                                       **lrs, **vals}
                history.append(vals)
                if (self.cfg.sample_every and step % self.cfg.sample_every == 0) or step == self.total_steps:
                    mon, path = self._monitor(fabric, step)
                    row.update(mon)
                    if path is not None:
                        samples.append(path)
                if log is not None:
                    log.write(row)
                if tb is not None:
                    for k, v in row.items():
                        if k not in ("step", "time"):
                            tb.add_scalar(k, v, step)
                if step % self.cfg.checkpoint_every == 0 or step == self.total_steps:
                    last_ckpt = self._save_checkpoint(fabric, step)
                post = {k: f"{vals[k]:.3f}" for k in ("g_total", "d_total", "c_total", "g_cond") if k in vals}
                post["img/s"] = f"{ips:.1f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
        finally:
            bar.close()
            if log is not None:
                log.close()
            if tb is not None:
                tb.close()
        seconds = time.perf_counter() - t0
        k = max(1, len(history) // 10)
        mean = lambda rows: {c: float(np.mean([r[c] for r in rows])) for c in rows[0]} if rows else {}  # noqa
        result = TrainResult(run_dir=self.run_dir, checkpoint=last_ckpt, steps=step, seconds=seconds,
                             images_per_second=len(history) * images_per_rank_step / max(seconds, 1e-9),
                             first_losses=mean(history[:k]), last_losses=mean(history[-k:]), samples=samples)
        if fabric.global_rank == 0:
            write_json(self.run_dir / "summary.json", result.to_dict())
        return result


def train(tiles: str | os.PathLike[str], run_dir: str | os.PathLike[str], train_config: TrainConfig | None = None,
          model_config: ModelConfig | None = None, loss_config: LossConfig | None = None, resume: bool = False,
          quiet: bool = True, echo: Callable[[str], None] | None = None,
          stop_after: int | None = None) -> TrainResult:
    """Train (or resume) a generator on a tile set; see :class:`Trainer`.

    Example:
        >>> cfg, over = preset_configs("cpu-small", model="csebgan", steps=100)  # doctest: +SKIP
        >>> train("TILES", "RUN", cfg, ModelConfig.from_dict(over))               # doctest: +SKIP
    """
    return Trainer(tiles, run_dir, train_config, model_config, loss_config, resume, quiet, echo).fit(stop_after)


__all__ = ["TrainConfig", "TRAIN_PRESETS", "preset_configs", "Trainer", "TrainResult", "TrainingDiverged",
           "train", "load_checkpoint", "find_checkpoint", "read_log", "lr_factor", "refresh_batchnorm",
           "update_ema", "save_grid"]
