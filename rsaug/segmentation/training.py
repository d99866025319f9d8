"""Training a TorchGeo U-Net (``SemanticSegmentationTask``, random init) and using the trained network."""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError, RunStopped, option
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import current_stop, quiet, seed_everything, select_device
from rsaug.io.tileset import TileSet
from rsaug.segmentation.config import MixRecipe, SegmenterConfig, converged
from rsaug.segmentation.data import (
    PlanDataset,
    SegmenterNormalization,
    TileArrays,
    classic_augmentation,
    load_tiles,
    make_plan,
    open_tileset,
)
from rsaug.segmentation.scores import confusion_matrix, scores


def build_task(num_classes: int, in_channels: int, cfg: SegmenterConfig) -> Any:
    """TorchGeo's SemanticSegmentationTask U-Net with our optimiser schedule (random init, no downloads).

    TorchGeo builds ``segmentation_models_pytorch.Unet`` with the library's default decoder; with
    ``cfg.decoder_channels`` set, the task builds the same U-Net (same encoder, random init) with those decoder
    widths instead (TorchGeo 0.8 has no option for them).
    """
    from torchgeo.trainers import SemanticSegmentationTask

    class _Task(SemanticSegmentationTask):
        def configure_models(self) -> None:
            if cfg.decoder_channels is None:
                super().configure_models()
                return
            import segmentation_models_pytorch as smp

            self.model = smp.Unet(
                encoder_name=cfg.backbone,
                encoder_weights=None,
                in_channels=in_channels,
                classes=num_classes,
                decoder_channels=tuple(int(c) for c in cfg.decoder_channels),
            )

        def training_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> torch.Tensor:
            # TorchGeo's loss (its criterion: cross-entropy with ignore_index) without its per-step training
            # metrics: nothing reads them (logger=False) and they cost about a tenth of a CPU step
            x, y = batch["image"], batch["mask"]
            if cfg.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            logits = self(x)
            weight = batch.get("weight") if isinstance(batch, dict) else None
            if weight is None:
                loss = self.criterion(logits, y)
                self.log("train_loss", loss, batch_size=x.shape[0])
                return loss
            # per-crop loss weights (MixRecipe.weight): mean over all valid pixels of the weighted pixel losses
            pixel = nn.functional.cross_entropy(logits, y, ignore_index=IGNORE, reduction="none")
            valid = (y != IGNORE).sum().clamp(min=1)
            loss = (pixel * weight.to(pixel.dtype)[:, None, None]).sum() / valid
            self.log("train_loss", loss, batch_size=x.shape[0])
            return loss

        def configure_optimizers(self) -> Any:
            fused = True if cfg.fused_adamw else None  # None: PyTorch's default (foreach) implementation
            opt = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
            total = cfg.iterations
            warm = round(cfg.warmup_fraction * total)

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                if cfg.schedule == "constant":
                    return 1.0
                prog = (step - warm) / max(1, total - warm)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return _Task(
        model="unet",
        backbone=cfg.backbone,
        weights=None,
        in_channels=in_channels,
        num_classes=num_classes,
        ignore_index=IGNORE,
        lr=cfg.lr,
    )


def _channels_last(model: nn.Module) -> bool:
    """Whether the first 4-D weight of ``model`` is stored channels-last (the model was trained that way)."""
    for p in model.parameters():
        if p.ndim == 4:
            return bool(p.is_contiguous(memory_format=torch.channels_last) and not p.is_contiguous())
    return False


@dataclass
class TrainedSegmenter:
    """A trained U-Net with the normalisation it was trained with.

    Attributes:
        model: The segmentation network (``torch.nn.Module``, outputs K logits per pixel).
        norm: Input normalisation.
        num_classes: K.
        device: Device the model lives on.
        info: Bookkeeping of the training run (steps, draws per source, loss curve, seconds).
    """

    model: nn.Module
    norm: SegmenterNormalization
    num_classes: int
    device: torch.device
    info: dict[str, Any]

    @torch.no_grad()
    def predict_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """Class indices (B, H, W) for *normalised* input (B, C, H, W) of any size (reflect-padded to /32)."""
        self.model.eval()
        h, w = x.shape[-2:]
        ph, pw = (-h) % 32, (-w) % 32
        if ph or pw:
            x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
        x = x.to(self.device)
        if _channels_last(self.model):
            x = x.contiguous(memory_format=torch.channels_last)
        logits = self.model(x)
        return logits[..., :h, :w].argmax(1).cpu()

    def predict(self, images: np.ndarray | torch.Tensor) -> np.ndarray:
        """Class indices (B, H, W) for images (B, C, H, W) or (C, H, W) in their stored dtype/values."""
        x = torch.as_tensor(np.asarray(images))
        if x.ndim == 3:
            x = x[None]
        return self.predict_tensor(self.norm.apply(x)).numpy()

    def predict_model_range(self, images: torch.Tensor) -> torch.Tensor:
        """Class indices for generator output in the model range [-1, 1] (B, C, H, W)."""
        return self.predict_tensor(self.norm.apply_model_range(images))

    def confusion(self, tiles: TileArrays, batch_size: int = 8) -> np.ndarray:
        """Confusion matrix (K x K, int64) over every pixel of every tile; unknown pixels ignored."""
        k = self.num_classes
        cm = np.zeros((k, k), dtype=np.int64)
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, im in enumerate(tiles.images):
            groups.setdefault(im.shape, []).append(i)
        for idx in groups.values():
            for j in range(0, len(idx), batch_size):
                part = idx[j : j + batch_size]
                pred = self.predict(np.stack([tiles.images[i] for i in part]))
                ref = np.stack([tiles.masks[i] for i in part])
                cm += confusion_matrix(pred, ref, k).astype(np.int64)
        return cm


def validation_miou(
    model: nn.Module,
    *,
    norm: SegmenterNormalization,
    num_classes: int,
    val: TileArrays,
    batch_size: int = 8,
    device: torch.device | None = None,
) -> float:
    """mIoU of ``model`` on every pixel of every tile of ``val`` (:meth:`TrainedSegmenter.confusion` and
    :func:`rsaug.segmentation.scores.scores`); the train/eval mode of every submodule is restored afterwards.

    Args:
        model: The network (outputs K logits per pixel).
        norm: Its input normalisation.
        num_classes: K.
        val: Validation tiles (whole tiles, every labelled pixel counted).
        batch_size: Tiles per forward pass.
        device: Device of the model (default: that of its parameters).
    """
    dev = device if device is not None else next(model.parameters()).device
    modes = [(m, m.training) for m in model.modules()]
    try:
        cm = TrainedSegmenter(model, norm, num_classes, dev, {}).confusion(val, batch_size=batch_size)
    finally:
        for m, mode in modes:
            m.training = mode
    return float(scores(cm)["miou"])


class _StepCounter:
    """Lightning callback: counts optimizer steps, records the loss curve, drives a progress bar, and (with
    ``validate``) evaluates the validation mIoU every ``val_every`` steps and after the last step, keeping a copy
    of the best weights when ``keep_best``."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # build a real Callback subclass lazily
        from lightning.pytorch.callbacks import Callback

        class _Impl(Callback):
            def __init__(
                self,
                total: int,
                desc: str,
                reporter: Reporter,
                validate: Callable[[nn.Module], float] | None = None,
                val_every: int = 0,
                keep_best: bool = False,
            ) -> None:
                self.steps = 0
                self.total = total
                self.losses: list[float] = []
                self.bar = reporter.bar(total=total, desc=desc, leave=False, unit="it")
                self.validate = validate
                self.val_every = val_every
                self.keep_best = keep_best
                self.curve: list[list[float]] = []
                self.val_seconds = 0.0
                self.best: tuple[int, float] | None = None
                self.best_state: dict[str, torch.Tensor] | None = None

            def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, idx: int) -> None:
                self.steps += 1
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                self.losses.append(float(loss.detach()))
                self.bar.update(1)
                if self.steps % 10 == 0:
                    self.bar.set_postfix(loss=f"{np.mean(self.losses[-10:]):.3f}")
                if self.validate is not None and (self.steps % self.val_every == 0 or self.steps == self.total):
                    self._evaluate(module.model)
                stop = current_stop()
                if stop is not None and stop.requested:  # SIGINT / SIGTERM: end after this step
                    trainer.should_stop = True

            def _evaluate(self, model: nn.Module) -> None:
                t0 = time.perf_counter()
                miou = self.validate(model)  # type: ignore[misc]
                self.curve.append([self.steps, miou])
                if self.best is None or miou > self.best[1]:  # ties keep the earlier step
                    self.best = (self.steps, miou)
                    if self.keep_best:
                        self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                self.val_seconds += time.perf_counter() - t0
                self.bar.set_postfix(val_miou=f"{miou:.3f}")

            def close(self) -> None:
                self.bar.close()

        return _Impl(*args, **kwargs)


def train_segmenter(
    real: str | os.PathLike[str] | TileSet | TileArrays,
    *,
    config: SegmenterConfig | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    split: str = "train",
    extra: TileArrays | None = None,
    extra_fraction: float | None = None,
    recipe: MixRecipe | None = None,
    augment: bool = False,
    norm: SegmenterNormalization | None = None,
    num_classes: int | None = None,
    dtype: str | None = None,
    reporter: Reporter | None = None,
    desc: str = "train",
    val: TileArrays | None = None,
    val_split: str = "val",
) -> TrainedSegmenter:
    """Train TorchGeo's U-Net (``SemanticSegmentationTask``, random init) on real tiles (+ optional extra tiles).

    With ``config.val_every`` > 0 the mIoU on every pixel of every validation tile is evaluated every
    ``val_every`` steps and after the last step (the network in eval mode, its train mode restored; the
    training itself is unchanged: with ``select="last"`` the returned weights are bit-identical to a run
    without validation). With ``config.select == "best-val"`` the weights of the evaluation with the highest
    validation mIoU (the earliest on ties) are returned. Model selection uses the validation tiles only.

    Args:
        real: Real tile set (path or :class:`TileSet`; its ``split`` is used) or tiles already in memory.
        config: Training protocol (default :class:`SegmenterConfig`).
        seed: Seed of the network initialisation and of the draw sequence.
        device: ``auto``, ``cpu``, ``cuda``...
        split: Split of ``real`` to train on when it is a tile set.
        extra: Extra training tiles (e.g. synthetic), drawn alongside the real ones.
        extra_fraction: Share of draws taken from ``extra``; ``None`` = proportional to tile counts. With a
            ``recipe`` schedule other than ``constant`` it is the starting share.
        recipe: How ``extra`` is mixed in (:class:`rsaug.segmentation.config.MixRecipe`: share schedule,
            fine-tuning on real tiles, loss weight); ``None``: constant share, weight 1.
        augment: Apply :func:`classic_augmentation` to every training crop.
        norm: Input normalisation; default: fitted on the real tiles.
        num_classes: K; required when ``real`` is a :class:`TileArrays`.
        dtype: Stored image dtype (for the normalisation); read from the tile set when possible.
        reporter: Progress (a bar over the steps); ``None``: silent.
        desc: Progress-bar label.
        val: Validation tiles (real) for ``config.val_every`` > 0; default: the ``val_split`` of ``real`` when it
            is a tile set.
        val_split: Split of ``real`` used as validation tiles when ``val`` is not given.

    Returns:
        The trained network with its normalisation and a bookkeeping dictionary ``info`` (``steps``,
        ``draws`` per source, ``samples``, ``loss_first`` / ``loss_last`` (mean of 10 steps), ``seconds``).
        With validation it also holds ``val_curve`` (``[[step, mIoU], ...]``), ``best_step``,
        ``best_val_miou``, ``converged`` (:func:`rsaug.segmentation.config.converged`; ``None`` when the curve
        is too short to tell), ``select``, ``selected_step`` (the step of the returned weights),
        ``val_tiles`` and ``val_seconds`` (time spent evaluating, included in ``seconds``).

    Raises:
        InputError: For an empty training or validation set or invalid protocol values.
        RunStopped: When Lightning stopped before the last step (e.g. on SIGTERM); nothing is returned.
    """
    import lightning.pytorch as pl

    cfg = config or SegmenterConfig()
    cfg.validate()
    if isinstance(real, TileArrays):
        tiles = real
        if num_classes is None:
            raise InputError(None, "num_classes is required when training on in-memory tiles")
        dtype = dtype or real.images[0].dtype.name
    else:
        ts = open_tileset(real)
        tiles = load_tiles(ts, [split], "real")
        num_classes = num_classes or ts.scheme.num_classes
        dtype = dtype or ts.dtype
        if cfg.val_every > 0 and val is None:
            val = load_tiles(ts, [val_split], "val")
    if len(tiles) == 0:
        raise InputError(None, "no real training tiles")
    if cfg.val_every > 0 and (val is None or len(val) == 0):
        raise InputError(None, f"{option('val_every')} > 0 needs validation tiles ({option('val')})")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dev = select_device(str(device)) if not isinstance(device, torch.device) else device
    norm = norm or SegmenterNormalization.fit(tiles, dtype)

    if recipe is not None:
        recipe.validate()
    mixing = recipe is not None and not recipe.plain
    sources = [tiles]
    fractions = [1.0]
    if extra is not None and len(extra) > 0:
        if not mixing and (extra_fraction is not None and extra_fraction >= 1):
            sources, fractions = [extra], [1.0]
        else:
            f = extra_fraction if extra_fraction is not None else len(extra) / (len(extra) + len(tiles))
            sources = [tiles, extra]
            fractions = [1 - f, f]
    n_draws = cfg.iterations * cfg.batch_size
    plan = make_plan([len(s) for s in sources], fractions, n_draws, seed, recipe if len(sources) == 2 else None)
    bands = tiles.images[0].shape[0]
    loss_weights = [1.0, recipe.weight] if recipe is not None and recipe.weight != 1 and len(sources) == 2 else None
    ds = PlanDataset(
        sources, plan, cfg.crop, norm, classic_augmentation(bands) if augment else None, loss_weights=loss_weights
    )
    loader = torch.utils.data.DataLoader(
        ds,
        batch_size=cfg.batch_size,
        shuffle=False,
        drop_last=True,
        num_workers=cfg.num_workers,
        persistent_workers=False,
    )

    seed_everything(seed)  # same initialisation for a given seed in every arm
    task = build_task(num_classes, bands, cfg)
    if cfg.channels_last:
        task.model = task.model.to(memory_format=torch.channels_last)
    validate = (
        functools.partial(validation_miou, norm=norm, num_classes=num_classes, val=val, batch_size=cfg.eval_batch_size)
        if cfg.val_every > 0 and val is not None
        else None
    )
    counter = _StepCounter(
        cfg.iterations,
        desc,
        reporter_or_silent(reporter),
        validate=validate,
        val_every=cfg.val_every,
        keep_best=cfg.select == "best-val",
    )
    # no per-run "GPU available" banners or expected warnings inside the progress display
    with quiet(
        messages=(
            ".*validation_step.*",
            ".*does not have many workers.*",
            ".*number of training batches.*",
            ".*GPU available but not used.*",
            ".*LeafSpec.*",
        ),
        loggers=("lightning.pytorch",),
    ):
        trainer = pl.Trainer(
            accelerator="gpu" if dev.type == "cuda" else "cpu",
            devices=1,
            max_steps=cfg.iterations,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[counter],
            deterministic=False,
        )
        t0 = time.perf_counter()
        try:
            trainer.fit(task, train_dataloaders=loader)
        except SystemExit:  # Lightning's SIGTERMException after a SIGTERM caught by stop_on_signals
            stop = current_stop()
            if stop is None or not stop.requested:
                raise
        seconds = time.perf_counter() - t0
    counter.close()
    if int(trainer.global_step) != cfg.iterations:  # stopped by SIGINT / SIGTERM
        stop = current_stop()
        how = f" by {stop.name}" if stop is not None and stop.requested else ""
        raise RunStopped(
            None,
            f"training stopped{how} after {trainer.global_step} of {cfg.iterations} steps; the run is not recorded",
            exit_code=stop.exit_code if stop is not None and stop.requested else 1,
        )
    model = task.model
    if counter.best_state is not None:
        model.load_state_dict(counter.best_state)
    model = model.to(dev).eval()
    info: dict[str, Any] = {
        "steps": int(trainer.global_step),
        "samples": int(counter.steps * cfg.batch_size),
        "draws": {s.name: int(c) for s, c in zip(sources, plan.counts(len(sources)))},
        "loss_first": float(np.mean(counter.losses[:10])) if counter.losses else None,
        "loss_last": float(np.mean(counter.losses[-10:])) if counter.losses else None,
        "loss_curve": [float(np.mean(counter.losses[i : i + 10])) for i in range(0, len(counter.losses), 10)],
        "seconds": seconds,
        "device": str(dev),
    }
    if mixing and recipe is not None:
        info["recipe"] = dataclasses.asdict(recipe)
    if counter.best is not None:
        info.update(
            {
                "val_curve": counter.curve,
                "best_step": int(counter.best[0]),
                "best_val_miou": float(counter.best[1]),
                "converged": converged(counter.curve, cfg.iterations),
                "select": cfg.select,
                "selected_step": int(counter.best[0]) if cfg.select == "best-val" else int(counter.steps),
                "val_tiles": len(val),  # type: ignore[arg-type]
                "val_seconds": counter.val_seconds,
            }
        )
    return TrainedSegmenter(model=model, norm=norm, num_classes=num_classes, device=dev, info=info)
