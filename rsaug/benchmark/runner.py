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
  accumulated confusion matrix (:mod:`rsaug.segmentation.scores`), not from TorchGeo's micro-averaged logs.

Every run's result (confusion matrix, scores, timings, bookkeeping) is written atomically to
``OUT/runs/<arm>/seed<k>.json``; a re-run skips finished runs. :mod:`rsaug.benchmark.report` turns the run files into
``report.json``, CSVs, PNG plots and ``report.html``. The arms themselves are defined in :mod:`rsaug.benchmark.arms`.

:func:`run_benchmark` is a list of steps: validate the inputs, synthesize sets from checkpoints, check the protocol
against what ``OUT`` already holds, load the tiles, train and evaluate every missing run, write the report.

Python API (the segmenter itself lives in :mod:`rsaug.segmentation`)::

    from rsaug.segmentation import SegmenterConfig, train_segmenter
    seg = train_segmenter("TILES", config=SegmenterConfig(iterations=300), seed=0, device="cpu")
    pred = seg.predict(images_uint8)          # (B, C, H, W) source dtype -> (B, H, W) class indices
    cm = seg.confusion(test_tiles)            # K x K confusion matrix on a tile collection
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from rsaug.benchmark.arms import Arm, from_sources, real_subset, resolve_arms, sweep_arms
from rsaug.benchmark.config import CONFIG_FILE, BenchmarkConfig
from rsaug.benchmark.report import build_report
from rsaug.core.errors import InputError, RunStopped, option
from rsaug.core.files import holds_outputs, read_json, write_json
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import StopRequest, stop_on_signals
from rsaug.gan.inference import load_generator
from rsaug.io.tileset import TileSet
from rsaug.segmentation import (
    SegmenterNormalization,
    TileArrays,
    load_tiles,
    open_tileset,
    scores,
    train_segmenter,
)
from rsaug.synthesis import PlanConfig, check_compatible, plan_synthesis, synthesize_tileset

RUNS_DIR = "runs"


@dataclass
class _Inputs:
    """The validated inputs of a benchmark.

    Attributes:
        real: The real tile set.
        syn_sets: Synthetic tile sets by name (the ones made from checkpoints are added by
            :func:`_prepare_synthetic`).
        checkpoints: Synthetic sets still to generate: name -> generator checkpoint.
        arms: The main arms.
        sweep: The arms of the size sweep and of the replace curve.
        test: The separate test tile set (``cfg.test_tiles``), if any.
    """

    real: TileSet
    syn_sets: dict[str, TileSet]
    checkpoints: dict[str, str]
    arms: list[Arm]
    sweep: list[Arm]
    test: TileSet | None = None


@dataclass
class _Sources:
    """Tiles held in memory for every run.

    Attributes:
        train: Real training tiles.
        test: Real test tiles (evaluation).
        norm: Input normalisation fitted on ``train`` (the same in every arm).
        synthetic: Training tiles of the synthetic sets used by the main arms, by name.
        val: Real validation tiles (``cfg.val_split``) when the segmenter validates during training.
    """

    train: TileArrays
    test: TileArrays
    norm: SegmenterNormalization
    synthetic: dict[str, TileArrays]
    val: TileArrays | None = None


def run_benchmark(
    cfg: BenchmarkConfig,
    out: str | os.PathLike[str],
    *,
    device: str = "auto",
    checkpoints: dict[str, str] | None = None,
    reporter: Reporter | None = None,
    max_runs: int | None = None,
) -> dict[str, Any]:
    """Run (or resume) a benchmark and write its report.

    Args:
        cfg: The benchmark configuration (synthetic sets made from ``checkpoints`` are added to ``cfg.synthetic``).
        out: Output directory (created; run results go to ``out/runs``).
        device: Training device.
        checkpoints: Synthetic sets to generate on the fly: name -> checkpoint (written to ``out/synthetic/<name>``).
        reporter: Progress bars and one-line status messages (``None``: silent).
        max_runs: Stop after training this many new runs (the report covers what is finished).

    Returns:
        The report dictionary (see :func:`rsaug.benchmark.report.build_report`).

    Raises:
        InputError: Missing / incompatible tile sets, unknown arms, invalid protocol, or an output directory
            holding results of a different configuration. Nothing is written before these checks pass.
        RunStopped: When a run's training stopped early (finished runs stay recorded).
    """
    rep = reporter_or_silent(reporter)
    out = Path(out)
    inputs = _validate_inputs(cfg, dict(checkpoints or {}))
    _prepare_synthetic(cfg, inputs, out, device=device, reporter=rep)
    key = _protocol_key(cfg, _fingerprints(inputs))
    _check_protocol(out, cfg, key, inputs)
    sources = _load_sources(cfg, inputs, rep)
    _run_pending(out, cfg, inputs, sources, key, device=device, reporter=rep, max_runs=max_runs)
    return _finish_report(out, cfg, inputs, sources)


def _validate_inputs(cfg: BenchmarkConfig, checkpoints: dict[str, str]) -> _Inputs:
    """Check the protocol, the real and synthetic tile sets, the checkpoints and the arms (nothing is written).

    Raises:
        InputError: For the first problem found.
    """
    cfg.segmenter.validate()
    if cfg.seeds < 1:
        raise InputError(None, f"seeds must be >= 1, got {cfg.seeds}")
    if cfg.synthetic_fraction is not None and not 0 < cfg.synthetic_fraction < 1:
        raise InputError(None, f"synthetic fraction must be in (0, 1), got {cfg.synthetic_fraction}")
    real = open_tileset(cfg.real)
    for split in ("train", cfg.test_split) if cfg.test_tiles is None else ("train",):
        if not (real.index["split"] == split).any():
            raise InputError(real.root, f"real tile set has no {split!r} tiles")
    if real.synthetic:
        raise InputError(real.root, "the real tile set is marked synthetic")
    _check_validation(cfg, real)
    clash = set(checkpoints) & set(cfg.synthetic)
    if clash:
        raise InputError(None, f"synthetic name(s) {sorted(clash)} given both as a tile set and as a checkpoint")
    for ck in checkpoints.values():
        if not Path(ck).exists():
            raise InputError(ck, "checkpoint not found")
    syn_sets: dict[str, TileSet] = {}
    for name, path in cfg.synthetic.items():
        ts = open_tileset(path)
        check_synthetic(real, ts, name)
        syn_sets[name] = ts
    arms = resolve_arms(cfg.arms, list(cfg.synthetic) + list(checkpoints))
    sweep = sweep_arms(arms, cfg.real_fractions, cfg.replace_fractions)
    test = None
    if cfg.test_tiles is not None:
        test = open_tileset(cfg.test_tiles)
        check_test_tiles(real, test, syn_sets)
    else:
        for name, ts in syn_sets.items():
            check_not_from_test(real, ts, name, cfg.test_split)
    return _Inputs(real=real, syn_sets=syn_sets, checkpoints=checkpoints, arms=arms, sweep=sweep, test=test)


def _check_validation(cfg: BenchmarkConfig, real: TileSet) -> None:
    """The validation split must exist when the segmenter validates, and must not be the evaluated split when
    it selects weights (model selection on validation data only, never on the test data).

    Raises:
        InputError: For an empty validation split or selection on the evaluated split.
    """
    seg = cfg.segmenter
    if seg.val_every <= 0:
        return
    if not cfg.val_split or not (real.index["split"] == cfg.val_split).any():
        raise InputError(
            real.root,
            f"real tile set has no {cfg.val_split!r} tiles for the validation curves and model selection "
            f"({option('val_split')}; {option('val_every')} 0 turns validation off)",
        )
    if seg.select == "best-val" and cfg.test_tiles is None and cfg.val_split == cfg.test_split:
        raise InputError(
            None,
            f"{option('val_split')} and {option('test_split')} are both {cfg.val_split!r}: selecting the weights "
            f"on the evaluated split is not allowed (use {option('select')} last, or another split)",
        )


def _prepare_synthetic(cfg: BenchmarkConfig, inputs: _Inputs, out: Path, *, device: str, reporter: Reporter) -> None:
    """Synthesize a tile set inside ``out/synthetic/<name>`` for every checkpoint (reused when complete) and add it
    to ``inputs.syn_sets`` and ``cfg.synthetic``."""
    for name, ck in inputs.checkpoints.items():
        target = out / "synthetic" / name
        reporter.say(f"synthesizing {name!r} from {ck} into {target}")
        generate_synthetic(inputs.real, ck, target, device=device, seed=cfg.first_seed, reporter=reporter)
        ts = TileSet.open(target)
        check_synthetic(inputs.real, ts, name)
        inputs.syn_sets[name] = ts
        cfg.synthetic[name] = str(target)


def _fingerprints(inputs: _Inputs) -> dict[str, str]:
    """Content fingerprints of the real and of every synthetic tile set (part of the protocol key)."""
    return {
        "real": _tileset_fingerprint(inputs.real),
        **{n: _tileset_fingerprint(t) for n, t in inputs.syn_sets.items()},
        **({"test-tiles": _tileset_fingerprint(inputs.test)} if inputs.test is not None else {}),
    }


def _check_protocol(out: Path, cfg: BenchmarkConfig, key: dict[str, Any], inputs: _Inputs) -> None:
    """Refuse an output directory holding results of another protocol, then (re)write ``benchmark_config.json``.

    Raises:
        InputError: When the saved protocol key differs from ``key``.
    """
    cfg_path = out / CONFIG_FILE
    if cfg_path.is_file():
        old = read_json(cfg_path)
        old_key = old.get("protocol_key")
        if old_key is not None and _protocol_mismatch(old_key, key):
            raise InputError(
                out,
                "holds results of a different benchmark protocol or data (differs in: "
                f"{', '.join(_protocol_mismatch(old_key, key))}); use another output directory",
            )
    write_json(
        cfg_path,
        {
            "config": cfg.to_dict(),
            "protocol_key": key,
            "arms": [asdict(a) for a in inputs.arms],
            "sweep_arms": [asdict(a) for a in inputs.sweep],
        },
    )


def _load_sources(cfg: BenchmarkConfig, inputs: _Inputs, reporter: Reporter) -> _Sources:
    """Read the real train / test tiles and the synthetic sets of the main arms into memory; fit the normalisation."""
    real = inputs.real
    reporter.say(f"loading tiles from {real.root}")
    train = load_tiles(real, ["train"], "real")
    if inputs.test is not None:
        reporter.say(f"loading test tiles from {inputs.test.root}")
        test = load_tiles(inputs.test, None, "test")
    else:
        test = load_tiles(real, [cfg.test_split], "test")
    val = load_tiles(real, [cfg.val_split], "val") if cfg.segmenter.val_every > 0 else None
    norm = SegmenterNormalization.fit(train, real.dtype)
    syn_tiles = {
        n: load_tiles(t, _synthetic_rows(t), n)
        for n, t in inputs.syn_sets.items()
        if any(a.synthetic == n for a in inputs.arms)
    }
    return _Sources(train=train, test=test, norm=norm, synthetic=syn_tiles, val=val)


def _run_pending(
    out: Path,
    cfg: BenchmarkConfig,
    inputs: _Inputs,
    sources: _Sources,
    key: dict[str, Any],
    *,
    device: str,
    reporter: Reporter,
    max_runs: int | None,
) -> None:
    """Train and evaluate every run without a result file (at most ``max_runs``), writing each result atomically.

    Seed-major order, main arms first, so an interrupted benchmark still has complete paired seeds.
    """
    seeds = cfg.seed_list()
    todo = [(s, a) for s in seeds for a in inputs.arms] + [(s, a) for s in seeds for a in inputs.sweep]
    done_before = sum(run_path(out, a.name, s).is_file() for s, a in todo)
    trained = 0
    with (
        stop_on_signals() as stop,
        reporter.bar(total=len(todo), initial=done_before, desc="benchmark", unit="run") as outer,
    ):
        for seed, arm in todo:
            path = run_path(out, arm.name, seed)
            if path.is_file():
                continue
            if max_runs is not None and trained >= max_runs:
                break
            if stop.requested:
                _stopped(out, stop, done_before + trained, len(todo), "")
            outer.set_postfix_str(f"{arm.name} seed {seed}")
            try:
                result = _run_one(arm, seed, cfg, inputs.real, sources, key, device=device, reporter=reporter)
            except RunStopped as exc:
                if not stop.requested:
                    raise
                _stopped(out, stop, done_before + trained, len(todo), f" ({arm.name} seed {seed}: {exc.problem})")
            write_json(path, result)
            trained += 1
            outer.update(1)
            sc = result["scores"]
            t = result["train"]
            val = (
                f", best val mIoU {t['best_val_miou']:.4f} at step {t['best_step']}, converged: {t['converged']}"
                if "val_curve" in t
                else ""
            )
            reporter.say(
                f"{arm.name} seed {seed}: mIoU {sc['miou']:.4f} FWIoU {sc['fwiou']:.4f} acc {sc['acc']:.4f} "
                f"({t['seconds']:.0f} s{val})"
            )


def _stopped(out: Path, stop: StopRequest, done: int, total: int, detail: str) -> NoReturn:
    """Raise the :class:`RunStopped` of a benchmark interrupted by a signal (finished runs stay recorded).

    Raises:
        RunStopped: Always, with exit code 128 + the signal number.
    """
    raise RunStopped(
        out,
        f"stopped by {stop.name} with {done} of {total} runs finished{detail}; their results are kept in runs/, "
        "run the same command again to continue",
        exit_code=stop.exit_code,
    )


def _training_tiles(
    arm: Arm, cfg: BenchmarkConfig, sources: _Sources
) -> tuple[TileArrays, TileArrays | None, float | None]:
    """What one arm trains on: ``(base tiles, extra tiles or None, share of draws from extra or None)``."""
    if arm.kind == "synthetic-only":
        assert arm.synthetic is not None  # synthetic-only arms always name their set (resolve_arms)
        return sources.synthetic[arm.synthetic], None, None
    train = sources.train
    base = train
    if arm.real_fraction < 1:
        base = train.select(real_subset(len(train), arm.real_fraction, cfg.first_seed).tolist())
    if arm.kind not in ("real+synthetic", "replace"):
        return base, None, cfg.synthetic_fraction
    assert arm.synthetic is not None  # real+synthetic and replace arms always name their set (resolve_arms)
    extra = sources.synthetic[arm.synthetic]
    if arm.kind == "replace":  # the synthetic tiles of the removed tiles' masks
        extra = from_sources(extra, set(train.tile_ids) - set(base.tile_ids), arm.synthetic)
    elif arm.real_fraction < 1:  # only the masks of the kept tiles
        extra = from_sources(extra, set(base.tile_ids), arm.synthetic)
    return base, extra, cfg.synthetic_fraction


def _run_one(
    arm: Arm,
    seed: int,
    cfg: BenchmarkConfig,
    real: TileSet,
    sources: _Sources,
    key: dict[str, Any],
    *,
    device: str,
    reporter: Reporter,
) -> dict[str, Any]:
    """Train one arm with one seed and evaluate it on the real test split.

    Returns:
        The run result (the content of ``runs/<arm>/seed<k>.json``).
    """
    base, extra, frac = _training_tiles(arm, cfg, sources)
    seg = train_segmenter(
        base,
        config=cfg.segmenter,
        seed=seed,
        device=device,
        extra=extra,
        extra_fraction=frac,
        recipe=arm.mix_recipe(),
        augment=arm.augment,
        norm=sources.norm,
        num_classes=real.scheme.num_classes,
        dtype=real.dtype,
        reporter=reporter,
        desc=f"{arm.name} s{seed}",
        val=sources.val,
    )
    t0 = time.perf_counter()
    cm = seg.confusion(sources.test, batch_size=cfg.segmenter.eval_batch_size)
    sc = scores(cm, real.scheme.names)
    return {
        "arm": arm.name,
        "kind": arm.kind,
        "synthetic": arm.synthetic,
        "seed": seed,
        "scores": {
            "miou": sc["miou"],
            "fwiou": sc["fwiou"],
            "acc": sc["acc"],
            "iou": sc["iou"],
            "class_pixels": sc["class_pixels"],
        },
        "confusion_matrix": cm.tolist(),
        "train": seg.info,
        "eval_seconds": time.perf_counter() - t0,
        "test_tiles": len(sources.test),
        **({"val_tiles": len(sources.val), "val_split": cfg.val_split} if sources.val is not None else {}),
        **({"test_set": str(cfg.test_tiles)} if cfg.test_tiles is not None else {}),
        "protocol_key": key,
        "real_fraction": arm.real_fraction,
        "train_tiles": {
            "real": 0 if arm.kind == "synthetic-only" else len(base),
            "synthetic": len(base) if arm.kind == "synthetic-only" else len(extra or []),
        },
    }


def _finish_report(out: Path, cfg: BenchmarkConfig, inputs: _Inputs, sources: _Sources) -> dict[str, Any]:
    """Collect the finished runs and write the report (:func:`rsaug.benchmark.report.build_report`)."""
    real, syn_sets = inputs.real, inputs.syn_sets
    runs = collect_runs(out, inputs.arms + inputs.sweep, cfg.seed_list())
    names = real.scheme.names
    counts = {"real": real.class_pixel_counts("train").tolist()}
    for n, t in syn_sets.items():
        rows = t.index if _synthetic_rows(t) is None else t.split("train")
        syn_counts = np.array([int(rows[f"px_{c}"].sum()) if f"px_{c}" in rows else 0 for c in names])
        counts[f"real+{n}"] = (np.asarray(counts["real"]) + syn_counts).tolist()
    return build_report(
        out,
        runs=runs,
        arms=[a.name for a in inputs.arms],
        class_names=names,
        class_counts=counts,
        palette=real.scheme.palette(),
        gallery=make_gallery(real, syn_sets),
        sweep=[asdict(a) for a in inputs.sweep],
        config={
            **cfg.to_dict(),
            "test_tiles": len(sources.test),
            "test_set": str(cfg.test_tiles) if cfg.test_tiles is not None else None,
            "val_tiles": len(sources.val) if sources.val is not None else 0,
            "train_tiles": len(sources.train),
            "sweep_arms": [a.name for a in inputs.sweep],
            "synthetic_tiles": {n: len(t) for n, t in sources.synthetic.items()},
        },
    )


def _check_matches_real(real: TileSet, other: TileSet, what: str) -> None:
    """``other`` (a synthetic or test tile set, named ``what`` in messages) must have the real set's classes,
    band count and dtype.

    Raises:
        InputError: Naming ``other`` and the mismatch.
    """
    if not other.scheme.same_classes(real.scheme):
        raise InputError(
            other.root,
            f"{what} has class scheme {other.scheme.name!r} "
            f"({other.scheme.num_classes} classes), the real tile set {real.root} has "
            f"{real.scheme.name!r} ({real.scheme.num_classes} classes)",
        )
    if other.bands != real.bands:
        raise InputError(other.root, f"{what} has {other.bands} bands, the real tile set has {real.bands}")
    if np.dtype(other.dtype) != np.dtype(real.dtype):
        raise InputError(other.root, f"{what} holds {other.dtype} images, the real tile set {real.dtype}")


def check_synthetic(real: TileSet, syn: TileSet, name: str) -> None:
    """A synthetic tile set must have the real set's classes, band count and dtype.

    Raises:
        InputError: Naming the synthetic set and the mismatch.
    """
    _check_matches_real(real, syn, f"synthetic set {name!r}")


def check_test_tiles(real: TileSet, test: TileSet, syn_sets: dict[str, TileSet]) -> None:
    """A separate test tile set must match the real set (scheme, bands, dtype) and share no scene with training.

    A tile of ``test`` leaks when its source scene (index column ``source_image``) also feeds training: the
    scene of any tile of ``real``'s ``train`` split, or of any tile of a synthetic set (its own ``source_image``
    and, through ``source_tile``, the scene of the real tile whose mask it was made from). Scenes are compared
    by file name (and so also by resolved path): scene files are named after their scene id, and a copy of a
    scene elsewhere is still the same scene.

    Raises:
        InputError: Naming the test set and the mismatch, or up to five leaking tiles and their scenes.
    """
    if test.synthetic:
        raise InputError(test.root, "the test tile set is marked synthetic; evaluate on real tiles")
    _check_matches_real(real, test, "test tile set")
    if len(test.index) == 0:
        raise InputError(test.root, "test tile set has no tiles")
    train_rows = real.index[real.index["split"] == "train"]
    scenes = _scene_names(train_rows)
    by_id = {str(r["tile_id"]): r for _, r in real.index.iterrows()}
    for syn in syn_sets.values():
        rows = syn.index if _synthetic_rows(syn) is None else syn.index[syn.index["split"] == "train"]
        scenes |= _scene_names(rows)
        if "source_tile" in rows.columns:  # the scenes of the real tiles whose masks were used
            for t in rows["source_tile"]:
                n = _scene_name(by_id[str(t)].get("source_image")) if str(t) in by_id else None
                if n is not None:
                    scenes.add(n)
    leaks = [
        (str(r["tile_id"]), _scene_name(r.get("source_image")))
        for _, r in test.index.iterrows()
        if _scene_name(r.get("source_image")) in scenes
    ]
    if leaks:
        shown = ", ".join(f"{t} (scene {s})" for t, s in leaks[:5])
        more = f" and {len(leaks) - 5} more" if len(leaks) > 5 else ""
        raise InputError(
            test.root,
            f"{len(leaks)} test tile(s) come from scenes that also feed training: {shown}{more}; "
            "evaluate on tiles of other scenes",
        )


def check_not_from_test(real: TileSet, syn: TileSet, name: str, test_split: str) -> None:
    """A synthetic set's training tiles must not be made from masks of the evaluated split of ``real``.

    Raises:
        InputError: Naming the synthetic set and up to five of its source tiles in ``test_split``.
    """
    rows = syn.index if _synthetic_rows(syn) is None else syn.index[syn.index["split"] == "train"]
    if "source_tile" not in rows.columns:
        return
    test_ids = set(real.index.loc[real.index["split"] == test_split, "tile_id"].astype(str))
    bad = sorted({str(t) for t in rows["source_tile"]} & test_ids)
    if bad:
        raise InputError(
            syn.root,
            f"synthetic set {name!r} was made from {len(bad)} mask(s) of the {test_split!r} split "
            f"(e.g. {', '.join(bad[:5])}): its labels leak into training",
        )


def _scene_name(value: Any) -> str | None:
    """The scene key of a ``source_image`` value: its file name (``None`` when not recorded)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or not str(value).strip():
        return None
    return Path(str(value)).name


def _scene_names(rows: Any) -> set[str]:
    """Scene keys (:func:`_scene_name`) of the ``source_image`` column of some index rows."""
    if "source_image" not in getattr(rows, "columns", []):
        return set()
    return {n for n in (_scene_name(v) for v in rows["source_image"]) if n is not None}


def _tileset_fingerprint(ts: TileSet) -> str:
    """Content hash of a tile set (first 16 hex digits): its class scheme and, tile by tile in ``tile_id`` order,
    the id, split and the pixels of image and mask.

    Only what a U-Net sees counts, so a tile set re-created with identical pixels (e.g. by the same seeded
    commands on a fresh machine) keeps its fingerprint, whatever the file timestamps, the GeoPackage's internals
    or the absolute source paths in the index; any changed pixel, split or class changes it.
    """
    h = hashlib.sha256()
    h.update(json.dumps([[c.name, c.value] for c in ts.scheme.classes]).encode())
    for _, row in ts.index.sort_values("tile_id").iterrows():
        h.update(f"{row['tile_id']}|{row['split']}|".encode())
        for arr in (ts.read_image(row), ts.read_mask(row)):
            h.update(f"{arr.dtype.str}{arr.shape}".encode())
            h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def _synthetic_rows(syn: TileSet) -> list[str] | None:
    """Splits of a synthetic set used for training (``train`` when present, else every tile)."""
    return ["train"] if (syn.index["split"] == "train").any() else None


def generate_synthetic(
    real: TileSet,
    checkpoint: str,
    out: Path,
    *,
    device: str = "auto",
    seed: int = 0,
    mode: str = "plain",
    reporter: Reporter | None = None,
) -> Path:
    """Synthesize a tile set from a checkpoint for the real training masks (via :mod:`rsaug.synthesis`).

    An existing complete output in ``out`` is reused (synthesis resumes where it stopped).

    Args:
        real: Real tile set.
        checkpoint: Generator checkpoint.
        out: Output directory of the synthetic tile set.
        device: Generation device.
        seed: Planner / generation seed.
        mode: Planner mode: ``plain`` (one sample per training mask, doubling the set as in the paper) or
            ``rare`` (what ``rsaug synthesize --double-rare-classes`` plans).
        reporter: Progress (``None``: silent).

    Returns:
        ``out``.

    Raises:
        InputError: For a missing or incompatible checkpoint.
    """
    if not Path(checkpoint).exists():
        raise InputError(checkpoint, "checkpoint not found")
    if (out / "tileset.json").is_file():
        return out
    gen = load_generator(checkpoint, device=device)
    check_compatible(gen, real, checkpoint)
    plan = plan_synthesis(real, PlanConfig(mode=mode, seed=seed))
    synthesize_tileset(real, gen, out, plan, checkpoint=checkpoint, resume=holds_outputs(out), reporter=reporter)
    return out


def run_path(out: Path, arm: str, seed: int) -> Path:
    """Result file of one run."""
    return out / RUNS_DIR / arm.replace("/", "_") / f"seed{seed}.json"


def _protocol_key(cfg: BenchmarkConfig, fps: dict[str, str]) -> dict[str, Any]:
    """What must match for results to be comparable: the training protocol (minus speed-only settings), the test
    split, the synthetic share and the data fingerprints."""
    seg = asdict(cfg.segmenter)
    for k in ("eval_batch_size", "num_workers", "threads"):
        seg.pop(k)
    for k, default in (
        ("decoder_channels", None),
        ("val_every", 0),
        ("select", "last"),
        ("channels_last", False),
        ("fused_adamw", False),
    ):
        if seg[k] == default:  # absent from keys written before these options existed
            seg.pop(k)
    key: dict[str, Any] = {
        "segmenter": seg,
        "test_split": cfg.test_split if cfg.test_tiles is None else None,
        "synthetic_fraction": cfg.synthetic_fraction,
        "data": fps,
    }
    if cfg.segmenter.val_every > 0:
        key["val_split"] = cfg.val_split
    if cfg.test_tiles is not None:
        key["test_tiles"] = fps.get("test-tiles")
    return key


def _protocol_mismatch(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Names of what differs between two protocol keys (empty when they match)."""
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


def collect_runs(
    out: str | os.PathLike[str], arms: Sequence[Arm] | None = None, seeds: Sequence[int] | None = None
) -> list[dict[str, Any]]:
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
            gallery.append(
                {
                    "tile_id": src,
                    "source": name,
                    "mask": syn.read_mask(by_src[src][0]),
                    "real": real.read_image(rr) if rr is not None else None,
                    "synthetic": [syn.read_image(r) for r in by_src[src][:3]],
                }
            )
    return gallery
