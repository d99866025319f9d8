"""Pixel filtering of synthetic tile sets (FreeMask, NeurIPS 2023) and radiometric alignment of existing sets.

``rsaug filter SYN --segmenter SEGMENTER.pt --real TILES -o OUT`` (:func:`filter_tileset`):

1. a segmenter trained on real data only (``segmenter.pt`` from ``rsaug evaluate``, or trained here with a named
   preset on the ``train`` split of TILES, seeded) computes the per-pixel cross-entropy of every real training
   pixel; the mean per class is that class's reference loss ``L_k``;
2. every labelled synthetic pixel of class ``k`` whose cross-entropy exceeds ``margin * L_k`` (FreeMask: 1.25) is
   set to the ignore value 255; unknown pixels stay unknown (unknown regions of synthetic tiles are always
   ignored); classes without real training pixels have no reference loss and are kept;
3. the result is a new tile set in the tiler's format (same images, filtered masks, same tile ids and index with
   updated ``px_<class>`` / ``unknown_fraction`` columns and a ``filter_removed`` column), with provenance in
   ``tileset.json`` (``filtering``), ``filter_report.json`` (per-class reference loss, threshold, pixels removed
   and share removed) and the masks' GeoTIFF tags (``RSAUG_FILTER_SEGMENTER_SHA256``, ``RSAUG_FILTER_MARGIN``).

With ``align`` (``--align mean-std|histogram``), the images are first aligned to the real training statistics
(:mod:`rsaug.synthesis.radiometry`), so a recipe can be applied to an already generated set; both steps can be
combined (the losses are then computed on the aligned images, the ones a downstream model sees).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError, option
from rsaug.core.files import atomic_path, clear_outputs, prepare_output_dir, remove_temporaries, write_json
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import quiet, select_device
from rsaug.gan.inference import file_sha256
from rsaug.io.tileset import DESCRIPTION_FILE, INDEX_FILE, TileSet, count_column, write_description, write_index
from rsaug.io.tileset import write_tile as _write_tile
from rsaug.segmentation import (
    TileArrays,
    TrainedSegmenter,
    check_segmenter_state,
    load_segmenter,
    load_tiles,
    preset,
    save_segmenter,
    train_segmenter,
)
from rsaug.synthesis.radiometry import RADIOMETRY_FILE, RadiometricAlignment, alignment_or_none

FILTER_REPORT = "filter_report.json"
SEGMENTER_FILE = "segmenter.pt"
DEFAULT_MARGIN = 1.25
TAG_PREFIX = "RSAUG_"
_OWN_OUTPUTS = ("images", "masks", INDEX_FILE, DESCRIPTION_FILE, FILTER_REPORT, SEGMENTER_FILE, RADIOMETRY_FILE)
_LIGHTNING_LOGGERS = ("lightning.pytorch", "lightning.fabric", "lightning.pytorch.utilities.rank_zero")


@dataclass
class FilterConfig:
    """Options of one ``rsaug filter`` run (recorded in ``filter_report.json`` and ``tileset.json``).

    Attributes:
        synthetic: The synthetic tile set filtered.
        real: The real tile set (reference losses and radiometry from its ``train`` split).
        margin: Pixels whose loss exceeds ``margin`` times their class's mean real loss are ignored; ``None``
            when no pixel filtering is done (alignment only).
        segmenter: The segmenter file used (for a trained one: ``OUT/segmenter.pt``).
        segmenter_sha256: SHA-256 of that file.
        segmenter_preset: Preset of a segmenter trained for this run, else ``None``.
        segmenter_iterations: Its optimizer steps (trained here), else ``None``.
        seed: Seed of a segmenter trained here.
        split: Split of the real tile set the reference losses are measured on.
        batch_size: Tiles per segmenter forward pass.
        radiometry: Summary of the radiometric alignment applied to the images, or ``None``.
        min_kept_share: Class gate: a class of which less than this share of the synthetic pixels passes the
            loss filter is ignored in every synthetic mask (0: off).
        dropped_classes: The classes the gate ignored.
    """

    synthetic: str
    real: str
    margin: float | None = DEFAULT_MARGIN
    segmenter: str | None = None
    segmenter_sha256: str | None = None
    segmenter_preset: str | None = None
    segmenter_iterations: int | None = None
    seed: int = 0
    split: str = "train"
    batch_size: int = 8
    radiometry: dict[str, Any] | None = None
    min_kept_share: float = 0.0
    dropped_classes: list[str] = field(default_factory=list)


@dataclass
class FilterResult:
    """Summary of a :func:`filter_tileset` run.

    Attributes:
        out: The new tile set.
        report: What ``filter_report.json`` holds.
        tiles: Tiles written.
        seconds: Wall time.
    """

    out: Path
    report: dict[str, Any]
    tiles: int
    seconds: float


# ---------------------------------------------------------------------------- losses
def pixel_losses(seg: TrainedSegmenter, images: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per-pixel cross-entropy of a segmenter on labelled tiles.

    Args:
        seg: A trained segmenter (its normalisation is applied).
        images: (B, C, H, W) or (C, H, W) images in their stored dtype.
        masks: (B, H, W) or (H, W) masks in the internal convention (255 = unknown).

    Returns:
        float32 (B, H, W) (or (H, W)) cross-entropy, NaN at unknown pixels.
    """
    single = np.asarray(images).ndim == 3
    x = torch.as_tensor(np.asarray(images))
    t = torch.as_tensor(np.asarray(masks).astype(np.int64))
    if single:
        x, t = x[None], t[None]
    x = seg.norm.apply(x)
    h, w = x.shape[-2:]
    ph, pw = (-h) % 32, (-w) % 32  # the U-Net needs sides divisible by 32 (as TrainedSegmenter.predict_tensor)
    if ph or pw:
        x = torch.nn.functional.pad(x, (0, pw, 0, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    seg.model.eval()
    with torch.no_grad():
        logits = seg.model(x.to(seg.device))[..., :h, :w].float().cpu()
    ce = torch.nn.functional.cross_entropy(logits, t, ignore_index=IGNORE, reduction="none")
    ce[t == IGNORE] = float("nan")
    out = ce.numpy().astype(np.float32)
    return out[0] if single else out


def class_mean_losses(
    seg: TrainedSegmenter, tiles: TileArrays, num_classes: int, batch_size: int = 8, reporter: Reporter | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Mean per-pixel cross-entropy of each class over labelled tiles (the real training split).

    Returns:
        ``(mean (K,), pixels (K,))``; the mean is NaN for classes without pixels.
    """
    sums = np.zeros(num_classes, np.float64)
    counts = np.zeros(num_classes, np.int64)
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, im in enumerate(tiles.images):
        groups.setdefault(im.shape, []).append(i)
    chunks = [idx[j : j + batch_size] for idx in groups.values() for j in range(0, len(idx), batch_size)]
    for part in reporter_or_silent(reporter).iterate(chunks, total=len(chunks), desc="real losses", unit="batch"):
        masks = np.stack([tiles.masks[i] for i in part])
        ce = pixel_losses(seg, np.stack([tiles.images[i] for i in part]), masks)
        lab = masks != IGNORE
        cls = masks[lab].astype(np.int64)
        sums += np.bincount(cls, weights=ce[lab].astype(np.float64), minlength=num_classes)
        counts += np.bincount(cls, minlength=num_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return mean, counts


def filter_mask(mask: np.ndarray, losses: np.ndarray, thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ignore the labelled pixels whose loss exceeds their class's threshold.

    Args:
        mask: (H, W) internal mask.
        losses: (H, W) per-pixel loss (:func:`pixel_losses`).
        thresholds: (K,) per-class thresholds (NaN: the class is never filtered; -inf: always).

    Returns:
        ``(filtered mask, removed (H, W) bool)``; unknown pixels stay unknown.
    """
    lab = mask != IGNORE
    thr = np.where(np.isnan(thresholds), np.inf, thresholds)
    limit = np.full(mask.shape, np.inf)
    limit[lab] = thr[mask[lab].astype(np.int64)]
    removed = lab & (losses > limit)
    out = mask.copy()
    out[removed] = IGNORE
    return out, removed


# ---------------------------------------------------------------------------- the run
def _check_inputs(
    syn: TileSet,
    real: TileSet,
    out: Path,
    margin: float | None,
    batch_size: int,
    filtering: bool,
    min_kept_share: float = 0.0,
) -> None:
    """Validate the tile sets and options before anything is read in bulk or written."""
    if not (np.isfinite(min_kept_share) and 0.0 <= min_kept_share < 1.0):
        raise InputError(None, f"{option('min_kept_share')} must be in [0, 1), got {min_kept_share}")
    if min_kept_share > 0 and not filtering:
        raise InputError(
            None,
            f"{option('min_kept_share')} needs pixel filtering: give {option('segmenter')} or "
            f"{option('train_segmenter')}",
        )
    if batch_size < 1:
        raise InputError(None, f"{option('batch_size')} must be at least 1, got {batch_size}")
    if filtering and (margin is None or not np.isfinite(margin) or margin <= 0):
        raise InputError(None, f"{option('margin')} must be a number above 0, got {margin}")
    if real.synthetic:
        raise InputError(real.root, "the real tile set is a synthetic tile set")
    if not syn.scheme.same_classes(real.scheme):
        raise InputError(
            syn.root, f"class scheme {syn.scheme.name!r} differs from the real tile set's {real.scheme.name!r}"
        )
    if syn.bands != real.bands or np.dtype(syn.dtype) != np.dtype(real.dtype):
        raise InputError(
            syn.root,
            f"images are {syn.bands} x {syn.dtype}, the real tile set {real.root} has {real.bands} x {real.dtype}",
        )
    if len(syn.index) == 0:
        raise InputError(syn.root, "tile set has no tiles")
    for other in (syn.root, real.root):
        if out.resolve() == other.resolve():
            raise InputError(out, "the output must be a new directory, not an input tile set")


def _read_tile(path: Path) -> tuple[np.ndarray, dict[str, str], Any, Any]:
    """A tile's pixels, tags, CRS and transform."""
    try:
        with quiet(NotGeoreferencedWarning), rasterio.open(path) as src:
            return src.read(), dict(src.tags()), src.crs, src.transform
    except rasterio.errors.RasterioIOError as exc:
        problem = "file not found" if not path.exists() else f"cannot read raster: {exc}"
        raise InputError(path, problem) from None


def _train(real: TileSet, name: str, iterations: int | None, seed: int, device: torch.device, rep: Reporter) -> Any:
    """Train a real-only segmenter with a named preset (returns the segmenter and its config)."""
    cfg = preset(name)
    if iterations is not None:
        cfg.iterations = int(iterations)
    cfg.validate()
    rep.say(f"Training a U-Net on the real train split of {real.root} ({cfg.iterations} steps, preset {name}) ...")
    import lightning.pytorch  # noqa: F401  (imported first: it sets its loggers' levels on import)

    with quiet(messages=(".*val_dataloader.*",), modules=("lightning",), loggers=_LIGHTNING_LOGGERS):
        seg = train_segmenter(real, config=cfg, seed=seed, device=device, split="train", reporter=rep, desc="U-Net")
    return seg, cfg


def filter_tileset(
    synthetic: TileSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    real: TileSet | str | os.PathLike[str],
    segmenter: str | os.PathLike[str] | None = None,
    train_preset: str | None = None,
    segmenter_iterations: int | None = None,
    margin: float | None = DEFAULT_MARGIN,
    min_kept_share: float = 0.0,
    align: str = "none",
    align_per_class: bool = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    batch_size: int = 8,
    overwrite: bool = False,
    reporter: Reporter | None = None,
) -> FilterResult:
    """Write a filtered (and/or radiometrically aligned) copy of a synthetic tile set.

    Args:
        synthetic: The synthetic tile set (``rsaug synthesize`` output, or any tile set of the same scheme).
        out: New output directory (absent or empty, unless ``overwrite``).
        real: The real tile set; its ``train`` split gives the reference losses and radiometry.
        segmenter: Real-only segmenter file (``segmenter.pt`` of ``rsaug evaluate``).
        train_preset: Instead of ``segmenter``: train one with this preset (``cpu-small``, ``paper``) on the real
            ``train`` split with ``seed``; it is saved as ``OUT/segmenter.pt``.
        segmenter_iterations: Override of the preset's optimizer steps.
        margin: Loss margin (FreeMask: 1.25); pixels above ``margin`` x their class's mean real loss are ignored.
        min_kept_share: Class gate on top of the pixel filter: a class of which less than this share of the
            synthetic pixels passes is ignored in every synthetic mask, i.e. the classes the generator does not
            draw recognisably are left out of the synthetic data (0: off; needs a segmenter). Costs a second
            pass of the segmenter over the synthetic set.
        align: Radiometric alignment of the images: ``none``, ``mean-std`` or ``histogram``.
        align_per_class: Align class regions to the real pixels of that class.
        seed: Seed of a segmenter trained here.
        device: Torch device.
        batch_size: Tiles per segmenter forward pass.
        overwrite: Replace an earlier ``rsaug filter`` output in ``out``.
        reporter: Progress (``None``: silent).

    Returns:
        A :class:`FilterResult`.

    Raises:
        InputError: Bad margin, class gate or batch size, both or neither of ``segmenter``/``train_preset`` without an
            alignment, a missing/unreadable segmenter file or one of another class scheme or band count,
            incompatible tile sets, a non-empty output. Nothing is written before these checks pass.
    """
    t0 = time.perf_counter()
    rep = reporter_or_silent(reporter)
    out = Path(out)
    syn = synthetic if isinstance(synthetic, TileSet) else TileSet.open(synthetic)
    real_ts = real if isinstance(real, TileSet) else TileSet.open(real)
    if segmenter is not None and train_preset is not None:
        raise InputError(None, f"give either {option('segmenter')} or {option('train_segmenter')}, not both")
    filtering = segmenter is not None or train_preset is not None
    if not filtering and align == "none":
        raise InputError(
            None,
            f"nothing to do: give {option('segmenter')} or {option('train_segmenter')} (pixel filtering) "
            f"and/or {option('align')} (radiometric alignment)",
        )
    _check_inputs(syn, real_ts, out, margin, batch_size, filtering, min_kept_share)
    prepare_output_dir(
        out, overwrite=overwrite, resume=False, markers=(FILTER_REPORT, DESCRIPTION_FILE),
        resume_marker=FILTER_REPORT, what="filtered tile set",
    )  # fmt: skip
    dev = device if isinstance(device, torch.device) else select_device(str(device))
    seg: TrainedSegmenter | None = None
    seg_cfg = None
    if segmenter is not None:
        seg, state = load_segmenter(segmenter, dev)
        check_segmenter_state(state, syn, segmenter)
    elif train_preset is not None:
        preset(train_preset).validate()  # unknown preset: InputError before any work
        if segmenter_iterations is not None and segmenter_iterations < 1:
            raise InputError(None, f"{option('segmenter_iterations')} must be at least 1")
    alignment = alignment_or_none(real_ts, align, align_per_class, reporter=rep)
    if train_preset is not None:
        seg, seg_cfg = _train(real_ts, train_preset, segmenter_iterations, seed, dev, rep)

    thresholds = np.full(syn.scheme.num_classes, np.nan)
    real_mean = np.full(syn.scheme.num_classes, np.nan)
    real_pixels = np.zeros(syn.scheme.num_classes, np.int64)
    if seg is not None:
        rep.say(f"Reference losses on the real train split of {real_ts.root} ...")
        real_mean, real_pixels = class_mean_losses(
            seg, load_tiles(real_ts, ["train"], "real"), syn.scheme.num_classes, batch_size, rep
        )
        thresholds = float(margin) * real_mean  # type: ignore[arg-type]
    dropped: list[str] = []
    if seg is not None and min_kept_share > 0:
        before, removed = _loss_filter_counts(syn, seg, thresholds, alignment, batch_size, rep)
        kept = np.where(before > 0, 1.0 - removed / np.maximum(before, 1), 1.0)
        gate = (before > 0) & (kept < min_kept_share)
        dropped = [n for n, g in zip(syn.scheme.names, gate) if g]
        thresholds = np.where(gate, -np.inf, thresholds)  # every pixel of a dropped class is ignored
        if dropped:
            rep.say(f"Class gate (kept share < {min_kept_share:g}): ignoring {', '.join(dropped)}")

    # ---- output (everything above only read)
    if out.is_dir():
        clear_outputs(out, _OWN_OUTPUTS)
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)
    cfg = FilterConfig(
        synthetic=str(syn.root.resolve()),
        real=str(real_ts.root.resolve()),
        margin=float(margin) if filtering and margin is not None else None,
        seed=seed,
        batch_size=batch_size,
        radiometry=None if alignment is None else alignment.summary(),
        min_kept_share=float(min_kept_share),
        dropped_classes=dropped,
    )
    if seg is not None and train_preset is not None and seg_cfg is not None:
        save_segmenter(seg, out / SEGMENTER_FILE, syn.scheme, seg_cfg, {"tileset": str(real_ts.root), "seed": seed})
        cfg.segmenter, cfg.segmenter_preset = str(out / SEGMENTER_FILE), train_preset
        cfg.segmenter_iterations = seg_cfg.iterations
    elif segmenter is not None:
        cfg.segmenter = str(segmenter)
    if cfg.segmenter is not None:
        cfg.segmenter_sha256 = file_sha256(cfg.segmenter)
    if alignment is not None:
        write_json(out / RADIOMETRY_FILE, alignment.to_dict())

    index, before, removed = _process(syn, out, seg, thresholds, alignment, cfg, rep)
    report = _report(syn, cfg, real_mean, real_pixels, thresholds, before, removed, len(index))
    with quiet(UserWarning):  # pyogrio: no CRS for non-georeferenced sets
        write_index(out, index)
    write_json(out / FILTER_REPORT, report)
    _describe(syn, out, index, cfg, report)
    return FilterResult(out=out, report=report, tiles=len(index), seconds=time.perf_counter() - t0)


_Loaded = tuple[int, Any, np.ndarray, dict[str, str], np.ndarray, dict[str, str], Any, Any]


def _batches(syn: TileSet, alignment: RadiometricAlignment | None, batch_size: int) -> Iterator[list[_Loaded]]:
    """The synthetic tiles in batches: (position, index row, aligned image, tags, mask, tags, CRS, transform)."""
    rows = list(syn.index.iterrows())
    for i in range(0, len(rows), batch_size):
        loaded: list[_Loaded] = []
        for pos, row in rows[i : i + batch_size]:
            img, itags, crs, transform = _read_tile(syn.image_path(row))
            msk, mtags, _, _ = _read_tile(syn.mask_path(row))
            msk2 = msk[0]
            if img.shape[1:] != msk2.shape:
                raise InputError(syn.image_path(row), f"image {img.shape[1:]} and mask {msk2.shape} differ in size")
            if alignment is not None:
                img = alignment.apply(img, msk2)
            loaded.append((int(pos), row, img, itags, msk2, mtags, crs, transform))
        yield loaded


def _batch_losses(seg: TrainedSegmenter | None, loaded: list[_Loaded]) -> list[np.ndarray | None]:
    """Per-pixel losses of a batch of loaded tiles (``None`` each without a segmenter)."""
    if seg is None:
        return [None] * len(loaded)
    if len({x[2].shape for x in loaded}) == 1:
        return list(pixel_losses(seg, np.stack([x[2] for x in loaded]), np.stack([x[4] for x in loaded])))
    return [pixel_losses(seg, x[2], x[4]) for x in loaded]


def _loss_filter_counts(
    syn: TileSet,
    seg: TrainedSegmenter,
    thresholds: np.ndarray,
    alignment: RadiometricAlignment | None,
    batch_size: int,
    rep: Reporter,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class labelled and loss-filtered synthetic pixels (the class gate's first pass; nothing written)."""
    k = syn.scheme.num_classes
    before = np.zeros(k, np.int64)
    removed = np.zeros(k, np.int64)
    with rep.bar(total=len(syn.index), desc="class gate", unit="tile") as bar:
        for loaded in _batches(syn, alignment, batch_size):
            for x, ce in zip(loaded, _batch_losses(seg, loaded)):
                msk = x[4]
                assert ce is not None  # seg is given
                before += np.bincount(msk[msk != IGNORE].astype(np.int64), minlength=k)
                _, gone = filter_mask(msk, ce, thresholds)
                removed += np.bincount(msk[gone].astype(np.int64), minlength=k)
                bar.update(1)
    return before, removed


def _process(
    syn: TileSet,
    out: Path,
    seg: TrainedSegmenter | None,
    thresholds: np.ndarray,
    alignment: RadiometricAlignment | None,
    cfg: FilterConfig,
    rep: Reporter,
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Align and filter every tile; returns the new index and per-class labelled / removed pixel counts."""
    k = syn.scheme.num_classes
    index = syn.index.copy()
    before = np.zeros(k, np.int64)
    removed_k = np.zeros(k, np.int64)
    counts = np.zeros((len(index), k), np.int64)
    unknown = np.zeros(len(index), np.float64)
    removed_n = np.zeros(len(index), np.int64)
    bar = rep.bar(total=len(index), desc="filter", unit="tile")
    for loaded in _batches(syn, alignment, cfg.batch_size):
        losses = _batch_losses(seg, loaded)
        for (pos, row, img, itags, msk2, mtags, crs, transform), ce in zip(loaded, losses):
            lab = msk2 != IGNORE
            before += np.bincount(msk2[lab].astype(np.int64), minlength=k)
            new = msk2
            if ce is not None:
                new, gone = filter_mask(msk2, ce, thresholds)
                removed_k += np.bincount(msk2[gone].astype(np.int64), minlength=k)
                removed_n[pos] = int(gone.sum())
            crs_w = crs if syn.georeferenced else None
            tr_w = transform if syn.georeferenced else None
            if cfg.margin is not None:
                mtags = {
                    **mtags,
                    f"{TAG_PREFIX}FILTER_SEGMENTER_SHA256": str(cfg.segmenter_sha256),
                    f"{TAG_PREFIX}FILTER_MARGIN": str(cfg.margin),
                    f"{TAG_PREFIX}FILTER_REMOVED": str(int(removed_n[pos])),
                }
                if cfg.min_kept_share > 0:
                    mtags[f"{TAG_PREFIX}FILTER_MIN_KEPT_SHARE"] = str(cfg.min_kept_share)
                    mtags[f"{TAG_PREFIX}FILTER_DROPPED_CLASSES"] = ",".join(cfg.dropped_classes)
            _write_tile(out / row["mask"], new, crs=crs_w, transform=tr_w, is_mask=True, scheme=syn.scheme, tags=mtags)
            if alignment is not None:
                itags = {
                    **itags,
                    f"{TAG_PREFIX}ALIGN": alignment.config.method,
                    f"{TAG_PREFIX}ALIGN_PER_CLASS": str(alignment.config.per_class).lower(),
                }
                _write_tile(out / row["image"], img, crs=crs_w, transform=tr_w, tags=itags)
            else:  # images unchanged: the same file
                (out / row["image"]).parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(out / row["image"]) as tmp:
                    shutil.copyfile(syn.image_path(row), tmp)
            counts[pos] = np.bincount(new[new != IGNORE].astype(np.int64), minlength=k)
            unknown[pos] = float((new == IGNORE).mean())
            bar.update(1)
    bar.close()
    for j, name in enumerate(syn.scheme.names):
        index[count_column(name)] = counts[:, j]
    index["unknown_fraction"] = unknown
    index["filter_removed"] = removed_n
    if alignment is not None:
        index["align"] = alignment.config.method
    return index, before, removed_k


def _report(
    syn: TileSet,
    cfg: FilterConfig,
    real_mean: np.ndarray,
    real_pixels: np.ndarray,
    thresholds: np.ndarray,
    before: np.ndarray,
    removed: np.ndarray,
    tiles: int,
) -> dict[str, Any]:
    """``filter_report.json``: the options and, per class, the reference loss, threshold and pixels removed."""
    total_removed = int(removed.sum())
    classes = []
    for j, name in enumerate(syn.scheme.names):
        classes.append(
            {
                "name": name,
                "real_mean_loss": None if not np.isfinite(real_mean[j]) else float(real_mean[j]),
                "real_pixels": int(real_pixels[j]),
                "threshold": None if not np.isfinite(thresholds[j]) else float(thresholds[j]),
                "dropped_by_class_gate": name in cfg.dropped_classes,
                "pixels_before": int(before[j]),
                "pixels_removed": int(removed[j]),
                "pixels_after": int(before[j] - removed[j]),
                "share_removed": float(removed[j] / before[j]) if before[j] else 0.0,
                "share_of_removed": float(removed[j] / total_removed) if total_removed else 0.0,
            }
        )
    return {
        "config": asdict(cfg),
        "tiles": tiles,
        "pixels_labelled_before": int(before.sum()),
        "pixels_removed": total_removed,
        "share_removed": float(total_removed / before.sum()) if before.sum() else 0.0,
        "classes": classes,
    }


def _describe(syn: TileSet, out: Path, index: Any, cfg: FilterConfig, report: dict[str, Any]) -> None:
    """``tileset.json`` of the new set: the source description + what filtered / aligned it (written last)."""
    desc = {
        k: v
        for k, v in syn.description.items()
        if k not in ("format", "format_version", "rsaug_version", "index", "summary", "split_counts")
    }
    split_counts = {s: int((index["split"] == s).sum()) for s in ("train", "val", "test", "reserved")}
    counts = np.array([int(index[count_column(n)].sum()) for n in syn.scheme.names], dtype=np.float64)
    shares = counts / counts.sum() if counts.sum() else counts
    filtering = None
    if cfg.margin is not None:
        filtering = {
            "segmenter": cfg.segmenter,
            "segmenter_sha256": cfg.segmenter_sha256,
            "segmenter_preset": cfg.segmenter_preset,
            "margin": cfg.margin,
            "min_kept_share": cfg.min_kept_share,
            "dropped_classes": cfg.dropped_classes,
            "reference_split": cfg.split,
            "real": cfg.real,
            "share_removed": report["share_removed"],
            "share_removed_by_class": {c["name"]: c["share_removed"] for c in report["classes"]},
            "report_file": FILTER_REPORT,
        }
    desc.update(
        {
            "split_counts": split_counts,
            "derived_from": cfg.synthetic,
            "filtering": filtering,
            "radiometric_alignment": cfg.radiometry,
            "summary": {
                "tiles": len(index),
                "class_pixel_shares_after": dict(zip(syn.scheme.names, shares.tolist())),
            },
        }
    )
    write_description(out, desc)
