"""Downstream benchmark: does synthetic data help a segmentation network? (``rsaug benchmark-augmentation``).

The benchmark trains TorchGeo's :class:`~torchgeo.trainers.SemanticSegmentationTask` U-Net (random
initialisation, ``weights=None``) with Lightning on several *arms* and several *seeds*, and evaluates every
run on the same real test split:

* ``real``: the real training split only (the baseline);
* ``real+<name>``: the real training split plus a synthetic tile set (``rsaug synthesize`` output, or one
  generated on the fly from a checkpoint);
* ``classic``: the real training split with classic augmentation (flips, 90-degree rotations, colour jitter);
* ``<name>-only``: the synthetic tile set alone.

Protocol (designed so that run-to-run noise is smaller than the effect being measured):

* every arm gets exactly the same number of optimizer steps, batch size, crop size, optimiser and schedule
  (AdamW, linear warm-up then cosine decay to zero, so the last iterate is a converged, low-noise model);
* seed ``s`` gives the same network initialisation in every arm and the same draw sequence over the real
  tiles (so the arms differ only in what the synthetic / augmented draws add); results are compared *paired*
  by seed;
* evaluation runs on every pixel of every real test tile (tiles are reflect-padded to a multiple of 32 and
  the prediction cropped back), unknown pixels ignored; per-class IoU, mIoU, FWIoU and accuracy come from the
  accumulated confusion matrix (:mod:`rsaug.metrics`), not from TorchGeo's micro-averaged logs.

Every run's result (confusion matrix, scores, timings, bookkeeping) is written atomically to
``OUT/runs/<arm>/seed<k>.json``; a re-run skips finished runs. :mod:`rsaug.report` turns the run files into
``report.json``, CSVs, PNG plots and ``report.html``.

Python API::

    from rsaug.benchmark import SegmenterConfig, train_segmenter
    seg = train_segmenter("TILES", config=SegmenterConfig(iterations=300), seed=0, device="cpu")
    pred = seg.predict(images_uint8)          # (B, C, H, W) source dtype -> (B, H, W) class indices
    cm = seg.confusion(test_tiles)            # K x K confusion matrix on a tile collection
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rsaug.classes import IGNORE
from rsaug.errors import InputError
from rsaug.fsutil import read_json, write_json
from rsaug.runtime import seed_everything, select_device
from rsaug.tileset import TileSet

RUNS_DIR = "runs"
CONFIG_FILE = "benchmark_config.json"
ARM_KINDS = ("real", "real+synthetic", "classic", "synthetic-only")
PRESETS = ("cpu-small", "paper")


# ----------------------------------------------------------------------------------------------- configs
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


@dataclass
class BenchmarkConfig:
    """A whole benchmark: data, arms, seeds and the shared training protocol (saved as JSON in OUT).

    Attributes:
        real: Real tile set (train split for training, ``test_split`` for evaluation).
        synthetic: Synthetic tile sets by name (``rsaug synthesize`` output).
        arms: Arm kinds (:data:`ARM_KINDS`) or explicit arm names (``real``, ``real+<name>``, ``classic``,
            ``<name>-only``).
        seeds: Number of seeds per arm.
        first_seed: Seeds are ``first_seed .. first_seed + seeds - 1``.
        segmenter: Training protocol shared by every arm.
        test_split: Real split used for evaluation.
        synthetic_fraction: Share of the draws of a ``real+<name>`` arm that come from synthetic tiles;
            ``None`` = proportional to tile counts (the union of both sets, as in the paper).
        preset: Name of the preset the protocol came from (for the record).
        real_fractions: Training-set-size sweep (the paper's Table III): for each fraction f < 1, the arms
            ``real@f`` and ``real+<name>@f`` train on a subset of f of the real training tiles (nested seeded
            subsets, the same in every arm and seed) plus, for ``real+<name>@f``, the synthetic tiles made
            from those tiles' masks.
        replace_fractions: Replace-vs-augment curve (the companion study's Fig. 3): for each fraction r, the
            arm ``replace-<name>@r`` trains on the real training tiles with a share r removed, plus the
            synthetic tiles made from the removed tiles' masks (so the set keeps its size).
    """

    real: str
    synthetic: dict[str, str] = field(default_factory=dict)
    arms: list[str] = field(default_factory=lambda: list(ARM_KINDS))
    seeds: int = 3
    first_seed: int = 0
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)
    test_split: str = "test"
    synthetic_fraction: float | None = None
    preset: str | None = None
    real_fractions: list[float] = field(default_factory=list)
    replace_fractions: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dictionary."""
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BenchmarkConfig:
        """Inverse of :meth:`to_dict`."""
        d = dict(d)
        d["segmenter"] = SegmenterConfig(**d.get("segmenter", {}))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def seed_list(self) -> list[int]:
        """The seeds of every arm."""
        return list(range(self.first_seed, self.first_seed + self.seeds))


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
        return SegmenterConfig(backbone="resnet34", iterations=10000, batch_size=16, crop=224, lr=1e-3,
                               eval_batch_size=16, num_workers=4, threads=0)
    raise InputError(None, f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")


# ----------------------------------------------------------------------------------------------- data
@dataclass
class TileArrays:
    """Tiles of one source held in memory (images in their stored dtype, masks in the internal convention).

    Attributes:
        name: Source name (``real``, a synthetic set name...).
        images: One (C, H, W) array per tile.
        masks: One (H, W) uint8 array per tile.
        tile_ids: Tile ids, aligned with ``images``.
        source_tiles: For synthetic tiles, the id of the real tile whose mask each was generated from.
    """

    name: str
    images: list[np.ndarray]
    masks: list[np.ndarray]
    tile_ids: list[str]
    source_tiles: list[str] = field(default_factory=list)

    def select(self, indices: Sequence[int]) -> TileArrays:
        """The tiles at ``indices`` (same name)."""
        idx = list(indices)
        return TileArrays(self.name, [self.images[i] for i in idx], [self.masks[i] for i in idx],
                          [self.tile_ids[i] for i in idx],
                          [self.source_tiles[i] for i in idx] if self.source_tiles else [])

    def __len__(self) -> int:
        return len(self.images)


def open_tileset(path: str | os.PathLike[str] | TileSet) -> TileSet:
    """Open a tile set (or pass one through)."""
    return path if isinstance(path, TileSet) else TileSet.open(path)


def load_tiles(ts: TileSet, splits: Sequence[str] | None, name: str) -> TileArrays:
    """Read the tiles of some splits (``None`` = all) into memory.

    Raises:
        InputError: If the selection is empty or a tile cannot be read.
    """
    rows = ts.index if splits is None else ts.index[ts.index["split"].isin(list(splits))]
    if len(rows) == 0:
        what = "any" if splits is None else "/".join(splits)
        raise InputError(ts.root, f"tile set has no {what} tiles")
    images, masks, ids = [], [], []
    sources = [str(v) for v in rows["source_tile"]] if "source_tile" in rows.columns else []
    for _, row in rows.iterrows():
        img = ts.read_image(row)
        msk = ts.read_mask(row)
        if img.shape[1:] != msk.shape:
            raise InputError(ts.image_path(row), f"image {img.shape[1:]} and mask {msk.shape} differ in size")
        images.append(img)
        masks.append(msk)
        ids.append(str(row["tile_id"]))
    return TileArrays(name=name, images=images, masks=masks, tile_ids=ids, source_tiles=sources)


@dataclass
class Normalization:
    """Maps stored pixel values to the network input: ``((x - low) / (high - low) - mean) / std`` per band."""

    low: list[float]
    high: list[float]
    mean: list[float]
    std: list[float]

    @classmethod
    def fit(cls, tiles: TileArrays, dtype: str) -> Normalization:
        """Fit on (real training) tiles: range 0..255 for uint8 else the 2nd/98th percentiles; then mean/std."""
        stack = np.concatenate([im.reshape(im.shape[0], -1) for im in tiles.images], axis=1).astype(np.float64)
        if dtype == "uint8":
            low = np.zeros(stack.shape[0])
            high = np.full(stack.shape[0], 255.0)
        else:
            low = np.percentile(stack, 2, axis=1)
            high = np.percentile(stack, 98, axis=1)
            high = np.where(high > low, high, low + 1)
        scaled = (stack - low[:, None]) / (high - low)[:, None]
        mean = scaled.mean(axis=1)
        std = np.maximum(scaled.std(axis=1), 1e-6)
        return cls(low.tolist(), high.tolist(), mean.tolist(), std.tolist())

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise a float tensor (B, C, H, W) of stored values."""
        low, high, mean, std = (torch.tensor(v, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
                                for v in (self.low, self.high, self.mean, self.std))
        return ((x.float() - low) / (high - low) - mean) / std

    def apply_model_range(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise generator output in the model range [-1, 1] (see docs/ARCHITECTURE.md)."""
        low = torch.tensor(self.low, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        high = torch.tensor(self.high, dtype=torch.float32, device=x.device).view(1, -1, 1, 1)
        return self.apply((x.float().clamp(-1, 1) + 1) / 2 * (high - low) + low)


def classic_augmentation(bands: int) -> Callable[..., dict[str, np.ndarray]]:
    """Albumentations pipeline of the ``classic`` arm: flips, 90-degree rotations, colour jitter.

    RGB images get ``ColorJitter``; other band counts get brightness/contrast changes (ColorJitter is
    defined for three bands only).
    """
    import albumentations as A

    colour = (A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.02, p=0.8) if bands == 3
              else A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.8))
    return A.Compose([A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5), A.RandomRotate90(p=1.0), colour])


@dataclass
class DrawPlan:
    """The exact sequence of training draws of one run (``iterations * batch_size`` entries).

    Attributes:
        source: Index of the source (0 = real, 1 = extra) of each draw.
        tile: Tile index within its source.
        y0, x0: Crop offsets as fractions in [0, 1) (scaled to the tile's free range at read time).
        aug_seed: Seed of the augmentation of each draw.
    """

    source: np.ndarray
    tile: np.ndarray
    y0: np.ndarray
    x0: np.ndarray
    aug_seed: np.ndarray

    def counts(self, n_sources: int) -> list[int]:
        """Number of draws per source."""
        return np.bincount(self.source, minlength=n_sources).tolist()


def make_plan(sizes: Sequence[int], fractions: Sequence[float], n_draws: int, seed: int) -> DrawPlan:
    """Draw sequence: which source and tile each sample comes from, where it is cropped, its augmentation.

    The real source (index 0) is drawn with its own random stream seeded by ``seed`` alone, so for a given seed
    the sequence of real tiles and crops is the same in every arm; only the positions taken by other sources
    differ. Tiles are drawn epoch-wise (a fresh permutation every pass) so every tile is seen equally often.

    Args:
        sizes: Tile count of each source.
        fractions: Share of draws from each source (sums to 1).
        n_draws: Total number of draws.
        seed: Run seed.
    """
    mix = np.random.default_rng([seed, 1])
    source = mix.choice(len(sizes), size=n_draws, p=np.asarray(fractions) / np.sum(fractions)) \
        if len(sizes) > 1 else np.zeros(n_draws, dtype=np.int64)
    tile = np.zeros(n_draws, dtype=np.int64)
    y0 = np.zeros(n_draws)
    x0 = np.zeros(n_draws)
    aug = np.zeros(n_draws, dtype=np.int64)
    for s, size in enumerate(sizes):
        pos = np.flatnonzero(source == s)
        if len(pos) == 0:
            continue
        # one stream per quantity, so the first n draws do not depend on how many draws the source gets
        r_order, r_y, r_x, r_aug = (np.random.default_rng([seed, 100 + s, q]) for q in range(4))
        n_epochs = math.ceil(len(pos) / size)
        order = np.concatenate([r_order.permutation(size) for _ in range(n_epochs)])[: len(pos)]
        tile[pos] = order
        y0[pos] = r_y.random(len(pos))
        x0[pos] = r_x.random(len(pos))
        aug[pos] = r_aug.integers(0, 2**31 - 1, len(pos))
    return DrawPlan(source=source.astype(np.int64), tile=tile, y0=y0, x0=x0, aug_seed=aug)


class PlanDataset(torch.utils.data.Dataset):
    """Training samples following a :class:`DrawPlan` (TorchGeo-style dicts ``image`` float32 / ``mask`` int64).

    Args:
        sources: Tile collections (index 0 = real).
        plan: The draw sequence.
        crop: Crop side in pixels.
        norm: Input normalisation.
        augment: Optional albumentations pipeline applied to each crop.
    """

    def __init__(self, sources: Sequence[TileArrays], plan: DrawPlan, crop: int, norm: Normalization,
                 augment: Callable[..., dict[str, np.ndarray]] | None = None) -> None:
        self.sources = list(sources)
        self.plan = plan
        self.crop = crop
        self.norm = norm
        self.augment = augment

    def __len__(self) -> int:
        return len(self.plan.source)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        src = self.sources[int(self.plan.source[i])]
        t = int(self.plan.tile[i])
        img, msk = _pad_to(src.images[t], src.masks[t], self.crop)
        h, w = msk.shape
        y = int(self.plan.y0[i] * (h - self.crop + 1))
        x = int(self.plan.x0[i] * (w - self.crop + 1))
        img = img[:, y:y + self.crop, x:x + self.crop]
        msk = msk[y:y + self.crop, x:x + self.crop]
        if self.augment is not None:
            self.augment.set_random_seed(int(self.plan.aug_seed[i]))  # albumentations 2: per-draw determinism
            out = self.augment(image=np.ascontiguousarray(np.moveaxis(img, 0, -1)), mask=np.ascontiguousarray(msk))
            img = np.moveaxis(out["image"], -1, 0)
            msk = out["mask"]
        x_t = self.norm.apply(torch.from_numpy(np.ascontiguousarray(img))[None])[0]
        return {"image": x_t, "mask": torch.from_numpy(np.ascontiguousarray(msk).astype(np.int64))}


def _pad_to(img: np.ndarray, msk: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    h, w = msk.shape
    if h >= size and w >= size:
        return img, msk
    ph, pw = max(0, size - h), max(0, size - w)
    img = np.pad(img, ((0, 0), (0, ph), (0, pw)), mode="reflect" if min(h, w) > max(ph, pw) else "edge")
    msk = np.pad(msk, ((0, ph), (0, pw)), constant_values=IGNORE)
    return img, msk


# ----------------------------------------------------------------------------------------------- metrics
def confusion_matrix(pred: np.ndarray, target: np.ndarray, num_classes: int) -> np.ndarray:
    """K x K confusion matrix (rows = reference, columns = prediction); unknown pixels skipped (rsaug.metrics)."""
    from rsaug import metrics

    return np.asarray(metrics.confusion_matrix(pred, target, num_classes), dtype=np.int64)


def scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Scores of a confusion matrix via :func:`rsaug.metrics.segmentation_scores`.

    Returns:
        ``miou``, ``fwiou``, ``acc`` and ``iou`` (per-class IoU, ``None`` for classes absent from the test
        split), plus every field of :func:`rsaug.metrics.segmentation_scores`.
    """
    from rsaug import metrics

    s = metrics.segmentation_scores(np.asarray(cm), class_names)
    return {"miou": s["miou"], "fwiou": s["fwiou"], "acc": s["accuracy"], "iou": s["per_class_iou"], **s}


# ----------------------------------------------------------------------------------------------- training
def _build_task(num_classes: int, in_channels: int, cfg: SegmenterConfig) -> Any:
    """TorchGeo's SemanticSegmentationTask U-Net with our optimiser schedule (random init, no downloads)."""
    from torchgeo.trainers import SemanticSegmentationTask

    class _Task(SemanticSegmentationTask):
        def configure_optimizers(self) -> Any:  # noqa: D102 - AdamW + per-step warm-up/cosine schedule
            opt = torch.optim.AdamW(self.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
            total = cfg.iterations
            warm = int(round(cfg.warmup_fraction * total))

            def factor(step: int) -> float:
                if step < warm:
                    return (step + 1) / warm
                if cfg.schedule == "constant":
                    return 1.0
                prog = (step - warm) / max(1, total - warm)
                return 0.5 * (1 + math.cos(math.pi * min(1.0, prog)))

            sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    return _Task(model="unet", backbone=cfg.backbone, weights=None, in_channels=in_channels,
                 num_classes=num_classes, ignore_index=IGNORE, lr=cfg.lr)


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
    norm: Normalization
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
        logits = self.model(x.to(self.device))
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
                part = idx[j:j + batch_size]
                pred = self.predict(np.stack([tiles.images[i] for i in part]))
                ref = np.stack([tiles.masks[i] for i in part])
                cm += confusion_matrix(pred, ref, k).astype(np.int64)
        return cm


class _StepCounter:
    """Lightning callback: counts optimizer steps, records the loss curve, drives a tqdm bar."""

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:  # build a real Callback subclass lazily
        from lightning.pytorch.callbacks import Callback

        class _Impl(Callback):
            def __init__(self, total: int, desc: str, progress: bool) -> None:
                self.steps = 0
                self.losses: list[float] = []
                self.bar = tqdm(total=total, desc=desc, leave=False, disable=not progress, unit="it")

            def on_train_batch_end(self, trainer: Any, module: Any, outputs: Any, batch: Any, idx: int) -> None:
                self.steps += 1
                loss = outputs["loss"] if isinstance(outputs, dict) else outputs
                self.losses.append(float(loss.detach()))
                self.bar.update(1)
                if self.steps % 10 == 0:
                    self.bar.set_postfix(loss=f"{np.mean(self.losses[-10:]):.3f}")

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
    augment: bool = False,
    norm: Normalization | None = None,
    num_classes: int | None = None,
    dtype: str | None = None,
    progress: bool = False,
    desc: str = "train",
) -> TrainedSegmenter:
    """Train TorchGeo's U-Net (``SemanticSegmentationTask``, random init) on real tiles (+ optional extra tiles).

    Args:
        real: Real tile set (path or :class:`TileSet`; its ``split`` is used) or tiles already in memory.
        config: Training protocol (default :class:`SegmenterConfig`).
        seed: Seed of the network initialisation and of the draw sequence.
        device: ``auto``, ``cpu``, ``cuda``...
        split: Split of ``real`` to train on when it is a tile set.
        extra: Extra training tiles (e.g. synthetic), drawn alongside the real ones.
        extra_fraction: Share of draws taken from ``extra``; ``None`` = proportional to tile counts.
        augment: Apply :func:`classic_augmentation` to every training crop.
        norm: Input normalisation; default: fitted on the real tiles.
        num_classes: K; required when ``real`` is a :class:`TileArrays`.
        dtype: Stored image dtype (for the normalisation); read from the tile set when possible.
        progress: Show a tqdm bar over the steps.
        desc: Progress-bar label.

    Returns:
        The trained network with its normalisation and a bookkeeping dictionary ``info`` (``steps``,
        ``draws`` per source, ``samples``, ``loss_first`` / ``loss_last`` (mean of 10 steps), ``seconds``).

    Raises:
        InputError: For an empty training set or invalid protocol values.
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
    if len(tiles) == 0:
        raise InputError(None, "no real training tiles")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    dev = select_device(str(device)) if not isinstance(device, torch.device) else device
    norm = norm or Normalization.fit(tiles, dtype)

    sources = [tiles]
    fractions = [1.0]
    if extra is not None and len(extra) > 0:
        if len(tiles) == 0 or (extra_fraction is not None and extra_fraction >= 1):
            sources, fractions = [extra], [1.0]
        else:
            f = extra_fraction if extra_fraction is not None else len(extra) / (len(extra) + len(tiles))
            sources = [tiles, extra]
            fractions = [1 - f, f]
    n_draws = cfg.iterations * cfg.batch_size
    plan = make_plan([len(s) for s in sources], fractions, n_draws, seed)
    bands = tiles.images[0].shape[0]
    ds = PlanDataset(sources, plan, cfg.crop, norm, classic_augmentation(bands) if augment else None)
    loader = torch.utils.data.DataLoader(ds, batch_size=cfg.batch_size, shuffle=False, drop_last=True,
                                         num_workers=cfg.num_workers, persistent_workers=False)

    seed_everything(seed)  # same initialisation for a given seed in every arm
    task = _build_task(num_classes, bands, cfg)
    counter = _StepCounter(cfg.iterations, desc, progress)
    import logging

    pl_log = logging.getLogger("lightning.pytorch")
    old_level = pl_log.level
    pl_log.setLevel(logging.ERROR)  # no per-run "GPU available" banners inside the progress display
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*validation_step.*")
        warnings.filterwarnings("ignore", ".*does not have many workers.*")
        warnings.filterwarnings("ignore", ".*number of training batches.*")
        warnings.filterwarnings("ignore", ".*GPU available but not used.*")
        warnings.filterwarnings("ignore", ".*LeafSpec.*")
        trainer = pl.Trainer(
            accelerator="gpu" if dev.type == "cuda" else "cpu", devices=1, max_steps=cfg.iterations,
            max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0, callbacks=[counter],
            deterministic=False,
        )
        t0 = time.perf_counter()
        try:
            trainer.fit(task, train_dataloaders=loader)
        finally:
            pl_log.setLevel(old_level)
        seconds = time.perf_counter() - t0
    counter.close()
    if int(trainer.global_step) != cfg.iterations:  # e.g. Lightning stopped gracefully on SIGTERM
        raise RuntimeError(f"training stopped after {trainer.global_step} of {cfg.iterations} steps; "
                           "the run is not recorded")
    model = task.model.to(dev).eval()
    info = {
        "steps": int(trainer.global_step),
        "samples": int(counter.steps * cfg.batch_size),
        "draws": {s.name: int(c) for s, c in zip(sources, plan.counts(len(sources)))},
        "loss_first": float(np.mean(counter.losses[:10])) if counter.losses else None,
        "loss_last": float(np.mean(counter.losses[-10:])) if counter.losses else None,
        "loss_curve": [float(np.mean(counter.losses[i:i + 10])) for i in range(0, len(counter.losses), 10)],
        "seconds": seconds,
        "device": str(dev),
    }
    return TrainedSegmenter(model=model, norm=norm, num_classes=num_classes, device=dev, info=info)


# ----------------------------------------------------------------------------------------------- benchmark
@dataclass
class Arm:
    """One arm of the benchmark.

    Attributes:
        name: Arm name (``real``, ``real+<syn>``, ``classic``, ``<syn>-only``; sweep arms ``real@f``,
            ``real+<syn>@f``, ``replace-<syn>@r``).
        kind: One of :data:`ARM_KINDS`, or ``replace``.
        synthetic: Name of the synthetic set it uses, if any.
        real_fraction: Share of the real training tiles used (see :func:`real_subset`).
    """

    name: str
    kind: str
    synthetic: str | None = None
    real_fraction: float = 1.0

    @property
    def augment(self) -> bool:
        """Whether classic augmentation is applied."""
        return self.kind == "classic"


def resolve_arms(arms: Sequence[str], synthetic_names: Sequence[str]) -> list[Arm]:
    """Expand arm kinds / names into arms (``real+synthetic`` -> one ``real+<name>`` arm per synthetic set).

    Raises:
        InputError: For an unknown arm, or an arm that needs synthetic data when none is given.
    """
    out: list[Arm] = []

    def add(a: Arm) -> None:
        if all(a.name != b.name for b in out):
            out.append(a)

    for spec in arms:
        spec = spec.strip()
        if not spec:
            continue
        if spec == "real":
            add(Arm("real", "real"))
        elif spec == "classic":
            add(Arm("classic", "classic"))
        elif spec in ("real+synthetic", "synthetic-only"):
            if not synthetic_names:
                raise InputError(None, f"arm {spec!r} needs synthetic data: give --synthetic DIR or --checkpoint CKPT")
            for n in synthetic_names:
                add(Arm(f"real+{n}", "real+synthetic", n) if spec == "real+synthetic" else Arm(f"{n}-only", "synthetic-only", n))
        elif spec.startswith("real+") and spec[5:] in synthetic_names:
            add(Arm(spec, "real+synthetic", spec[5:]))
        elif spec.endswith("-only") and spec[:-5] in synthetic_names:
            add(Arm(spec, "synthetic-only", spec[:-5]))
        else:
            valid = ["real", "classic", "real+synthetic", "synthetic-only"]
            valid += [f"real+{n}" for n in synthetic_names] + [f"{n}-only" for n in synthetic_names]
            raise InputError(None, f"unknown arm {spec!r}; valid: {', '.join(valid)}")
    if not out:
        raise InputError(None, "no arms selected")
    return out


def sweep_arms(arms: Sequence[Arm], real_fractions: Sequence[float],
               replace_fractions: Sequence[float]) -> list[Arm]:
    """Arms of the training-set-size sweep and of the replace-vs-augment curve (see :class:`BenchmarkConfig`).

    They use the synthetic sets of the ``real+<name>`` arms among ``arms``.

    Raises:
        InputError: For a fraction outside (0, 1), or a replace curve without a ``real+<name>`` arm.
    """
    syn = [a.synthetic for a in arms if a.kind == "real+synthetic"]
    for what, fr in (("--real-fractions", real_fractions), ("--replace-fractions", replace_fractions)):
        bad = [f for f in fr if not 0 < f < 1]
        if bad:
            raise InputError(None, f"{what} must lie strictly between 0 and 1, got {bad}")
    if replace_fractions and not syn:
        raise InputError(None, "--replace-fractions needs a synthetic set (and a real+synthetic arm)")
    out: list[Arm] = []
    for f in sorted(set(real_fractions)):
        out.append(Arm(f"real@{f:g}", "real", None, f))
        out += [Arm(f"real+{n}@{f:g}", "real+synthetic", n, f) for n in syn]
    for r in sorted(set(replace_fractions)):
        out += [Arm(f"replace-{n}@{r:g}", "replace", n, 1.0 - r) for n in syn]
    return out


def real_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the real training tiles kept at ``fraction``: the first ``round(fraction * n)`` entries of one
    seeded permutation, so smaller subsets are nested in larger ones and every arm and seed sees the same one."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    return np.sort(perm[: max(1, min(n, round(fraction * n)))])


def from_sources(syn: TileArrays, source_ids: set[str], name: str) -> TileArrays:
    """The synthetic tiles generated from the masks of the real tiles ``source_ids``.

    Raises:
        InputError: When the synthetic set records no source tiles (not made by ``rsaug synthesize``).
    """
    if not syn.source_tiles:
        raise InputError(None, f"synthetic set {name!r} has no 'source_tile' column; the size sweep and the "
                               "replace curve need to know which real mask each synthetic tile came from")
    return syn.select([i for i, s in enumerate(syn.source_tiles) if s in source_ids])


def check_synthetic(real: TileSet, syn: TileSet, name: str) -> None:
    """A synthetic tile set must have the real set's classes, band count and dtype.

    Raises:
        InputError: Naming the synthetic set and the mismatch.
    """
    if not syn.scheme.same_classes(real.scheme):
        raise InputError(syn.root, f"synthetic set {name!r} has class scheme {syn.scheme.name!r} "
                                   f"({syn.scheme.num_classes} classes), the real tile set {real.root} has "
                                   f"{real.scheme.name!r} ({real.scheme.num_classes} classes)")
    if syn.bands != real.bands:
        raise InputError(syn.root, f"synthetic set {name!r} has {syn.bands} bands, the real tile set has {real.bands}")
    if np.dtype(syn.dtype) != np.dtype(real.dtype):
        raise InputError(syn.root, f"synthetic set {name!r} holds {syn.dtype} images, the real tile set {real.dtype}")


def _tileset_fingerprint(ts: TileSet) -> str:
    h = hashlib.sha256()
    for f in ("tileset.json", str(ts.description.get("index", "index.gpkg"))):
        p = ts.root / f
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _synthetic_rows(syn: TileSet) -> list[str] | None:
    """Splits of a synthetic set used for training (``train`` when present, else every tile)."""
    return ["train"] if (syn.index["split"] == "train").any() else None


def generate_synthetic(real: TileSet, checkpoint: str, out: Path, *, device: str = "auto", seed: int = 0,
                       mode: str = "plain", progress: bool = False) -> Path:
    """Synthesize a tile set from a checkpoint for the real training masks (via :mod:`rsaug.synthesis`).

    An existing complete output in ``out`` is reused (synthesis resumes where it stopped).

    Args:
        real: Real tile set.
        checkpoint: Generator checkpoint.
        out: Output directory of the synthetic tile set.
        device: Generation device.
        seed: Planner / generation seed.
        mode: Planner mode: ``plain`` (one sample per training mask, doubling the set as in the paper) or
            ``rare`` (``--double-rare-classes``).
        progress: Show progress.

    Returns:
        ``out``.
    """
    from rsaug import synthesis
    from rsaug.generation import load_generator

    if not Path(checkpoint).exists():
        raise InputError(checkpoint, "checkpoint not found")
    if (out / "tileset.json").is_file():
        return out
    gen = load_generator(checkpoint, device=device)
    synthesis.check_compatible(gen, real, checkpoint)
    plan = synthesis.plan_synthesis(real, synthesis.PlanConfig(mode=mode, seed=seed))
    synthesis.synthesize_tileset(real, gen, out, plan, checkpoint=checkpoint, resume=out.exists() and any(out.iterdir()),
                                 progress=progress)
    return out


def run_path(out: Path, arm: str, seed: int) -> Path:
    """Result file of one run."""
    return out / RUNS_DIR / arm.replace("/", "_") / f"seed{seed}.json"


def _protocol_key(cfg: BenchmarkConfig, fps: dict[str, str]) -> dict[str, Any]:
    seg = asdict(cfg.segmenter)
    for k in ("eval_batch_size", "num_workers", "threads"):
        seg.pop(k)
    return {"segmenter": seg, "test_split": cfg.test_split, "synthetic_fraction": cfg.synthetic_fraction,
            "data": fps}


def run_benchmark(
    cfg: BenchmarkConfig,
    out: str | os.PathLike[str],
    *,
    device: str = "auto",
    checkpoints: dict[str, str] | None = None,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
    max_runs: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a benchmark and write its report.

    Args:
        cfg: The benchmark configuration.
        out: Output directory (created; run results go to ``out/runs``).
        device: Training device.
        checkpoints: Synthetic sets to generate on the fly: name -> checkpoint (written to ``out/synthetic/<name>``).
        progress: Show progress bars.
        log: Callback for one-line status messages (default: silent).
        max_runs: Stop after training this many new runs (the report covers what is finished).

    Returns:
        The report dictionary (see :func:`rsaug.report.build_report`).

    Raises:
        InputError: Missing / incompatible tile sets, unknown arms, invalid protocol, or an output directory
            holding results of a different configuration. Nothing is written before these checks pass.
    """
    from rsaug import report as rep

    say = log or (lambda s: None)
    out = Path(out)
    cfg.segmenter.validate()
    if cfg.seeds < 1:
        raise InputError(None, f"seeds must be >= 1, got {cfg.seeds}")
    if cfg.synthetic_fraction is not None and not 0 < cfg.synthetic_fraction < 1:
        raise InputError(None, f"synthetic fraction must be in (0, 1), got {cfg.synthetic_fraction}")
    real = open_tileset(cfg.real)
    for split in ("train", cfg.test_split):
        if not (real.index["split"] == split).any():
            raise InputError(real.root, f"real tile set has no {split!r} tiles")
    if real.synthetic:
        raise InputError(real.root, "the real tile set is marked synthetic")
    checkpoints = dict(checkpoints or {})
    clash = set(checkpoints) & set(cfg.synthetic)
    if clash:
        raise InputError(None, f"synthetic name(s) {sorted(clash)} given both as a tile set and as a checkpoint")
    for name, ck in checkpoints.items():
        if not Path(ck).exists():
            raise InputError(ck, "checkpoint not found")
    syn_sets: dict[str, TileSet] = {}
    for name, path in cfg.synthetic.items():
        ts = open_tileset(path)
        check_synthetic(real, ts, name)
        syn_sets[name] = ts
    arms = resolve_arms(cfg.arms, list(cfg.synthetic) + list(checkpoints))
    sweep = sweep_arms(arms, cfg.real_fractions, cfg.replace_fractions)

    # ---- on-the-fly synthesis (checkpoint -> synthetic tile set inside OUT)
    for name, ck in checkpoints.items():
        target = out / "synthetic" / name
        say(f"synthesizing {name!r} from {ck} into {target}")
        generate_synthetic(real, ck, target, device=device, seed=cfg.first_seed, progress=progress)
        ts = TileSet.open(target)
        check_synthetic(real, ts, name)
        syn_sets[name] = ts
        cfg.synthetic[name] = str(target)

    fps = {"real": _tileset_fingerprint(real), **{n: _tileset_fingerprint(t) for n, t in syn_sets.items()}}
    key = _protocol_key(cfg, fps)
    cfg_path = out / CONFIG_FILE
    if cfg_path.is_file():
        old = read_json(cfg_path)
        old_key = old.get("protocol_key")
        if old_key is not None and _protocol_mismatch(old_key, key):
            raise InputError(out, "holds results of a different benchmark protocol or data (differs in: "
                                  f"{', '.join(_protocol_mismatch(old_key, key))}); use another output directory")
    write_json(cfg_path, {"config": cfg.to_dict(), "protocol_key": key, "arms": [asdict(a) for a in arms],
                          "sweep_arms": [asdict(a) for a in sweep]})

    # ---- data in memory
    say(f"loading tiles from {real.root}")
    train = load_tiles(real, ["train"], "real")
    test = load_tiles(real, [cfg.test_split], "test")
    norm = Normalization.fit(train, real.dtype)
    syn_tiles = {n: load_tiles(t, _synthetic_rows(t), n) for n, t in syn_sets.items()
                 if any(a.synthetic == n for a in arms)}
    names = real.scheme.names
    k = real.scheme.num_classes

    # ---- runs: seed-major, so an interrupted benchmark still has complete paired seeds
    seeds = cfg.seed_list()
    todo = [(s, a) for s in seeds for a in arms] + [(s, a) for s in seeds for a in sweep]  # main arms first
    done_before = sum(run_path(out, a.name, s).is_file() for s, a in todo)
    outer = tqdm(total=len(todo), initial=done_before, desc="benchmark", unit="run", disable=not progress)
    trained = 0
    for seed, arm in todo:
        path = run_path(out, arm.name, seed)
        if path.is_file():
            continue
        if max_runs is not None and trained >= max_runs:
            break
        outer.set_postfix_str(f"{arm.name} seed {seed}")
        if arm.kind == "synthetic-only":
            base, extra, frac = syn_tiles[arm.synthetic], None, None
        else:
            base = train if arm.real_fraction >= 1 else train.select(
                real_subset(len(train), arm.real_fraction, cfg.first_seed))
            extra = syn_tiles[arm.synthetic] if arm.kind in ("real+synthetic", "replace") else None
            if arm.kind == "replace":  # the synthetic tiles of the removed tiles' masks
                extra = from_sources(extra, set(train.tile_ids) - set(base.tile_ids), arm.synthetic)
            elif extra is not None and arm.real_fraction < 1:  # only the masks of the kept tiles
                extra = from_sources(extra, set(base.tile_ids), arm.synthetic)
            frac = cfg.synthetic_fraction
        seg = train_segmenter(base, config=cfg.segmenter, seed=seed, device=device, extra=extra, extra_fraction=frac,
                              augment=arm.augment, norm=norm, num_classes=k, dtype=real.dtype, progress=progress,
                              desc=f"{arm.name} s{seed}")
        t0 = time.perf_counter()
        cm = seg.confusion(test, batch_size=cfg.segmenter.eval_batch_size)
        sc = scores(cm, names)
        result = {
            "arm": arm.name, "kind": arm.kind, "synthetic": arm.synthetic, "seed": seed,
            "scores": {"miou": sc["miou"], "fwiou": sc["fwiou"], "acc": sc["acc"], "iou": sc["iou"],
                       "class_pixels": sc["class_pixels"]},
            "confusion_matrix": cm.tolist(),
            "train": seg.info, "eval_seconds": time.perf_counter() - t0,
            "test_tiles": len(test), "protocol_key": key, "real_fraction": arm.real_fraction,
            "train_tiles": {"real": 0 if arm.kind == "synthetic-only" else len(base),
                            "synthetic": len(base) if arm.kind == "synthetic-only" else len(extra or [])},
        }
        write_json(path, result)
        trained += 1
        outer.update(1)
        say(f"{arm.name} seed {seed}: mIoU {sc['miou']:.4f} FWIoU {sc['fwiou']:.4f} acc {sc['acc']:.4f} "
            f"({seg.info['seconds']:.0f} s)")
    outer.close()

    runs = collect_runs(out, arms + sweep, seeds)
    counts = {"real": real.class_pixel_counts("train").tolist()}
    for n, t in syn_sets.items():
        rows = t.index if _synthetic_rows(t) is None else t.split("train")
        syn_counts = np.array([int(rows[f"px_{c}"].sum()) if f"px_{c}" in rows else 0 for c in names])
        counts[f"real+{n}"] = (np.asarray(counts["real"]) + syn_counts).tolist()
    return rep.build_report(out, runs=runs, arms=[a.name for a in arms], class_names=names, class_counts=counts,
                            palette=real.scheme.palette(), gallery=make_gallery(real, syn_sets),
                            sweep=[asdict(a) for a in sweep],
                            config={**cfg.to_dict(), "test_tiles": len(test), "train_tiles": len(train),
                                    "sweep_arms": [a.name for a in sweep],
                                    "synthetic_tiles": {n: len(t) for n, t in syn_tiles.items()}})


def _protocol_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    diffs = []
    for k in sorted(set(old) | set(new)):
        if k == "data":
            o, n = old.get(k, {}), new.get(k, {})
            diffs += [f"data {d}" for d in sorted(set(o) & set(n)) if o[d] != n[d]]
        elif k == "segmenter":
            o, n = old.get(k, {}), new.get(k, {})
            diffs += [d for d in sorted(set(o) | set(n)) if o.get(d) != n.get(d)]
        elif json.dumps(old.get(k)) != json.dumps(new.get(k)):
            diffs.append(k)
    return diffs


def collect_runs(out: str | os.PathLike[str], arms: Sequence[Arm] | None = None,
                 seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    """Finished run results under ``out/runs`` (optionally only the given arms and seeds)."""
    root = Path(out) / RUNS_DIR
    names = None if arms is None else {a.name for a in arms}
    runs = []
    for p in sorted(root.glob("*/seed*.json")):
        r = read_json(p)
        if (names is None or r["arm"] in names) and (seeds is None or r["seed"] in seeds):
            runs.append(r)
    return runs


def make_gallery(real: TileSet, syn_sets: dict[str, TileSet], n: int = 4) -> list[dict[str, Any]]:
    """Mask / real / synthetic triplets for the report: the first ``n`` synthetic source tiles of each set."""
    gallery = []
    real_rows = {str(r["tile_id"]): r for _, r in real.index.iterrows()}
    for name, syn in syn_sets.items():
        if "source_tile" not in syn.index.columns:
            continue
        by_src: dict[str, list[Any]] = {}
        for _, r in syn.index.iterrows():
            by_src.setdefault(str(r["source_tile"]), []).append(r)
        for src in sorted(by_src)[:n]:
            rr = real_rows.get(src)
            gallery.append({
                "tile_id": src, "source": name,
                "mask": syn.read_mask(by_src[src][0]),
                "real": real.read_image(rr) if rr is not None else None,
                "synthetic": [syn.read_image(r) for r in by_src[src][:3]],
            })
    return gallery
