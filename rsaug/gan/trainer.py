"""Tripartite GAN training (generator, discriminator, conductor) with Lightning Fabric.

One trainer covers CSEBGAN, the baselines (``spade``, ``vspade``, ``pix2pixhd``, ``clade``) and the paper's
ablations. A step is:

1. **Generator**: ``fake, kl = G(labels, noise, real)``; loss = ``lambda_gan`` * hinge(D(fake)) +
   ``lambda_fm`` * feature matching + ``lambda_vgg`` * VGG perceptual + ``lambda_cond`` * L_c^fake (the
   conductor's cross-entropy on the fake, back-propagated into G) + ``lambda_kl`` * KL (VSPADE) +
   ``lambda_ds`` * diversity-sensitive loss (when enabled). The discriminator and conductor parameters do not
   receive gradients in this step.
2. **Discriminator**: hinge loss on the real image and the (detached) fake of step 1.
3. **Conductor**: ``L_c^real + L_c^fake`` on the real image and the detached fake (the ``no-real`` conductor
   mode drops the real term; a frozen conductor is not updated).

The three losses are computed by :mod:`rsaug.gan.objectives`; :meth:`Trainer._step` only orchestrates
(zero_grad, loss, backward, optimiser step, EMA). With ``TrainConfig.diffaug`` (off by default) the pairs the
discriminator sees in steps 1 and 2 are transformed by DiffAugment (:mod:`rsaug.gan.augment`): one draw for
step 1 and one for step 2, each applied alike to the real image, the fake and the label map.

With ``TrainConfig.feature_d = "vgg"`` (off by default) a pretrained-feature discriminator FD
(:mod:`rsaug.gan.feature_discriminator`) joins: step 1 adds ``feature_d_weight`` * hinge(FD(fake)) to the
generator's loss, and after step 2 FD's heads take their own hinge step (Adam with D's learning rate and
schedule, its own optimiser ``opt_FD``), on the same (augmented) pairs D sees. Its heads, mixing buffers and
optimiser are checkpointed (``FD``, ``opt_FD``); its frozen VGG19 weights are not.

With ``TrainConfig.conductor_objective = "oasis"`` (default ``segmenter``) the conductor is built with ``K + 1``
outputs (the last one the class "generated") and steps 1 and 3 use the OASIS terms of
:mod:`rsaug.gan.objectives` (with DiffAugment the conductor then sees D's draws too); the log keeps the columns
``g_cond``, ``c_real``, ``c_fake``, ``c_total`` (their OASIS meaning) and adds ``val_pfake_real`` /
``val_pfake_fake`` (share of known val pixels the conductor calls generated). Every ``val_c_*`` / ``val_acc_*``
column reads the ``K`` real-class channels only (CE and argmax over them), in both modes. ``LossConfig.
lambda_labelmix`` > 0 adds OASIS's LabelMix term to the conductor's update (``c_labelmix``; coins drawn from a
CPU generator seeded by ``(seed, 9, step, rank)``).

Adam with betas (0, 0.9) and learning rates 1e-4 (G), 4e-4 (D), 1e-4 (C), decayed linearly to zero over the
second half of training. An exponential moving average of G (``G_ema``) is kept; its BatchNorm statistics are
recomputed on training batches before every checkpoint and every sample grid (as OASIS does).

Exact resume: the batch of step ``s`` is a function of ``(seed, s, rank)`` (:mod:`rsaug.gan.data`) and every
step re-seeds torch from ``(seed, s, rank)`` (:func:`rsaug.gan.training_state.seed_for`), so a run resumed from a
checkpoint repeats the uninterrupted run step for step. Checkpoints (:mod:`rsaug.gan.checkpoint`) also store
the RNG states for completeness.

A run directory holds ``config.json``, ``checkpoints/last.ckpt`` and ``checkpoints/step_XXXXXX.ckpt``,
``log.csv`` (every loss at every step, :mod:`rsaug.gan.log`), ``tb/`` (TensorBoard), ``samples/step_XXXXXX.png``
(mask | real | fakes, :mod:`rsaug.gan.preview`) and ``summary.json``. Training options, loss weights and presets
are in :mod:`rsaug.gan.config`.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rsaug import __version__
from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.core.errors import InputError, RsaugError, RunStopped, option
from rsaug.core.files import remove_temporaries, write_json
from rsaug.core.progress import SILENT, Reporter, reporter_or_silent
from rsaug.core.runtime import select_device, stop_on_signals
from rsaug.gan.augment import AugmentDraw, DiffAugment
from rsaug.gan.checkpoint import (
    CHECKPOINT_FORMAT,
    GENERATOR_KIND,
    checkpoint_state,
    find_checkpoint,
    load_checkpoint,
    load_state_dict_file,
    save_checkpoint,
)
from rsaug.gan.config import LossConfig, ModelConfig, TrainConfig
from rsaug.gan.data import StepSampler, TileCrops
from rsaug.gan.feature_discriminator import build_feature_discriminator, check_feature_discriminator
from rsaug.gan.log import CsvLog
from rsaug.gan.losses import PerceptualLoss
from rsaug.gan.models import build_models
from rsaug.gan.networks.conductor import segmenter_state
from rsaug.gan.networks.generator import to_model_labels
from rsaug.gan.objectives import (
    TrainBatch,
    conductor_ce,
    conductor_objective,
    discriminator_objective,
    feature_discriminator_objective,
    generator_objective,
    labelmix_coins,
)
from rsaug.gan.preview import local_std, save_grid
from rsaug.gan.training_state import (
    lr_factor,
    refresh_batchnorm,
    rng_state,
    seed_for,
    set_requires_grad,
    set_rng_state,
    update_ema,
)
from rsaug.io.normalization import Normalization, compute_normalization
from rsaug.io.tileset import TileSet


class TrainingDiverged(RsaugError, RuntimeError):
    """A loss became NaN or infinite; the run stopped and the last good checkpoint was kept.

    A one-line :class:`rsaug.core.errors.RsaugError` (exit status 1 in the CLI); still a ``RuntimeError`` for
    code written against earlier versions.
    """


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
        reporter: Progress bars and status lines (``None``: silent).

    Raises:
        InputError: Missing/invalid tile set, empty split, mask values outside the scheme, class scheme
            different from the resumed checkpoint's, a run directory that already holds checkpoints...
    """

    def __init__(
        self,
        tiles: str | os.PathLike[str],
        run_dir: str | os.PathLike[str],
        train_config: TrainConfig | None = None,
        model_config: ModelConfig | None = None,
        loss_config: LossConfig | None = None,
        resume: bool = False,
        reporter: Reporter | None = None,
    ) -> None:
        self.run_dir = Path(run_dir)
        self.reporter = reporter_or_silent(reporter)
        self.tiles = TileSet.open(tiles)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.resume_state: dict[str, Any] | None = None
        self._bn_refreshed_at: int | None = None  # step whose G_ema BatchNorm statistics are current
        if resume:
            ckpt_path = find_checkpoint(self.run_dir)
            state = load_checkpoint(ckpt_path)
            if state.get("kind") == GENERATOR_KIND or "opt_G" not in state:
                raise InputError(
                    ckpt_path,
                    "holds a generator only (an export: no discriminator, conductor or optimiser states); "
                    "training cannot resume from it",
                )
            ck_scheme = ClassScheme.from_dict(state["scheme"])
            if not ck_scheme.same_classes(self.tiles.scheme) or ck_scheme.name != self.tiles.scheme.name:
                raise InputError(
                    self.tiles.root,
                    f"class scheme {self.tiles.scheme.name!r} "
                    f"({self.tiles.scheme.num_classes} classes) differs from the checkpoint's "
                    f"{ck_scheme.name!r} ({ck_scheme.num_classes} classes) in {ckpt_path}",
                )
            old = TrainConfig.from_dict(state["train_config"])
            if train_config is not None:  # the machine may differ on resume
                for name in ("device", "workers", "precision", "devices", "num_nodes", "strategy"):
                    setattr(old, name, getattr(train_config, name))
            self.cfg = old
            self.model_cfg = ModelConfig.from_dict(state["model_config"])
            self.loss_cfg = LossConfig.from_dict(state["loss_config"])
            self.normalization = Normalization.from_dict(state["normalization"])
            if self.tiles.bands != self.model_cfg.out_bands:
                raise InputError(
                    self.tiles.root, f"tile set has {self.tiles.bands} bands, the checkpoint {self.model_cfg.out_bands}"
                )
            self.resume_state = state
            self.resume_path = ckpt_path
        else:
            if self.ckpt_dir.is_dir() and any(self.ckpt_dir.glob("*.ckpt")):
                raise InputError(
                    self.run_dir,
                    f"run directory already holds checkpoints; use {option('resume')} "
                    f"to continue it or choose another {option('run_dir')}",
                )
            self.cfg = train_config or TrainConfig()
            self.cfg.validate()
            mc = model_config or ModelConfig()
            self.normalization = compute_normalization(self.tiles, "train", self.cfg.seed)
            self.model_cfg = ModelConfig.from_dict(
                {
                    **mc.to_dict(),
                    "num_classes": self.tiles.scheme.num_classes,
                    "out_bands": self.tiles.bands,
                    "crop_size": self.cfg.crop_size,
                    "band_low": self.normalization.low,
                    "band_high": self.normalization.high,
                }
            )
            self.loss_cfg = loss_config or LossConfig()
        # the discriminator's DiffAugment (None: off); also checks a stored config's policy on resume
        self.diffaug = DiffAugment.from_options(self.cfg.diffaug, self.cfg.diffaug_p)
        # the feature discriminator fits the bands, and its weights are installed, before anything is written
        check_feature_discriminator(self.cfg.feature_d, self.model_cfg.out_bands, self.tiles.root)
        if self.cfg.crop_size % self.model_cfg.size_multiple:
            raise InputError(
                None,
                f"crop size {self.cfg.crop_size} is not a multiple of "
                f"{self.model_cfg.size_multiple} (required by the {self.model_cfg.model} "
                f"generator with this config)",
            )
        if self.loss_cfg.lambda_ds > 0 and not self.model_cfg.has_noise:
            raise InputError(
                None, f"the diversity-sensitive loss needs a generator with noise; {self.model_cfg.model} has none"
            )
        self.oasis = self.cfg.conductor_objective == "oasis"
        if self.oasis and self.loss_cfg.lambda_cond <= 0:
            raise InputError(
                None,
                f"{option('conductor_objective')} oasis needs {option('lambda_cond')} > 0 (it weights the conductor's "
                "own update and its signal to the generator)",
            )
        if self.loss_cfg.lambda_labelmix > 0 and not self.oasis:
            raise InputError(
                None, f"{option('lambda_labelmix')} regularises the {option('conductor_objective')} oasis conductor"
            )
        self.scheme = self.tiles.scheme
        self.K = self.scheme.num_classes
        # data (validates masks and split sizes before anything is written)
        self.train_data = TileCrops(self.tiles, "train", self.cfg.crop_size, self.normalization, self.cfg.seed)
        if len(self.tiles.split("val")):
            self.val_data = TileCrops(
                self.tiles, "val", self.cfg.crop_size, self.normalization, self.cfg.seed, augment=False
            )
        else:
            self.reporter.say("note: the tile set has no val split; monitoring uses centre crops of train tiles")
            self.val_data = TileCrops(
                self.tiles, "train", self.cfg.crop_size, self.normalization, self.cfg.seed, augment=False
            )
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
        devices: list[int] | int | str
        if dev == "auto":
            accelerator, devices = ("cuda" if torch.cuda.is_available() else "cpu"), self.cfg.devices
        else:
            d = select_device(dev)
            accelerator = d.type
            devices = [d.index] if d.type == "cuda" and d.index is not None else self.cfg.devices
        precision = self.cfg.precision
        if accelerator == "cpu" and precision not in ("32-true", "32"):
            raise InputError(None, f"precision {precision} needs CUDA; use 32-true on the CPU")
        return L.Fabric(
            accelerator=accelerator,
            devices=devices,
            num_nodes=self.cfg.num_nodes,
            strategy=self.cfg.strategy,
            precision=precision,
        )

    def _build(self, fabric: Any) -> None:
        sync_bn = fabric.world_size > 1 and fabric.device.type == "cuda"  # SyncBatchNorm is CUDA-only
        if sync_bn and self.model_cfg.fused_modulation:
            # fused statistics are per device; plain BatchNorm2d converts to SyncBatchNorm
            self.model_cfg.fused_modulation = False
            self.reporter.say("note: multi-process training uses unfused modulation (synchronised BatchNorm)")
        torch.manual_seed(self.cfg.seed)
        models = build_models(
            self.model_cfg,
            discriminator=self.cfg.discriminator,
            conductor=self.cfg.conductor != "none",
            conductor_fake_class=self.oasis,
        )
        self.G, self.D, self.C = models.G, models.D, models.C
        if sync_bn:
            self.G = nn.SyncBatchNorm.convert_sync_batchnorm(self.G)
            if self.C is not None:
                self.C = nn.SyncBatchNorm.convert_sync_batchnorm(self.C)
        self.G_ema = copy.deepcopy(self.G)
        set_requires_grad(self.G_ema, False)
        self.G_ema.eval()
        betas = (self.cfg.beta1, self.cfg.beta2)
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=self.cfg.lr_g, betas=betas)
        self.opt_D = (
            torch.optim.Adam(self.D.parameters(), lr=self.cfg.lr_d, betas=betas) if self.D is not None else None
        )
        self.c_trainable = self.C is not None and self.cfg.conductor in ("joint", "no-real")
        self.opt_C = (
            torch.optim.Adam(self.C.parameters(), lr=self.cfg.lr_c, betas=betas)
            if self.C is not None and self.c_trainable
            else None
        )
        lam = lambda s: lr_factor(s, self.total_steps, self.cfg.decay_start)
        self.scheds = {"G": torch.optim.lr_scheduler.LambdaLR(self.opt_G, lam)}
        if self.opt_D is not None:
            self.scheds["D"] = torch.optim.lr_scheduler.LambdaLR(self.opt_D, lam)
        if self.opt_C is not None:  # set iff c_trainable
            self.scheds["C"] = torch.optim.lr_scheduler.LambdaLR(self.opt_C, lam)
        self.vgg = None
        if self.loss_cfg.lambda_vgg > 0:
            self.vgg = PerceptualLoss(feature_scale=self.loss_cfg.vgg_feature_scale)
            self.vgg.to(fabric.device)
        # the feature discriminator draws from its own seeds: G, D, C and every later draw are the same with
        # and without it
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed_for(self.cfg.seed, 7))
            self.FD = build_feature_discriminator(self.cfg.feature_d, self.model_cfg, seed_for(self.cfg.seed, 8))
        self.opt_FD = None
        if self.FD is not None:
            self.opt_FD = torch.optim.Adam(self.FD.parameters(), lr=self.cfg.lr_d, betas=betas)
            self.scheds["FD"] = torch.optim.lr_scheduler.LambdaLR(self.opt_FD, lam)

    def _setup_fabric_objects(self, fabric: Any) -> None:
        self.Gw, self.opt_Gw = fabric.setup(self.G, self.opt_G)
        self.Dw = self.opt_Dw = None
        if self.D is not None:
            self.Dw, self.opt_Dw = fabric.setup(self.D, self.opt_D)
        self.FDw = self.opt_FDw = None
        if self.FD is not None:
            self.FDw, self.opt_FDw = fabric.setup(self.FD, self.opt_FD)
        self.Cw = self.opt_Cw = None
        if self.C is not None:
            if self.c_trainable:
                self.Cw, self.opt_Cw = fabric.setup(self.C, self.opt_C)
            else:
                self.C.to(fabric.device)
                self.Cw = self.C
        self.G_ema.to(fabric.device)

    def _state(self, step: int) -> dict[str, Any]:
        return checkpoint_state(
            step=step,
            total_steps=self.total_steps,
            train_config=self.cfg,
            model_config=self.model_cfg,
            loss_config=self.loss_cfg,
            scheme=self.scheme,
            normalization=self.normalization,
            tiles=self.tiles,
            G=self.G,
            G_ema=self.G_ema,
            D=self.D,
            C=self.C,
            opt_G=self.opt_G,
            opt_D=self.opt_D,
            opt_C=self.opt_C if self.c_trainable else None,
            schedulers=self.scheds,
            rng=rng_state(),
            log_columns=self.columns,
            grad_scaler=self._scaler(),
            FD=self.FD,
            opt_FD=self.opt_FD,
        )

    def _scaler(self) -> Any:
        fabric = getattr(self, "_fabric_obj", None)
        return getattr(getattr(getattr(fabric, "strategy", None), "precision", None), "scaler", None)

    def _load_state(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.G_ema.load_state_dict(state["G_ema"])
        if state.get("G_ema_resume_buffers") is not None:  # stopped between scheduled checkpoints
            with torch.no_grad():
                for k, b in self.G_ema.named_buffers():
                    b.copy_(state["G_ema_resume_buffers"][k])
        if self.D is not None:
            self.D.load_state_dict(state["D"])
        if self.C is not None:
            self.C.load_state_dict(state["C"])
        self.opt_G.load_state_dict(state["opt_G"])
        if self.opt_D is not None:
            self.opt_D.load_state_dict(state["opt_D"])
        if self.opt_C is not None:  # set iff c_trainable
            self.opt_C.load_state_dict(state["opt_C"])
        if self.FD is not None:
            assert self.opt_FD is not None  # built together with FD
            self.FD.load_state_dict(state["FD"])
            self.opt_FD.load_state_dict(state["opt_FD"])
        for k, s in self.scheds.items():
            s.load_state_dict(state["schedulers"][k])
        set_rng_state(state["rng"])

    @staticmethod
    def _close_outputs(bar: Any, log: CsvLog | None, tb: Any) -> None:
        bar.close()
        if log is not None:
            log.close()
        if tb is not None:
            tb.close()

    def _save_checkpoint(self, fabric: Any, step: int, off_schedule: bool = False) -> Path:
        """Write the checkpoint of ``step``; its ``G_ema`` has freshly re-estimated BatchNorm statistics.

        ``off_schedule`` (a stop between scheduled checkpoints): the re-estimation also moves ``G_ema``'s
        spectral-norm vectors, which an uninterrupted run would not do at this step, so the live buffers are
        stored as well (``G_ema_resume_buffers``), restored on resume, and the run continues bit-identically.
        """
        live = {k: b.detach().clone() for k, b in self.G_ema.named_buffers()} if off_schedule else None
        self._refresh_ema_bn(fabric, step)
        last = self.ckpt_dir / "last.ckpt"
        if fabric.global_rank == 0:
            state = self._state(step)
            if live is not None:
                state["G_ema_resume_buffers"] = live
            save_checkpoint(state, self.ckpt_dir, step, self.cfg.keep_checkpoints)
        fabric.barrier()
        if live is not None:
            with torch.no_grad():
                for k, b in self.G_ema.named_buffers():
                    b.copy_(live[k])
            self._bn_refreshed_at = None
        return last

    # ------------------------------------------------------------------ conductor pre-training
    def _pretrain_conductor(self, fabric: Any) -> None:
        src = self.cfg.frozen_conductor
        assert self.C is not None
        if src != "pretrain":
            p = Path(str(src))
            # an rsaug checkpoint's conductor, or a plain state dict; read without executing anything
            sd: Any = load_state_dict_file(p)
            if isinstance(sd, dict) and sd.get("format") == CHECKPOINT_FORMAT:
                stored = sd.get("train_config")
                oasis = isinstance(stored, dict) and stored.get("conductor_objective") == "oasis"
                sd = sd.get("C")
                # an OASIS conductor (K + 1 outputs) serves as a K-class segmenter; the row is dropped only for a
                # checkpoint that says so: K + 1 outputs of any other source are the classes of another scheme
                if oasis and isinstance(sd, dict):
                    head = sd.get("head.weight")
                    if isinstance(head, torch.Tensor) and head.shape[0] != self.K + 1:
                        raise InputError(
                            p,
                            f"conductor weights do not fit this model config: the OASIS conductor has "
                            f"{head.shape[0] - 1} real classes, the tile set {self.K}",
                        )
                    sd = segmenter_state(sd, self.K)
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
            loader = torch.utils.data.DataLoader(
                data,
                batch_size=self.cfg.batch_size,
                sampler=StepSampler(self.cfg.batch_size, 0, n),
                num_workers=self.cfg.workers,
            )
            with self.reporter.bar(total=n, desc="pretraining conductor", leave=False) as bar:
                for i, batch in enumerate(loader):
                    torch.manual_seed(seed_for(self.cfg.seed, 3, i))
                    img, mask = batch["image"].to(fabric.device), batch["mask"].to(fabric.device)
                    loss = conductor_ce(C(img), mask, self.loss_cfg.cond_class_balanced)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    bar.set_postfix(ce=f"{loss.item():.3f}", refresh=False)
                    bar.update(1)
            self.reporter.say(f"conductor pre-trained for {n} steps (last CE {loss.item():.3f})")
        set_requires_grad(self.C, False)
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
        if self.FD is not None:
            g += ["g_fd"]
        if self.vgg is not None:
            g += ["g_vgg"]
        if self.loss_cfg.lambda_moments > 0:
            g += ["g_moments"]
        if self.C is not None:
            g += ["g_cond"]
        if self.model_cfg.model == "vspade":
            g += ["g_kl"]
        if self.loss_cfg.lambda_ds > 0:
            g += ["g_ds"]
        cols += [*g, "g_total"]
        if self.D is not None:
            cols += ["d_real", "d_fake", "d_total"]
        if self.FD is not None:
            cols += ["fd_real", "fd_fake", "fd_total"]
        if self.c_trainable:
            if self.cfg.conductor == "joint":
                cols += ["c_real"]
            cols += ["c_fake"]
            if self.loss_cfg.lambda_labelmix > 0:
                cols += ["c_labelmix"]
            cols += ["c_total"]
        if self.C is not None:
            cols += ["val_c_real", "val_acc_real", "val_c_fake", "val_acc_fake"]
            if self.oasis:
                cols += ["val_pfake_real", "val_pfake_fake"]
        cols += ["val_l1_ema", "val_texture_real", "val_texture_fake"]
        if self.model_cfg.has_noise and self.cfg.sample_fakes > 1:
            cols += ["val_sample_diff"]
        if self.model_cfg.model == "csebgan":
            cols += ["embed_scale", "embed_shift"]
        return cols

    # ------------------------------------------------------------------ one step
    def _check(self, losses: dict[str, torch.Tensor], step: int) -> None:
        for name, v in losses.items():
            if not torch.isfinite(v.detach()).all():
                last = self.ckpt_dir / "last.ckpt"
                kept = f"last good checkpoint kept: {last}" if last.is_file() else "no checkpoint written yet"
                raise TrainingDiverged(
                    None,
                    f"non-finite loss {name} = {v.item()} at step {step + 1}; "
                    f"training stopped ({kept}). Try a lower learning rate or 32-bit "
                    "precision.",
                )

    def _step(self, fabric: Any, step: int, crops: dict[str, torch.Tensor]) -> dict[str, float]:
        """One optimisation step of G, then D, then C (the losses are in :mod:`rsaug.gan.objectives`).

        Every random draw of the step comes from generators seeded by ``(seed, step, rank)``: torch's global
        one (re-seeded here), the CPU generator of the noise and, with DiffAugment, the CPU generator of the
        augmentation draws.
        """
        cfg = self.cfg
        torch.manual_seed(seed_for(cfg.seed, 1, step, fabric.global_rank))
        gen = torch.Generator(device="cpu").manual_seed(seed_for(cfg.seed, 2, step, fabric.global_rank))
        batch = TrainBatch.from_crops(crops, self.K, fabric.device)
        B = batch.image.shape[0]
        single = fabric.world_size == 1
        aug_g, aug_d = self._augment_draws(step, fabric, batch)

        # ---- generator (D and C frozen: no gradients reach them)
        if single:
            set_requires_grad(self.D, False)
            set_requires_grad(self.FD, False)
            if self.c_trainable:
                set_requires_grad(self.C, False)
        noise = self._noise(B, gen, fabric.device)
        g_total, out, fake = generator_objective(
            self.Gw,
            self.Dw,
            self.Cw,
            self.vgg,
            batch,
            noise,
            self.model_cfg,
            self.loss_cfg,
            draw_noise=lambda: self._noise(B, gen, fabric.device),
            augment=aug_g,
            feature_d=self.FDw,
            feature_d_weight=cfg.feature_d_weight,
            oasis=self.oasis,
        )
        self._check(out, step)
        self.opt_Gw.zero_grad(set_to_none=True)
        fabric.backward(g_total)
        self.opt_Gw.step()
        update_ema(self.G_ema, self.G, min(cfg.ema_decay, (1 + step) / (10 + step)))
        fake = fake.detach()

        # ---- discriminator
        if self.Dw is not None:
            if single:
                set_requires_grad(self.D, True)
            d_total, d = discriminator_objective(self.Dw, batch, fake, augment=aug_d)
            self._check(d, step)
            assert self.opt_Dw is not None  # set up together with Dw
            self.opt_Dw.zero_grad(set_to_none=True)
            fabric.backward(d_total)
            self.opt_Dw.step()
            out.update(d)

        # ---- feature discriminator (its heads; the VGG features stay frozen)
        if self.FDw is not None:
            if single:
                set_requires_grad(self.FD, True)
            fd_loss, fd = feature_discriminator_objective(self.FDw, batch, fake, cfg.feature_d_weight, augment=aug_d)
            self._check(fd, step)
            assert self.opt_FDw is not None  # set up together with FDw
            self.opt_FDw.zero_grad(set_to_none=True)
            fabric.backward(fd_loss)
            self.opt_FDw.step()
            out.update(fd)

        # ---- conductor
        if self.c_trainable:
            if single:
                set_requires_grad(self.C, True)
            assert self.Cw is not None and self.opt_Cw is not None  # set up when c_trainable
            c_loss, c = conductor_objective(
                self.Cw,
                batch,
                fake,
                self.loss_cfg,
                use_real=cfg.conductor == "joint",
                oasis=self.oasis,
                augment=aug_d if self.oasis else None,
                labelmix=self._labelmix_coins(step, fabric, B),
            )
            self._check(c, step)
            self.opt_Cw.zero_grad(set_to_none=True)
            fabric.backward(c_loss)
            self.opt_Cw.step()
            out.update(c)

        for s in self.scheds.values():
            s.step()
        return {k: float(v.detach().float().item()) for k, v in out.items()}

    def _augment_draws(
        self, step: int, fabric: Any, batch: TrainBatch
    ) -> tuple[AugmentDraw | None, AugmentDraw | None]:
        """DiffAugment draws of the generator's and the discriminator's update of ``step`` (``None`` when off),
        from a CPU generator seeded by ``(seed, 6, step, rank)``."""
        if self.diffaug is None:
            return None, None
        gen = torch.Generator(device="cpu").manual_seed(seed_for(self.cfg.seed, 6, step, fabric.global_rank))
        b, _, h, w = batch.image.shape
        return self.diffaug.sample(b, h, w, gen, fabric.device), self.diffaug.sample(b, h, w, gen, fabric.device)

    def _labelmix_coins(self, step: int, fabric: Any, batch: int) -> torch.Tensor | None:
        """LabelMix coins of the conductor's update of ``step`` (``None`` when off), from a CPU generator seeded by
        ``(seed, 9, step, rank)``."""
        if self.loss_cfg.lambda_labelmix <= 0:
            return None
        gen = torch.Generator(device="cpu").manual_seed(seed_for(self.cfg.seed, 9, step, fabric.global_rank))
        return labelmix_coins(batch, self.K, gen).to(fabric.device)

    def _noise(self, batch: int, gen: torch.Generator, device: torch.device) -> Any:
        noise = self.G.sample_noise(batch, generator=gen, device="cpu")
        return None if noise is None else noise.to(device)

    # ------------------------------------------------------------------ monitoring
    def _bn_batches(self, fabric: Any, step: int) -> list[tuple[torch.Tensor, Any]]:
        out = []
        gen = torch.Generator().manual_seed(seed_for(self.cfg.seed, 4, step))
        B = self.cfg.batch_size
        for b in range(self.cfg.ema_bn_batches):
            items = [self.bn_data[(step * self.cfg.ema_bn_batches + b) * B + i] for i in range(B)]
            mask = torch.stack([it["mask"] for it in items]).to(fabric.device)
            out.append((to_model_labels(mask, self.K), self._noise(B, gen, fabric.device)))
        return out

    def _refresh_ema_bn(self, fabric: Any, step: int) -> None:
        if self._bn_refreshed_at == step:
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
        labels = to_model_labels(mask, self.K)
        rows = np.linspace(0, n - 1, min(self.cfg.sample_rows, n)).round().astype(int).tolist()
        gen = torch.Generator().manual_seed(seed_for(self.cfg.seed, 5))
        fake0 = self.G_ema(labels, self._noise(n, gen, fabric.device), None)[0].float()
        fakes = [fake0[rows]]
        for _ in range(self.cfg.sample_fakes - 1):
            fakes.append(self.G_ema(labels[rows], self._noise(len(rows), gen, fabric.device), None)[0].float())
        vals: dict[str, float] = {
            "val_l1_ema": float((fake0 - image).abs().mean()),
            # where diversity and texture are lost (issue: flat regions, indistinguishable samples)
            "val_texture_real": local_std(image),
            "val_texture_fake": local_std(fake0),
        }
        if len(fakes) > 1 and self.model_cfg.has_noise:
            vals["val_sample_diff"] = float((fakes[1] - fakes[0]).abs().mean())
        emb = getattr(self.G_ema, "embeddings", None)
        if emb is not None:
            vals["embed_scale"] = float(torch.exp(0.5 * emb.log_scale).mean())
            vals["embed_shift"] = float(emb.shift.abs().mean())
        if self.C is not None:
            was = self.C.training
            self.C.eval()
            known = mask != IGNORE
            for tag, x in (("real", image), ("fake", fake0)):
                full = self.C(x).float()
                logits = full[:, : self.K]  # the K real classes (drops the OASIS fake channel; else all of it)
                vals[f"val_c_{tag}"] = float(conductor_ce(logits, mask))
                acc = (logits.argmax(1) == mask)[known].float().mean() if known.any() else torch.tensor(0.0)
                vals[f"val_acc_{tag}"] = float(acc)
                if self.oasis:
                    is_fake = (full.argmax(1) == self.K)[known].float().mean() if known.any() else torch.tensor(0.0)
                    vals[f"val_pfake_{tag}"] = float(is_fake)
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
                raise InputError(
                    self.resume_path,
                    "cannot resume: the checkpoint's networks or optimiser "
                    f"states do not fit this rsaug version ({first[:200]})",
                ) from None
            if self.cfg.conductor == "frozen" and self.C is not None:
                set_requires_grad(self.C, False)
                self.C.eval()
            self.reporter.say(f"resuming {self.run_dir} at step {start} of {self.total_steps}")
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
        if self.FD is not None:
            self.FD.train()
        if self.c_trainable:
            assert self.C is not None  # c_trainable implies a conductor
            self.C.train()

        if fabric.global_rank == 0:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            remove_temporaries(self.run_dir)
            write_json(
                self.run_dir / "config.json",
                {
                    "rsaug_version": __version__,
                    "tiles": str(self.tiles.root.resolve()),
                    "train": self.cfg.to_dict(),
                    "model": self.model_cfg.to_dict(),
                    "loss": self.loss_cfg.to_dict(),
                    "scheme": self.scheme.to_dict(),
                    "normalization": self.normalization.to_dict(),
                    "total_steps": self.total_steps,
                    "world_size": fabric.world_size,
                },
            )
        log = (
            CsvLog(self.run_dir / "log.csv", self.columns, start if self.resume_state else None)
            if fabric.global_rank == 0
            else None
        )
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
        loader = torch.utils.data.DataLoader(
            self.train_data,
            batch_size=self.cfg.batch_size,
            sampler=sampler,
            num_workers=self.cfg.workers,
            persistent_workers=False,
            pin_memory=fabric.device.type == "cuda",
        )
        reporter = self.reporter if fabric.global_rank == 0 else SILENT
        bar = reporter.bar(
            total=self.total_steps, desc=f"train {self.model_cfg.model}", initial=start, dynamic_ncols=True
        )
        history: list[dict[str, float]] = []
        samples: list[Path] = []
        t0 = time.perf_counter()
        t_last = t0
        step = start
        images_per_rank_step = self.cfg.batch_size * fabric.world_size
        last_ckpt = self.ckpt_dir / "last.ckpt"
        saved_step = start
        with contextlib.ExitStack() as stack:
            stop = stack.enter_context(stop_on_signals())
            stack.callback(self._close_outputs, bar, log, tb)
            for batch in loader:
                lrs = {"lr_g": self.opt_G.param_groups[0]["lr"]}
                if self.opt_D is not None:
                    lrs["lr_d"] = self.opt_D.param_groups[0]["lr"]
                if self.opt_C is not None:  # set iff c_trainable
                    lrs["lr_c"] = self.opt_C.param_groups[0]["lr"]
                vals = self._step(fabric, step, batch)
                step += 1
                now = time.perf_counter()
                ips = images_per_rank_step / max(now - t_last, 1e-9)
                t_last = now
                row: dict[str, Any] = {
                    "step": step,
                    "epoch": step * images_per_rank_step / len(self.train_data),
                    "time": now - t0,
                    "images_per_s": ips,
                    **lrs,
                    **vals,
                }
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
                    saved_step = step
                post: dict[str, str] = {
                    k: f"{vals[k]:.3f}" for k in ("g_total", "d_total", "c_total", "g_cond") if k in vals
                }
                post["img/s"] = f"{ips:.1f}"
                bar.set_postfix(post, refresh=False)
                bar.update(1)
                if stop.requested and step < end:
                    if saved_step != step:
                        last_ckpt = self._save_checkpoint(fabric, step, off_schedule=True)
                    raise RunStopped(
                        self.run_dir,
                        f"stopped by {stop.name} at step {step} of {self.total_steps}; the checkpoint of this "
                        f"step is saved, continue with {option('resume')}",
                        exit_code=stop.exit_code,
                    )
        seconds = time.perf_counter() - t0
        tenth = max(1, len(history) // 10)
        mean = lambda rows: {c: float(np.mean([r[c] for r in rows])) for c in rows[0]} if rows else {}
        result = TrainResult(
            run_dir=self.run_dir,
            checkpoint=last_ckpt,
            steps=step,
            seconds=seconds,
            images_per_second=len(history) * images_per_rank_step / max(seconds, 1e-9),
            first_losses=mean(history[:tenth]),
            last_losses=mean(history[-tenth:]),
            samples=samples,
        )
        if fabric.global_rank == 0:
            write_json(self.run_dir / "summary.json", result.to_dict())
        return result


def train(
    tiles: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    train_config: TrainConfig | None = None,
    model_config: ModelConfig | None = None,
    loss_config: LossConfig | None = None,
    resume: bool = False,
    reporter: Reporter | None = None,
    stop_after: int | None = None,
) -> TrainResult:
    """Train (or resume) a generator on a tile set; see :class:`Trainer`.

    Example:
        >>> from rsaug.gan.config import preset_configs
        >>> cfg, over = preset_configs("cpu-small", model="csebgan", steps=100)  # doctest: +SKIP
        >>> train("TILES", "RUN", cfg, ModelConfig.from_dict(over))               # doctest: +SKIP
    """
    return Trainer(tiles, run_dir, train_config, model_config, loss_config, resume, reporter).fit(stop_after)


__all__ = ["TrainResult", "Trainer", "TrainingDiverged", "train"]
