"""How a segmentation U-Net is trained: :class:`SegmenterConfig` and its named presets."""

from __future__ import annotations

from dataclasses import dataclass

from rsaug.core.errors import InputError

#: Named segmenter protocols (see :func:`preset`).
PRESETS = ("cpu-small", "paper")


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


def preset(name: str) -> SegmenterConfig:
    """Training protocol of a named preset.

    * ``cpu-small``: a resnet18 U-Net on 64-px crops, batch 16, 500 AdamW steps (lr 2e-3, warm-up + cosine).
      Sized so that four arms x three seeds fit in about 45 minutes on two CPU cores.
    * ``paper``: a resnet34 U-Net on 224-px crops (whole GID-15 tiles), batch 16, 10000 steps, lr 1e-3,
      warm-up + cosine; meant for a GPU. The paper does not publish its U-Net schedule: this is our choice.

    Raises:
        InputError: For an unknown preset name.
    """
    if name == "cpu-small":
        return SegmenterConfig(backbone="resnet18", iterations=500, batch_size=16, crop=64, lr=2e-3)
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
