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
  accumulated confusion matrix (:mod:`rsaug.evaluation.metrics`), not from TorchGeo's micro-averaged logs.

Every run's result (confusion matrix, scores, timings, bookkeeping) is written atomically to
``OUT/runs/<arm>/seed<k>.json``; a re-run skips finished runs. :mod:`rsaug.benchmark.report` turns the run files into
``report.json``, CSVs, PNG plots and ``report.html``.

Python API::

    from rsaug.benchmark.runner import SegmenterConfig, train_segmenter
    seg = train_segmenter("TILES", config=SegmenterConfig(iterations=300), seed=0, device="cpu")
    pred = seg.predict(images_uint8)          # (B, C, H, W) source dtype -> (B, H, W) class indices
    cm = seg.confusion(test_tiles)            # K x K confusion matrix on a tile collection
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from rsaug.core.errors import InputError
from rsaug.core.files import read_json, write_json
from rsaug.benchmark import report as rep
from rsaug.benchmark.config import CONFIG_FILE, BenchmarkConfig
from rsaug.io.tileset import TileSet
from rsaug.segmentation import (
    Normalization,
    TileArrays,
    load_tiles,
    open_tileset,
    scores,
    train_segmenter,
)

RUNS_DIR = "runs"



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
    """Synthesize a tile set from a checkpoint for the real training masks (via :mod:`rsaug.synthesis.tilesets`).

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
    from rsaug.synthesis import tilesets as synthesis
    from rsaug.gan.inference import load_generator

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
        The report dictionary (see :func:`rsaug.benchmark.report.build_report`).

    Raises:
        InputError: Missing / incompatible tile sets, unknown arms, invalid protocol, or an output directory
            holding results of a different configuration. Nothing is written before these checks pass.
    """
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
