"""How a segmentation U-Net is trained: :class:`SegmenterConfig` and its named presets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rsaug.core.errors import InputError, option

#: Named segmenter protocols (see :func:`preset`).
PRESETS = ("cpu-small", "cpu-converge", "paper")
#: How the returned weights are chosen (see :class:`SegmenterConfig`).
SELECT_MODES = ("last", "best-val")
#: Share of the steps at the end of a run that decides convergence (see :func:`converged`).
CONVERGENCE_TAIL = 0.2
#: Largest val-mIoU gain (fraction, 0.005 = 0.5 points) of the tail over the best before it for a converged run.
CONVERGENCE_GAIN = 0.005


@dataclass
class SegmenterConfig:
    """How one U-Net is trained and evaluated (identical for every arm of a benchmark).

    Attributes:
        backbone: segmentation-models-pytorch encoder of TorchGeo's U-Net (random init).
        iterations: Optimizer steps.
        batch_size: Training batch size.
        crop: Side of the random training crops in pixels (tiles smaller than this are padded with unknown).
        lr: Peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_fraction: Fraction of the steps with a linear learning-rate warm-up.
        schedule: ``cosine`` (decay to zero after warm-up) or ``constant``.
        eval_batch_size: Test tiles per forward pass during evaluation.
        num_workers: DataLoader workers (0 = in the main process).
        threads: Torch CPU threads (``0`` leaves torch's default).
        decoder_channels: Channels of the five U-Net decoder blocks (``None`` = segmentation-models-pytorch's
            default ``[256, 128, 64, 32, 16]``, TorchGeo's U-Net unchanged); a narrower decoder is faster.
        val_every: Steps between evaluations of the mIoU on every pixel of every validation tile during training
            (and once more after the last step); ``0`` = no validation (the old behaviour).
        select: Which weights are returned: ``last`` (the last step, the old behaviour) or ``best-val`` (the
            weights of the evaluation with the highest validation mIoU; needs ``val_every`` > 0).
        channels_last: Train and evaluate in the channels-last memory format (NHWC), which oneDNN runs faster on
            CPUs (about a fifth per step for the ``cpu-converge`` U-Net); the results differ from NCHW only by
            floating-point summation order, but they do differ, so it is part of the protocol.
        fused_adamw: Use PyTorch's fused AdamW kernel (one kernel for all parameters instead of a loop of tensor
            operations; same update rule, different rounding).
    """

    backbone: str = "resnet18"
    iterations: int = 600
    batch_size: int = 16
    crop: int = 64
    lr: float = 1e-3
    weight_decay: float = 1e-2
    warmup_fraction: float = 0.05
    schedule: str = "cosine"
    eval_batch_size: int = 8
    num_workers: int = 0
    threads: int = 2
    decoder_channels: list[int] | None = None
    val_every: int = 0
    select: str = "last"
    channels_last: bool = False
    fused_adamw: bool = False

    def validate(self) -> None:
        """Raise :class:`InputError` for impossible values."""
        if self.iterations < 1:
            raise InputError(None, f"iterations must be >= 1, got {self.iterations}")
        if self.batch_size < 1:
            raise InputError(None, f"batch size must be >= 1, got {self.batch_size}")
        if self.crop < 32 or self.crop % 32:
            raise InputError(None, f"crop must be a multiple of 32 (U-Net downsamples 5 times), got {self.crop}")
        if self.schedule not in ("cosine", "constant"):
            raise InputError(None, f"schedule must be 'cosine' or 'constant', got {self.schedule!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise InputError(None, f"warmup fraction must be in [0, 1), got {self.warmup_fraction}")
        if self.decoder_channels is not None and (
            len(self.decoder_channels) != 5 or any(int(c) < 1 for c in self.decoder_channels)
        ):
            raise InputError(None, f"decoder channels must be 5 positive numbers, got {self.decoder_channels}")
        if not 0 <= self.val_every <= self.iterations:
            raise InputError(
                None, f"{option('val_every')} must be in [0, iterations = {self.iterations}], got {self.val_every}"
            )
        if self.select not in SELECT_MODES:
            raise InputError(None, f"{option('select')} must be one of {', '.join(SELECT_MODES)}, got {self.select!r}")
        if self.select == "best-val" and self.val_every == 0:
            raise InputError(
                None, f"{option('select')} best-val needs validation during training ({option('val_every')} > 0)"
            )


#: How the share of extra (synthetic) draws evolves over a run (see :class:`MixRecipe`).
MIX_SCHEDULES = ("constant", "anneal", "pretrain")


@dataclass
class MixRecipe:
    """How extra (synthetic) tiles are mixed into the training of a U-Net: the recipes of "synthetic data that
    helps" besides filtering, alignment and sampling (which act on the synthetic tile set itself).

    Attributes:
        schedule: ``constant`` (every step draws the same share of synthetic crops), ``anneal`` (the share decays
            linearly from its starting value to 0 at the last step: half the synthetic draws of ``constant``) or
            ``pretrain`` (synthetic pre-training, real fine-tuning: the share holds for the first
            ``1 - finetune`` of the steps, the rest are real only; with a share of 1 the pre-training is on
            synthetic crops alone).
        finetune: Share of the steps at the end trained on real crops only (``pretrain``), in (0, 1).
        weight: Loss weight of synthetic crops in (0, 1] (1 = the same as real crops; the per-pixel
            cross-entropy of a synthetic crop is multiplied by it, the mean still divides by all valid pixels).
    """

    schedule: str = "constant"
    finetune: float = 0.25
    weight: float = 1.0

    @property
    def plain(self) -> bool:
        """The default mixing (constant share, weight 1), which keeps the draws of earlier rsaug versions."""
        return self.schedule == "constant" and self.weight == 1.0

    def validate(self) -> None:
        """Raise :class:`InputError` for a schedule or value outside its range."""
        if self.schedule not in MIX_SCHEDULES:
            raise InputError(
                None, f"synthetic schedule must be one of {', '.join(MIX_SCHEDULES)}, got {self.schedule!r}"
            )
        if not 0 < self.finetune < 1:
            raise InputError(None, f"real fine-tuning share must lie strictly between 0 and 1, got {self.finetune}")
        if not 0 < self.weight <= 1:
            raise InputError(None, f"synthetic loss weight must be in (0, 1], got {self.weight}")

    def share(self, start: float, n: int) -> np.ndarray:
        """Share of extra draws at each of ``n`` draws for a starting share ``start``."""
        t = np.arange(n) / max(n, 1)
        if self.schedule == "anneal":
            return start * (1.0 - t)
        if self.schedule == "pretrain":
            return np.where(t < 1.0 - self.finetune, start, 0.0)
        return np.full(n, float(start))


def converged(curve: list[list[float]] | list[tuple[int, float]], iterations: int) -> bool | None:
    """The convergence rule of a validation curve ``[[step, mIoU], ...]`` of a run of ``iterations`` steps.

    A run has *converged* when the best validation mIoU reached in the last 20 % of the steps
    (:data:`CONVERGENCE_TAIL`: evaluations at a step > 0.8 x ``iterations``) is less than 0.5 points
    (:data:`CONVERGENCE_GAIN`) above the best validation mIoU of the evaluations before them: training longer
    would not have bought a visible gain.

    Returns:
        ``True`` / ``False``; ``None`` when the rule cannot be applied (no evaluation before or inside the tail).
    """
    limit = (1 - CONVERGENCE_TAIL) * iterations
    before = [float(m) for s, m in curve if s <= limit]
    tail = [float(m) for s, m in curve if s > limit]
    if not before or not tail:
        return None
    return bool(max(tail) - max(before) < CONVERGENCE_GAIN)


def preset(name: str) -> SegmenterConfig:
    """Training protocol of a named preset.

    * ``cpu-small``: a resnet18 U-Net on 64-px crops, batch 16, 500 AdamW steps (lr 2e-3, warm-up + cosine).
      Sized so that four arms x three seeds fit in about 45 minutes on two CPU cores.
    * ``cpu-converge``: trained towards convergence on two CPU cores: a U-Net with a ``mobilenet_v2`` encoder
      (random init) and a narrow decoder (``decoder_channels`` ``[128, 64, 32, 16, 16]``) on 64-px crops,
      batch 16, 800 AdamW steps (lr 2e-3, warm-up + cosine), the validation mIoU every 200 steps and the
      best-val weights returned; channels-last tensors and the fused AdamW kernel (0.43 -> 0.30 s per step and
      9 -> 5 s per validation, measured on a 2-core AMD EPYC). Meant for the standard acceptance benchmark
      (4 arms x 2 training-set sizes x 5 seeds = 40 runs). Run time depends on the machine: 245-250 s per run
      without the speed options on one 2-core machine (165 minutes for 40 runs), 269-314 s per run with them
      on a slower one; see docs/benchmark.md. Not converged in 800 steps by :func:`converged`.
    * ``paper``: a resnet34 U-Net on 224-px crops (whole GID-15 tiles), batch 16, 10000 steps, lr 1e-3,
      warm-up + cosine; meant for a GPU. The paper does not publish its U-Net schedule: this is our choice.

    Raises:
        InputError: For an unknown preset name.
    """
    if name == "cpu-small":
        return SegmenterConfig(backbone="resnet18", iterations=500, batch_size=16, crop=64, lr=2e-3)
    if name == "cpu-converge":
        return SegmenterConfig(
            backbone="mobilenet_v2",
            iterations=800,
            batch_size=16,
            crop=64,
            lr=2e-3,
            eval_batch_size=16,
            decoder_channels=[128, 64, 32, 16, 16],
            val_every=200,
            select="best-val",
            channels_last=True,
            fused_adamw=True,
        )
    if name == "paper":
        return SegmenterConfig(
            backbone="resnet34",
            iterations=10000,
            batch_size=16,
            crop=224,
            lr=1e-3,
            eval_batch_size=16,
            num_workers=4,
            threads=0,
        )
    raise InputError(None, f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
