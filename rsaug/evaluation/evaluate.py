"""Generator quality in the layout of the paper's Table I (``rsaug evaluate``).

For each checkpoint, on the masks of the real test split of a tile set:

* **FID** between the real test tiles and one generated image per test mask (standard FID Inception, offline
  weights, :mod:`rsaug.evaluation.metrics`). Images go through the source dtype (``Generator.to_raster``) and then
  to RGB uint8: unchanged for uint8 tile sets, else a per-band 2nd/98th-percentile stretch fitted on the real test
  tiles and applied to real and generated tiles alike. The first three bands are used as RGB (``rgb_bands``).
* **Segmentation fidelity**: a U-Net trained on *real* training tiles (``--segmenter`` file, or trained on the
  fly with :func:`rsaug.segmentation.train_segmenter`) segments the generated images; mIoU / FWIoU / pixel accuracy
  against the masks they were generated from (unknown pixels ignored). The same U-Net on the real test tiles is
  reported as the reference row.
* **LPIPS diversity** (10 samples per mask, 10 random pairs per mask, AlexNet LPIPS) on the first
  ``diversity_masks`` test masks.
* **mCSD / mOCD** (one class's embedding resampled at a time, LPIPS inside / outside the class region) on the first
  ``csd_masks`` test masks; see :mod:`rsaug.evaluation.metrics` for the exact definition. Not defined (reported as
  ``null``) for generators without per-class noise.
* **Radiometry**: per-band mean and std of the generated images (after ``Generator.to_raster``, in the rasters'
  own units, DN) against the real test tiles, overall and per class (pixels where the mask says class k), the
  mean error (DN), the relative std error (%) and whether each is within 3 DN and 10 % (the target of issue 11);
  streaming sums over the images generated for FID, see :mod:`rsaug.evaluation.radiometry`.
* **Floors** (``fid_floor_split``, default ``train``): the same FID and radiometric figures for as many other
  real tiles in the place of generated ones: what a perfect generator would score at this set size.

Outputs in ``OUT``: ``evaluation.json`` (every number, config, provenance), ``evaluation.md`` and
``evaluation.html`` (the table, several checkpoints side by side; rendered by :mod:`rsaug.evaluation.tables`),
``evaluate_config.json`` and, when a U-Net was trained on the fly, ``segmenter.pt`` (reusable with ``--segmenter``).
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rsaug import __version__
from rsaug.core.errors import InputError, option
from rsaug.core.files import atomic_path, strict_json, write_json
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import quiet, select_device
from rsaug.evaluation.metrics import (
    REGION_MODES,
    class_specific_diversity,
    fid_from_features,
    inception_features,
    lpips_diversity,
)
from rsaug.evaluation.pretrained import LPIPS_NETS
from rsaug.evaluation.radiometry import PixelMoments, radiometry_report
from rsaug.evaluation.tables import html_report, markdown_table, summary_line
from rsaug.gan.inference import load_generator
from rsaug.io.normalization import percentile_range
from rsaug.io.tileset import TileSet
from rsaug.segmentation import (
    TileArrays,
    check_segmenter_state,
    confusion_matrix,
    load_segmenter,
    load_tiles,
    preset,
    save_segmenter,
    segmentation_scores,
    train_segmenter,
)
from rsaug.synthesis import check_compatible

RESULTS_FILE = "evaluation.json"
MARKDOWN_FILE = "evaluation.md"
HTML_FILE = "evaluation.html"
CONFIG_FILE = "evaluate_config.json"
SEGMENTER_FILE = "segmenter.pt"

#: Lightning's loggers silenced (raised to ERROR) while the U-Net trains.
_LIGHTNING_LOGGERS = (
    "lightning.pytorch",
    "lightning.fabric",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.fabric.utilities.rank_zero",
    "lightning",
)


@dataclass
class EvaluateConfig:
    """Options of an evaluation (saved as ``evaluate_config.json``).

    Attributes:
        tiles: Real tile set.
        checkpoints: Generator checkpoints (or run directories).
        labels: Display names, one per checkpoint (default: derived from the path).
        split: Split whose masks (and real tiles) are evaluated.
        max_tiles: Use at most this many tiles of the split (``None`` = all).
        diversity_masks: Masks used for LPIPS diversity.
        diversity_samples: Samples per mask for LPIPS diversity.
        diversity_pairs: Random pairs per mask for LPIPS diversity.
        csd_masks: Masks used for mCSD / mOCD.
        csd_min_pixels: A class counts in a mask for mCSD / mOCD only with at least this many pixels.
        region: Region restriction of mCSD / mOCD (``masked`` or ``spatial``, see :mod:`rsaug.evaluation.metrics`).
        lpips_net: LPIPS network (``alex`` or ``vgg``).
        segmenter: Trained U-Net file (``segmenter.pt``); ``None`` = train one on the real training split.
        segmenter_preset: Benchmark preset of the U-Net trained on the fly.
        segmenter_iterations: Override of the preset's optimizer steps.
        rgb_bands: Bands used as RGB for FID and LPIPS.
        batch_size: Masks per generator forward pass.
        seed: Seed of the noise, pair choice and on-the-fly U-Net.
        device: ``auto``, ``cpu``, ``cuda``...
        fid: Compute FID.
        segmentation: Compute segmentation fidelity.
        fid_floor_split: Split of TILES from which the floors' second real set is drawn (as many tiles as
            the evaluated split, seeded, disjoint from it). FID floor: FID between two real sets of that size, the
            value a perfect generator would get (FID on ~100 images is strongly biased upwards); every checkpoint
            also gets ``fid_minus_floor``. Radiometry floor: the radiometric figures of those real tiles against
            the evaluated ones (``reference.radiometry_floor``): how far two real sets of this size differ per
            band and class, below which no generator's error can be read as a fault. ``None``: no floors.
    """

    tiles: str
    checkpoints: list[str]
    labels: list[str] | None = None
    split: str = "test"
    max_tiles: int | None = None
    diversity_masks: int = 50
    diversity_samples: int = 10
    diversity_pairs: int = 10
    csd_masks: int = 20
    csd_min_pixels: int = 64
    region: str = "masked"
    lpips_net: str = "alex"
    segmenter: str | None = None
    segmenter_preset: str = "cpu-small"
    segmenter_iterations: int | None = None
    rgb_bands: list[int] = field(default_factory=lambda: [0, 1, 2])
    batch_size: int = 8
    seed: int = 0
    device: str = "auto"
    fid: bool = True
    segmentation: bool = True
    fid_floor_split: str | None = "train"

    def validate(self) -> None:
        """Raise :class:`InputError` for impossible values."""
        if not self.checkpoints:
            raise InputError(None, "give at least one checkpoint")
        if self.labels is not None and len(self.labels) != len(self.checkpoints):
            raise InputError(None, f"{len(self.labels)} labels for {len(self.checkpoints)} checkpoints")
        if self.max_tiles is not None and self.max_tiles < 2:
            raise InputError(None, f"max tiles must be at least 2 (FID needs 2 images), got {self.max_tiles}")
        for name in ("diversity_masks", "csd_masks", "csd_min_pixels", "diversity_pairs"):
            if getattr(self, name) < 0:
                raise InputError(None, f"{name.replace('_', ' ')} must be >= 0")
        if self.diversity_samples < 2:
            raise InputError(None, "diversity samples must be at least 2")
        if self.batch_size < 1:
            raise InputError(None, "batch size must be at least 1")
        if self.region not in REGION_MODES:
            raise InputError(None, f"region must be one of {', '.join(REGION_MODES)}, got {self.region!r}")
        if self.fid_floor_split is not None and self.fid_floor_split == self.split:
            raise InputError(
                None,
                f"{option('fid_floor_split')} must differ from the evaluated split ({self.split!r}): the floor "
                "compares two disjoint sets of real tiles",
            )
        if self.lpips_net not in LPIPS_NETS:
            raise InputError(None, f"LPIPS network must be one of {', '.join(LPIPS_NETS)}, got {self.lpips_net!r}")
        if len(self.rgb_bands) != 3 or min(self.rgb_bands) < 0:
            raise InputError(None, f"RGB bands must be three band indices, got {self.rgb_bands}")


# ------------------------------------------------------------------------------------------------ helpers
def checkpoint_label(path: str | os.PathLike[str]) -> str:
    """Default display name: the run directory's name (``RUN/checkpoints/x.ckpt`` -> ``RUN/x``)."""
    p = Path(path)
    if p.is_dir():
        return p.resolve().name
    if p.parent.name == "checkpoints":
        return f"{p.parent.parent.resolve().name}/{p.stem}"
    return p.stem


class RGB8:
    """Source-dtype tiles -> RGB uint8 for FID: identity for uint8, else a fixed per-band percentile stretch."""

    def __init__(self, dtype: str, rgb_bands: list[int], reference: list[np.ndarray]) -> None:
        self.bands = list(rgb_bands)
        self.uint8 = np.dtype(dtype) == np.uint8
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        if not self.uint8:
            stack = np.concatenate([im[self.bands].reshape(len(self.bands), -1) for im in reference], axis=1)
            stack = stack.astype(np.float64)
            # The one percentile fit. It differs from the former ``max(p98, p2 + 1e-6)`` only for a band with
            # 0 < p98 - p2 < 1e-6 (p98 is kept instead of p2 + 1e-6): immaterial for an 8-bit stretch.
            self.low, self.high = percentile_range(stack, min_width=1e-6)

    def __call__(self, images: np.ndarray) -> torch.Tensor:
        """(B, C, H, W) source-dtype array -> (B, 3, H, W) uint8 tensor."""
        x = images[:, self.bands]
        if self.uint8:
            return torch.from_numpy(np.ascontiguousarray(x))
        assert self.low is not None and self.high is not None  # fitted in __init__ for non-uint8 data
        lo = self.low[None, :, None, None]
        hi = self.high[None, :, None, None]
        y = np.clip((x.astype(np.float64) - lo) / (hi - lo) * 255.0, 0, 255)
        return torch.from_numpy(np.rint(y).astype(np.uint8))


def _batches(n: int, size: int) -> list[range]:
    return [range(i, min(n, i + size)) for i in range(0, n, size)]


# -------------------------------------------------------------------------------------------- evaluation
def evaluate(cfg: EvaluateConfig, out: str | os.PathLike[str], reporter: Reporter | None = None) -> dict[str, Any]:
    """Run an evaluation and write ``evaluation.json`` / ``.md`` / ``.html`` into ``out``.

    Args:
        cfg: Options.
        out: Output directory.
        reporter: Progress bars and status lines (``None``: silent).

    Returns:
        The results dictionary (the content of ``evaluation.json``).

    Raises:
        InputError: For missing / incompatible checkpoints, tile sets or segmenter files, or bad options.
    """
    rep = reporter_or_silent(reporter)
    cfg.validate()
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a directory")
    device = select_device(cfg.device)
    ts = TileSet.open(cfg.tiles)
    if max(cfg.rgb_bands) >= ts.bands:
        raise InputError(ts.root, f"tile set has {ts.bands} bands; RGB bands {cfg.rgb_bands} requested")
    names = ts.scheme.names

    # every checkpoint is checked before any long computation starts
    for ckpt in cfg.checkpoints:
        if not Path(ckpt).exists():
            raise InputError(ckpt, "checkpoint not found")
    gens = []
    for ckpt in cfg.checkpoints:
        gen = load_generator(ckpt, device=device)
        check_compatible(gen, ts, ckpt)
        gens.append(gen)
    labels = list(cfg.labels) if cfg.labels else [checkpoint_label(c) for c in cfg.checkpoints]
    if len(set(labels)) != len(labels):
        labels = [f"{lab} [{i + 1}]" for i, lab in enumerate(labels)]

    seg = None
    seg_state: dict[str, Any] = {}
    if cfg.segmentation and cfg.segmenter:
        seg, seg_state = load_segmenter(cfg.segmenter, device)
        check_segmenter_state(seg_state, ts, cfg.segmenter)

    test: TileArrays = load_tiles(ts, [cfg.split], cfg.split)
    if cfg.max_tiles is not None:
        test = TileArrays(
            test.name, test.images[: cfg.max_tiles], test.masks[: cfg.max_tiles], test.tile_ids[: cfg.max_tiles]
        )
    if cfg.fid and len(test) < 2:
        raise InputError(ts.root, f"split {cfg.split!r} has {len(test)} tile(s); FID needs at least 2")
    if cfg.fid_floor_split is not None and not (ts.index["split"] == cfg.fid_floor_split).any():
        raise InputError(
            ts.root,
            f"no {cfg.fid_floor_split!r} tiles for the FID and radiometry floors; choose another "
            f"{option('fid_floor_split')} or switch the floors off",
        )
    for _img, msk in zip(test.images, test.masks):
        ts.scheme.validate_internal(msk, ts.root)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / CONFIG_FILE, asdict(cfg))
    t_start = time.perf_counter()

    segmenter_info: dict[str, Any] | None = None
    if cfg.segmentation and seg is None:
        scfg = preset(cfg.segmenter_preset)
        if cfg.segmenter_iterations is not None:
            scfg.iterations = int(cfg.segmenter_iterations)
        rep.say(
            f"Training a U-Net on the real train split of {ts.root} ({scfg.iterations} steps, preset "
            f"{cfg.segmenter_preset}) for segmentation fidelity ..."
        )
        import lightning.pytorch  # noqa: F401  (imported first: it sets its loggers' levels on import)

        # Lightning's informational log lines and warnings are silenced while the U-Net trains (errors still show)
        with quiet(messages=(".*val_dataloader.*",), modules=("lightning",), loggers=_LIGHTNING_LOGGERS):
            seg = train_segmenter(
                ts, config=scfg, seed=cfg.seed, device=device, split="train", reporter=rep, desc="U-Net (real)"
            )
        save_segmenter(
            seg, out / SEGMENTER_FILE, ts.scheme, scfg, {"tileset": str(ts.root), "split": "train", "seed": cfg.seed}
        )
        segmenter_info = {
            "source": "trained",
            "file": str(out / SEGMENTER_FILE),
            "preset": cfg.segmenter_preset,
            **asdict(scfg),
            "train_info": {k: v for k, v in seg.info.items() if k != "loss_curve"},
        }
    elif seg is not None:
        segmenter_info = {
            "source": "file",
            "file": str(cfg.segmenter),
            **seg_state.get("segmenter_config", {}),
            "train_info": seg_state.get("info", {}),
        }

    k = ts.scheme.num_classes
    to_rgb8 = RGB8(ts.dtype, cfg.rgb_bands, test.images)
    chunks = _shape_chunks([m.shape for m in test.masks], cfg.batch_size)

    results: dict[str, Any] = {
        "format": "rsaug-evaluation",
        "rsaug_version": __version__,
        "tileset": str(ts.root),
        "scheme": ts.scheme.name,
        "class_names": names,
        "split": cfg.split,
        "tiles": len(test),
        "config": asdict(cfg),
        "segmenter": segmenter_info,
        "reference": {},
        "checkpoints": [],
    }

    # reference row: real test tiles
    real_feats: np.ndarray | None = None  # set iff cfg.fid
    n_div = min(cfg.diversity_masks, len(test))
    n_csd = min(cfg.csd_masks, len(test))
    per_ckpt = len(test) + n_div + n_csd
    total = len(test) + per_ckpt * len(gens)
    bar = rep.bar(total=total, desc="evaluate", unit="tile")
    try:
        bar.set_description("real test tiles")
        real_cm = np.zeros((k, k), dtype=np.int64)
        real_rad = PixelMoments(ts.bands, k)
        feats = []
        for idx in chunks:
            imgs = np.stack([test.images[i] for i in idx])
            masks = np.stack([test.masks[i] for i in idx])
            real_rad.add(imgs, masks)
            if cfg.fid:
                feats.append(inception_features([to_rgb8(imgs)], device))
            if seg is not None:
                real_cm += confusion_matrix(seg.predict(imgs), masks, k)
            bar.update(len(idx))
        results["reference"]["radiometry"] = {"units": f"DN ({ts.dtype})", **real_rad.to_dict(names)}
        if cfg.fid:
            real_feats = np.concatenate(feats)
        if cfg.fid_floor_split is not None:
            bar.set_description(f"floors ({cfg.fid_floor_split} tiles)")
            floor = _floor_draw(ts, cfg, len(test))
            floor_rad = PixelMoments(ts.bands, k)
            for img, msk in zip(floor.images, floor.masks):
                floor_rad.add(img, msk)
            results["reference"]["radiometry_floor"] = {
                "split": cfg.fid_floor_split,
                "tiles": len(floor),
                "evaluated_tiles": len(test),
                **radiometry_report(real_rad, floor_rad, names, ts.dtype),
            }
            if real_feats is not None:
                results["reference"]["fid_floor"] = _fid_floor(floor, cfg, len(test), real_feats, to_rgb8, device)
        if seg is not None:
            results["reference"]["segmentation"] = segmentation_scores(real_cm, names)
            results["reference"]["confusion_matrix"] = real_cm.tolist()

        for ci, (gen, label, ckpt) in enumerate(zip(gens, labels, cfg.checkpoints)):
            t0 = time.perf_counter()
            bar.set_description(f"{label}: generate")
            notes: list[str] = []
            cm = np.zeros((k, k), dtype=np.int64)
            gen_rad = PixelMoments(ts.bands, k)
            feats = []
            for idx in chunks:
                masks = np.stack([test.masks[i] for i in idx])
                noise = gen.sample_noise(len(idx), seed=_chunk_seed(cfg.seed, idx[0]))
                with torch.inference_mode():
                    fake = gen.generate(masks, noise=noise, seed=_chunk_seed(cfg.seed, idx[0]))
                raster = gen.to_raster(fake)
                gen_rad.add(raster, masks)
                if cfg.fid:
                    feats.append(inception_features([to_rgb8(raster)], device))
                if seg is not None:
                    cm += confusion_matrix(seg.predict(raster), masks, k)
                bar.update(len(idx))
            entry: dict[str, Any] = {
                "label": label,
                "checkpoint": str(ckpt),
                "checkpoint_sha256": gen.checkpoint_sha256,
                "model": gen.config.model,
                "step": gen.step,
                "ema": gen.ema,
                "has_noise": gen.has_noise,
            }
            entry["fid"] = fid_from_features(real_feats, np.concatenate(feats)) if real_feats is not None else None
            floor = results["reference"].get("fid_floor")
            entry["fid_minus_floor"] = entry["fid"] - floor["fid"] if floor and entry["fid"] is not None else None
            if seg is not None:
                entry["segmentation"] = segmentation_scores(cm, names)
                entry["confusion_matrix"] = cm.tolist()
            entry["radiometry"] = radiometry_report(real_rad, gen_rad, names, ts.dtype)

            bar.set_description(f"{label}: LPIPS diversity")
            if n_div:
                div = lpips_diversity(
                    gen,
                    test.masks[:n_div],
                    samples=cfg.diversity_samples,
                    pairs=cfg.diversity_pairs,
                    seed=cfg.seed,
                    net=cfg.lpips_net,
                    rgb_bands=cfg.rgb_bands,
                    progress=bar.update,
                )
                entry["diversity"] = div.to_dict()
                if not gen.has_noise:
                    notes.append("generator has no noise input: its samples for one mask are identical")
            else:
                entry["diversity"] = None

            bar.set_description(f"{label}: mCSD/mOCD")
            entry["class_diversity"] = None
            if n_csd and gen.has_noise:
                try:
                    cd = class_specific_diversity(
                        gen,
                        test.masks[:n_csd],
                        num_classes=k,
                        seed=cfg.seed,
                        net=cfg.lpips_net,
                        min_pixels=cfg.csd_min_pixels,
                        region=cfg.region,
                        rgb_bands=cfg.rgb_bands,
                        progress=bar.update,
                    )
                    entry["class_diversity"] = cd.to_dict(names)
                except (InputError, ValueError) as exc:
                    notes.append(f"mCSD/mOCD not defined: {exc}")
                    bar.update(n_csd)
            else:
                if n_csd:
                    notes.append("mCSD/mOCD not defined: generator has no per-class noise")
                bar.update(n_csd)
            entry["notes"] = notes
            entry["seconds"] = round(time.perf_counter() - t0, 2)
            results["checkpoints"].append(entry)
            rep.say(f"[{ci + 1}/{len(gens)}] {label}: " + summary_line(entry))
    finally:
        bar.close()
    results["seconds"] = round(time.perf_counter() - t_start, 2)
    results = strict_json(results)
    write_json(out / RESULTS_FILE, results)
    with atomic_path(out / MARKDOWN_FILE) as tmp:
        tmp.write_text(markdown_table(results))
    with atomic_path(out / HTML_FILE) as tmp:
        tmp.write_text(html_report(results))
    return results


def _floor_draw(ts: TileSet, cfg: EvaluateConfig, n: int) -> TileArrays:
    """The floors' real tiles: a seeded choice of ``n`` tiles of ``cfg.fid_floor_split`` (fewer when that split
    is smaller, which the results record), disjoint from the evaluated split."""
    assert cfg.fid_floor_split is not None
    other = load_tiles(ts, [cfg.fid_floor_split], cfg.fid_floor_split)
    pick = np.sort(np.random.default_rng([cfg.seed, 11]).permutation(len(other))[:n])
    for i in pick:
        ts.scheme.validate_internal(other.masks[i], ts.root)
    return other.select(pick.tolist())


def _fid_floor(
    floor: TileArrays, cfg: EvaluateConfig, evaluated: int, real_feats: np.ndarray, to_rgb8: Any, device: Any
) -> dict[str, Any]:
    """FID between the evaluated real tiles (their Inception features ``real_feats``) and the floor's real tiles
    (:func:`_floor_draw`): what a perfect generator would score on sets of this size."""
    images = floor.images
    feats = [
        inception_features([to_rgb8(np.stack([images[i] for i in idx]))], device)
        for idx in _shape_chunks([im.shape for im in images], cfg.batch_size)
    ]
    fid = fid_from_features(real_feats, np.concatenate(feats))
    return {"fid": fid, "split": cfg.fid_floor_split, "tiles": len(images), "evaluated_tiles": evaluated}


def _shape_chunks(shapes: list[tuple[int, ...]], batch_size: int) -> list[list[int]]:
    """Indices grouped by array shape (stackable together), then cut into batches of at most ``batch_size``."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i, shape in enumerate(shapes):
        groups.setdefault(tuple(shape), []).append(i)
    return [idx[j : j + batch_size] for idx in groups.values() for j in range(0, len(idx), batch_size)]


def _chunk_seed(seed: int, first_index: int) -> int:
    return int((seed * 7_919 + first_index * 104_729 + 17) % (2**31 - 1))
