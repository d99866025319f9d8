"""Class-balanced synthesis: the planner, synthetic tile-set writing and whole-scene synthesis.

Three pieces, each usable from Python and behind ``rsaug synthesize``:

* :func:`plan_synthesis` decides which training masks to synthesize and how many samples of each
  (plain doubling as in the paper, ``--double-rare-classes``, or ``--vary-class``). It only reads the tile
  index (``px_<class>`` columns), is deterministic for a seed, and returns a :class:`SynthesisPlan`.
* :func:`synthesize_tileset` runs a plan with a generator (:func:`rsaug.gan.inference.load_generator`) and writes
  a synthetic tile set in exactly the tiler's format (``images/``, ``masks/``, ``index.gpkg``,
  ``tileset.json`` with ``synthetic: true``); each image keeps the CRS and transform of its source mask tile and
  carries its provenance in the index and in GeoTIFF tags. Batched, GeoTIFF writing overlapped with compute,
  resumable, atomic.
* :func:`synthesize_scene` turns one large mask raster into one seamless synthetic GeoTIFF on the mask's grid
  (overlapping windows blended with cosine feathering weights, the same class noise in every window).

The planner algorithm is documented in ``docs/synthesis.md``.
"""
from __future__ import annotations

import hashlib
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rsaug.core.classes import ClassScheme
from rsaug.core.errors import InputError
from rsaug.io.tileset import TileSet, count_column

PLAN_MODES = ("plain", "rare", "vary")


# ====================================================================== planner
@dataclass
class PlanConfig:
    """Options of the synthesis planner (saved inside every plan JSON).

    Attributes:
        mode: ``plain`` (every training mask, as in the paper: one sample each doubles the training set),
            ``rare`` (``--double-rare-classes``: choose masks so every rare class grows by ``factor``) or
            ``vary`` (``--vary-class``: masks containing ``vary_class``, ``samples_per_mask`` samples each).
        factor: Target growth factor. ``rare``: every rare class's pixel count is multiplied by at least
            ``factor``. ``plain`` without ``samples_per_mask``: the training set grows by ``factor``
            (``(factor - 1) * n`` samples spread evenly over the masks).
        rare_share: A class is rare when its pixel share in the training split is below this value; ``None``
            means below the median class share.
        samples_per_mask: ``plain``/``vary``: samples per mask (``plain`` default: from ``factor``; ``vary``
            default 4). Not allowed in ``rare`` mode (the planner chooses).
        max_samples_per_mask: ``rare``: most samples of one mask (default ``2 * ceil(factor - 1)``).
        split: Split whose masks are used (and whose class statistics define rarity).
        seed: Seed for tie-breaking / remainder distribution and for the per-sample generation seeds.
        allow_absent: ``rare``: classes with no pixel in the split are reported but not planned for
            (otherwise such a class makes the plan impossible).
        vary_class: Class name for ``vary`` mode.
        tile_ids: Restrict the plan to these source tiles (``None``: all tiles of the split).
    """

    mode: str = "plain"
    factor: float = 2.0
    rare_share: float | None = None
    samples_per_mask: int | None = None
    max_samples_per_mask: int | None = None
    split: str = "train"
    seed: int = 0
    allow_absent: bool = False
    vary_class: str | None = None
    tile_ids: list[str] | None = None


@dataclass
class SynthesisPlan:
    """Which masks to synthesize, how many samples each, and the class statistics before/after.

    Attributes:
        config: The options that produced the plan.
        class_names: Class names in internal order.
        counts_before: Per-class pixel counts of the split (real tiles only).
        counts_after: Per-class pixel counts of real + planned synthetic tiles.
        rare: Names of the classes treated as rare (``rare`` mode) or the varied class (``vary`` mode).
        threshold: Share below which a class is rare (``rare`` mode), else ``None``.
        absent: Classes with no pixel in the split.
        tiles: ``(tile_id, samples)`` pairs, in the order they are generated.
    """

    config: PlanConfig
    class_names: list[str]
    counts_before: list[int]
    counts_after: list[int]
    rare: list[str] = field(default_factory=list)
    threshold: float | None = None
    absent: list[str] = field(default_factory=list)
    tiles: list[tuple[str, int]] = field(default_factory=list)

    @property
    def total_samples(self) -> int:
        """Number of synthetic tiles the plan produces."""
        return int(sum(n for _, n in self.tiles))

    @property
    def shares_before(self) -> list[float]:
        """Per-class pixel shares before synthesis."""
        return _shares(self.counts_before)

    @property
    def shares_after(self) -> list[float]:
        """Per-class pixel shares of real + synthetic."""
        return _shares(self.counts_after)

    def growth(self) -> list[float]:
        """Per-class growth factor ``after / before`` (``inf`` for classes that were absent but appear)."""
        out = []
        for b, a in zip(self.counts_before, self.counts_after):
            out.append(a / b if b else (1.0 if a == 0 else math.inf))
        return out

    def samples(self) -> list[tuple[str, int, int]]:
        """Every planned sample as ``(source tile id, sample number, generation seed)``."""
        return [(tid, s, sample_seed(self.config.seed, tid, s)) for tid, n in self.tiles for s in range(n)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what ``plan.json`` holds)."""
        classes = []
        growth = self.growth()
        for i, name in enumerate(self.class_names):
            classes.append({
                "name": name, "pixels_before": int(self.counts_before[i]), "pixels_after": int(self.counts_after[i]),
                "share_before": self.shares_before[i], "share_after": self.shares_after[i],
                "growth": None if math.isinf(growth[i]) else growth[i],
                "rare": name in self.rare, "absent": name in self.absent,
            })
        return {
            "config": asdict(self.config), "threshold": self.threshold, "rare": self.rare, "absent": self.absent,
            "total_samples": self.total_samples, "masks_chosen": len(self.tiles), "classes": classes,
            "tiles": [{"tile_id": t, "samples": n} for t, n in self.tiles],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SynthesisPlan:
        """Inverse of :meth:`to_dict`."""
        return cls(
            config=PlanConfig(**data["config"]),
            class_names=[c["name"] for c in data["classes"]],
            counts_before=[int(c["pixels_before"]) for c in data["classes"]],
            counts_after=[int(c["pixels_after"]) for c in data["classes"]],
            rare=list(data.get("rare", [])), threshold=data.get("threshold"), absent=list(data.get("absent", [])),
            tiles=[(t["tile_id"], int(t["samples"])) for t in data["tiles"]],
        )

    def format_table(self) -> str:
        """Human-readable plan: per-class pixels and shares before/after, growth, masks and samples."""
        c = self.config
        head = {"plain": "plain (whole training split)", "rare": "double rare classes",
                "vary": f"vary class {c.vary_class!r}"}[c.mode]
        lines = [f"Synthesis plan: {head}, factor {c.factor:g}, split {c.split!r}, seed {c.seed}"]
        if c.mode == "rare":
            lines.append(f"rare = share below {self.threshold:.4f}"
                         + (" (median class share)" if c.rare_share is None else " (--rare-share)"))
        width = max(len(n) for n in self.class_names)
        lines.append(f"{'class':<{width}}  {'pixels before':>13}  {'share':>7}  {'pixels after':>13}  "
                     f"{'share':>7}  {'growth':>7}")
        g = self.growth()
        for i, n in enumerate(self.class_names):
            tag = " rare" if n in self.rare else (" absent" if n in self.absent else "")
            gs = "-" if self.counts_before[i] == 0 else f"x{g[i]:.2f}"
            lines.append(f"{n:<{width}}  {self.counts_before[i]:>13,}  {self.shares_before[i]:>7.2%}  "
                         f"{self.counts_after[i]:>13,}  {self.shares_after[i]:>7.2%}  {gs:>7}{tag}")
        hist: dict[int, int] = {}
        for _, n in self.tiles:
            hist[n] = hist.get(n, 0) + 1
        dist = ", ".join(f"{v} mask(s) x {k} sample(s)" for k, v in sorted(hist.items()))
        lines.append(f"masks chosen: {len(self.tiles)}; synthetic tiles: {self.total_samples}"
                     + (f" ({dist})" if dist else ""))
        return "\n".join(lines)


def _shares(counts: list[int]) -> list[float]:
    tot = float(sum(counts))
    return [float(c) / tot if tot else 0.0 for c in counts]


def sample_seed(seed: int, tile_id: str, sample: int) -> int:
    """Generation seed of one synthetic sample: a stable hash of (run seed, source tile, sample number).

    Independent of batching and of which other samples exist, so resumed and partial runs reproduce exactly.
    """
    h = hashlib.sha256(f"{int(seed)}:{tile_id}:{int(sample)}".encode()).digest()
    return int.from_bytes(h[:4], "little") & 0x7FFFFFFF


def pixel_matrix(index: pd.DataFrame, scheme: ClassScheme) -> np.ndarray:
    """Per-tile per-class pixel counts ``(n_tiles, K)`` from the index's ``px_<class>`` columns.

    Raises:
        InputError: If a count column is missing.
    """
    cols = [count_column(n) for n in scheme.names]
    missing = [c for c in cols if c not in index.columns]
    if missing:
        raise InputError(None, f"tile index lacks class pixel-count columns {missing}")
    return index[cols].to_numpy(dtype=np.int64) if len(index) else np.zeros((0, len(cols)), np.int64)


def plan_synthesis(
    tiles: TileSet | pd.DataFrame,
    config: PlanConfig | None = None,
    *,
    scheme: ClassScheme | None = None,
    **options: Any,
) -> SynthesisPlan:
    """Plan which masks to synthesize and how many samples of each.

    Args:
        tiles: A tile set, or a tile index (``tile_id``, ``split``, ``px_<class>`` columns) with ``scheme``.
        config: Planner options; alternatively pass :class:`PlanConfig` fields as keyword ``options``.
        scheme: Class scheme when ``tiles`` is an index.
        **options: :class:`PlanConfig` fields (used when ``config`` is ``None``).

    Returns:
        The plan; deterministic for ``config.seed``.

    Raises:
        InputError: Invalid options, an empty split, an unknown class name, or an impossible plan (a rare class
            with no pixels in any mask of the split).
    """
    cfg = config if config is not None else PlanConfig(**options)
    where: str | None = None
    if isinstance(tiles, TileSet):
        index, scheme, where = tiles.index, tiles.scheme, str(tiles.root)
    else:
        index = tiles
        if scheme is None:
            raise ValueError("scheme is required when planning from an index")
    _check_config(cfg)
    rows = index[index["split"] == cfg.split].reset_index(drop=True)
    if cfg.tile_ids:
        wanted = set(cfg.tile_ids)
        unknown = sorted(wanted - set(rows["tile_id"]))
        if unknown:
            raise InputError(where, f"tile id(s) not in split {cfg.split!r}: {', '.join(unknown[:10])}")
        rows = rows[rows["tile_id"].isin(wanted)].reset_index(drop=True)
    if len(rows) == 0:
        raise InputError(where, f"split {cfg.split!r} has no tiles")
    P = pixel_matrix(rows, scheme)
    before = P.sum(axis=0)
    names = scheme.names
    absent = [names[k] for k in range(len(names)) if before[k] == 0]
    ids = rows["tile_id"].astype(str).tolist()
    rng = np.random.default_rng(cfg.seed)
    priority = rng.permutation(len(rows))  # seeded tie-breaking, lower = preferred

    plan = SynthesisPlan(config=cfg, class_names=names, counts_before=before.tolist(),
                         counts_after=before.tolist(), absent=absent)
    if cfg.mode == "plain":
        samples = _plain_samples(len(rows), cfg, priority)
    elif cfg.mode == "vary":
        k = scheme.index_of(cfg.vary_class)  # InputError for unknown names
        if before[k] == 0:
            raise InputError(where, f"class {cfg.vary_class!r} has no pixels in split {cfg.split!r}: nothing to vary")
        n = cfg.samples_per_mask or 4
        samples = np.where(P[:, k] > 0, n, 0)
        plan.rare = [cfg.vary_class]
    else:
        samples, rare, threshold = _rare_samples(P, names, cfg, priority, where)
        plan.rare, plan.threshold = rare, threshold
    plan.tiles = [(ids[i], int(samples[i])) for i in range(len(rows)) if samples[i] > 0]  # index order
    plan.counts_after = (before + (samples[:, None] * P).sum(axis=0)).tolist()
    return plan


def _check_config(cfg: PlanConfig) -> None:
    if cfg.mode not in PLAN_MODES:
        raise InputError(None, f"unknown plan mode {cfg.mode!r}; use one of {', '.join(PLAN_MODES)}")
    if not (cfg.factor > 1.0) or not math.isfinite(cfg.factor):
        raise InputError(None, f"--factor must be a number above 1, got {cfg.factor}")
    if cfg.rare_share is not None and not 0.0 < cfg.rare_share < 1.0:
        raise InputError(None, f"--rare-share must be between 0 and 1, got {cfg.rare_share}")
    if cfg.samples_per_mask is not None and cfg.samples_per_mask < 1:
        raise InputError(None, f"--samples-per-mask must be at least 1, got {cfg.samples_per_mask}")
    if cfg.mode == "rare" and cfg.samples_per_mask is not None:
        raise InputError(None, "--samples-per-mask cannot be combined with --double-rare-classes (the planner "
                               "chooses the samples per mask; cap them with --max-samples-per-mask)")
    if cfg.mode == "vary" and not cfg.vary_class:
        raise InputError(None, "vary mode needs a class name")
    if cfg.max_samples_per_mask is not None and cfg.max_samples_per_mask < 1:
        raise InputError(None, f"--max-samples-per-mask must be at least 1, got {cfg.max_samples_per_mask}")


def _plain_samples(n: int, cfg: PlanConfig, priority: np.ndarray) -> np.ndarray:
    if cfg.samples_per_mask is not None:
        return np.full(n, cfg.samples_per_mask, dtype=np.int64)
    total = int(round((cfg.factor - 1.0) * n))
    base, rem = divmod(total, n)
    samples = np.full(n, base, dtype=np.int64)
    samples[np.argsort(priority, kind="stable")[:rem]] += 1  # seeded choice of the masks that get one more
    return samples


def _rare_samples(
    P: np.ndarray, names: list[str], cfg: PlanConfig, priority: np.ndarray, where: str | None
) -> tuple[np.ndarray, list[str], float]:
    """Greedy multi-cover: rare-pixel gain per common-pixel cost, then drop redundant samples."""
    before = P.sum(axis=0)
    shares = before / max(int(before.sum()), 1)
    present = before > 0
    if cfg.rare_share is not None:
        threshold = float(cfg.rare_share)
    else:
        threshold = float(np.median(shares[present] if cfg.allow_absent else shares))
    rare_mask = shares < threshold
    if cfg.allow_absent:
        rare_mask &= present
    impossible = [names[k] for k in np.flatnonzero(rare_mask & ~present)]
    if impossible:
        raise InputError(where, f"impossible plan: rare class(es) {', '.join(impossible)} have no pixels in any "
                                f"mask of split {cfg.split!r} (pass --allow-absent to plan without them)")
    rare = np.flatnonzero(rare_mask)
    n = P.shape[0]
    samples = np.zeros(n, dtype=np.int64)
    if rare.size == 0:
        return samples, [], threshold
    cap = cfg.max_samples_per_mask or 2 * max(1, math.ceil(cfg.factor - 1.0 - 1e-9))
    if cap < cfg.factor - 1.0 - 1e-9:
        raise InputError(None, f"--max-samples-per-mask {cap} is too small for --factor {cfg.factor:g}: a rare class "
                               f"found in a single mask needs at least {math.ceil(cfg.factor - 1 - 1e-9)} samples of it")
    need = np.ceil((cfg.factor - 1.0) * before[rare] - 1e-9).astype(np.int64)
    R = P[:, rare]                                   # rare pixels per mask
    common = P[:, ~rare_mask].sum(axis=1)            # common-class pixels per mask (the cost)
    remaining = need.copy().astype(np.float64)
    needf = need.astype(np.float64)
    tie = -priority.astype(np.float64)
    while (remaining > 0).any():
        avail = samples < cap
        gain = (np.minimum(R, remaining[None, :]) / needf[None, :]).sum(axis=1)
        gain[~avail] = 0.0
        if not (gain > 0).any():  # cannot happen when cap >= factor - 1, kept as a safeguard
            short = [names[rare[j]] for j in np.flatnonzero(remaining > 0)]
            raise InputError(where, f"impossible plan: not enough masks for {', '.join(short)} "
                                    f"with at most {cap} samples per mask")
        score = gain / (common + 1.0)
        best = np.lexsort((tie, score))[-1]          # highest score, ties by seeded priority
        samples[best] += 1
        remaining = np.maximum(remaining - R[best], 0.0)
    # pruning: drop samples whose removal keeps every rare class at its target, costliest first
    added = (samples[:, None] * R).sum(axis=0)
    for m in np.lexsort((priority, -common)):
        while samples[m] > 0 and np.all(added - R[m] >= need):
            samples[m] -= 1
            added = added - R[m]
    return samples, [names[k] for k in rare], threshold


def load_plan(path: str | os.PathLike[str]) -> SynthesisPlan:
    """Read a plan saved with :func:`save_plan`.

    Raises:
        InputError: If the file is missing or not a plan.
    """
    from rsaug.core.files import read_json

    try:
        return SynthesisPlan.from_dict(read_json(path))
    except FileNotFoundError:
        raise InputError(path, "plan file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a synthesis plan: {exc}") from None


def save_plan(plan: SynthesisPlan, path: str | os.PathLike[str]) -> Path:
    """Write a plan as JSON (atomically); returns the path."""
    from rsaug.core.files import write_json

    write_json(path, plan.to_dict())
    return Path(path)


# ====================================================================== synthetic tile sets
JOB_FILE = "synthesis.json"
PLAN_FILE = "plan.json"
TAG_PREFIX = "RSAUG_"
_OWN_OUTPUTS = ("images", "masks", "index.gpkg", "tileset.json", PLAN_FILE, JOB_FILE)


@dataclass
class SynthesisConfig:
    """Options of one synthetic tile-set run (saved as ``synthesis.json`` in the output).

    Attributes:
        tiles: Source tile-set directory.
        checkpoint: Generator checkpoint path.
        checkpoint_sha256: SHA-256 of the checkpoint file.
        plan: The planner options.
        batch_size: Masks per generator forward pass.
        writers: Threads writing GeoTIFFs while the generator computes the next batch.
        device: Torch device used.
        model: Generator model name (from the checkpoint config).
    """

    tiles: str
    checkpoint: str
    checkpoint_sha256: str
    plan: PlanConfig
    batch_size: int = 8
    writers: int = 2
    device: str = "cpu"
    model: str = ""

    def job_key(self) -> dict[str, Any]:
        """The fields that must match for ``--resume`` to continue a run."""
        return {"tiles": self.tiles, "checkpoint_sha256": self.checkpoint_sha256, "plan": asdict(self.plan)}


@dataclass
class SynthesisResult:
    """Summary of a synthetic tile-set run.

    Attributes:
        out: Output tile-set directory.
        plan: The plan that was run.
        generated: Tiles generated in this run.
        resumed: Tiles found complete from an earlier run and kept.
        seconds: Wall time of the generation loop (generation + writing).
        generator_seconds: Time spent inside the generator's forward pass (incl. ``to_raster``).
    """

    out: Path
    plan: SynthesisPlan
    generated: int
    resumed: int
    seconds: float
    generator_seconds: float

    @property
    def tiles_per_second(self) -> float:
        """End-to-end throughput of this run (generated tiles / wall time)."""
        return self.generated / self.seconds if self.seconds > 0 else 0.0


def synthetic_tile_id(source_tile: str, sample: int, vary_class: str | None = None) -> str:
    """Stable id of a synthetic tile: ``<source>_syn<sample>`` or ``<source>_vary-<class>_<sample>``."""
    return f"{source_tile}_vary-{vary_class}_{sample:03d}" if vary_class else f"{source_tile}_syn{sample:03d}"


def check_compatible(gen: Any, ts: TileSet, checkpoint: str | os.PathLike[str] | None = None) -> None:
    """Check that a generator fits a tile set (same classes, band count and dtype).

    Raises:
        InputError: Naming the checkpoint and the mismatch.
    """
    if not gen.scheme.same_classes(ts.scheme):
        raise InputError(checkpoint, f"checkpoint class scheme {gen.scheme.name!r} ({gen.scheme.num_classes} classes) "
                                     f"differs from tile set {ts.root} scheme {ts.scheme.name!r} "
                                     f"({ts.scheme.num_classes} classes)")
    if int(gen.out_bands) != ts.bands:
        raise InputError(checkpoint, f"checkpoint generates {gen.out_bands} bands, tile set {ts.root} has {ts.bands}")
    gdt = getattr(gen, "dtype", None)
    if gdt is not None and np.dtype(str(gdt)) != np.dtype(ts.dtype):
        raise InputError(checkpoint, f"checkpoint was trained on {gdt} images, tile set {ts.root} holds {ts.dtype}")


def prepare_output(out: Path, overwrite: bool, resume: bool, job: SynthesisConfig) -> str:
    """Check the output directory of a synthesis run; returns ``new``, ``resume`` or ``overwrite``.

    Raises:
        InputError: If it is a file, non-empty without ``overwrite``/``resume``, a different job on resume,
            or not an rsaug output on overwrite.
    """
    from rsaug.core.files import read_json

    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a directory")
    if not out.exists() or not any(out.iterdir()):
        return "new"
    job_path = out / JOB_FILE
    if resume:
        if not job_path.is_file():
            raise InputError(out, f"cannot resume: no {JOB_FILE} from an earlier rsaug synthesize run")
        try:
            old = read_json(job_path)
        except (OSError, ValueError) as exc:
            raise InputError(job_path, f"cannot read: {exc}") from None
        key = json_roundtrip(job.job_key())
        old_key = {"tiles": old.get("tiles"), "checkpoint_sha256": old.get("checkpoint_sha256"),
                   "plan": old.get("plan")}
        if old_key != key:
            diff = [k for k in key if key[k] != old_key[k]]
            raise InputError(out, f"cannot resume: the earlier run used different {', '.join(diff)}")
        return "resume"
    if overwrite:
        if not (job_path.exists() or (out / "tileset.json").exists()):
            raise InputError(out, "output directory is not empty and not an rsaug tile set; refusing to overwrite it")
        return "overwrite"
    raise InputError(out, "output directory is not empty; use --overwrite to replace it or --resume to continue "
                          "an interrupted run")


def json_roundtrip(obj: Any) -> Any:
    """``obj`` as it reads back from JSON (tuples become lists...)."""
    import json

    return json.loads(json.dumps(obj))


def _clear_output(out: Path) -> None:
    import shutil

    for name in _OWN_OUTPUTS:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def _repeat_noise(noise: Any, n: int) -> Any:
    if noise is None:
        return None
    return noise.expand(n, *noise.shape[1:]).contiguous() if noise.shape[0] == 1 else noise.repeat(
        n, *([1] * (noise.ndim - 1)))


def _cat_noise(parts: list[Any]) -> Any:
    import torch

    if not parts or parts[0] is None:
        return None
    return torch.cat(parts, dim=0)


def _generator_seed(seed: int) -> Any:
    import torch

    return torch.Generator().manual_seed(int(seed))


def sample_noise(gen: Any, seed: int) -> Any:
    """Noise of one sample (batch 1) drawn with ``seed``, or ``None`` for noise-free models."""
    return gen.sample_noise(1, seed=int(seed))


def _vary_noise(gen: Any, base: Any, class_index: int, seed: int) -> Any:
    try:
        return gen.resample_class(base, class_index, seed=int(seed))
    except ValueError as exc:
        raise InputError(None, f"--vary-class needs a generator with per-class noise: {exc}") from None


def synthesize_tileset(
    tiles: TileSet | str | os.PathLike[str],
    generator: Any,
    out: str | os.PathLike[str],
    plan: SynthesisPlan | None = None,
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    batch_size: int = 8,
    writers: int = 2,
    overwrite: bool = False,
    resume: bool = False,
    progress: bool = False,
    on_batch: Any = None,
) -> SynthesisResult:
    """Generate a synthetic tile set for a plan, in exactly the tiler's format.

    Every planned sample ``s`` of source tile ``t`` becomes ``images/<t>_syn<s>.tif`` (``_vary-<class>_<s>`` in
    vary mode) in the tile set's dtype and band order, plus ``masks/<id>.tif`` (a copy of the source mask), both
    with the CRS and transform of the source mask tile and provenance GeoTIFF tags (``RSAUG_SYNTHETIC``,
    ``RSAUG_CHECKPOINT_SHA256``, ``RSAUG_SEED``, ``RSAUG_RUN_SEED``, ``RSAUG_SOURCE_TILE``, ``RSAUG_SAMPLE``,
    ``RSAUG_VARY_CLASS``). The index adds ``source_tile``, ``sample``, ``seed``, ``checkpoint_sha256`` and
    ``vary_class`` columns; ``tileset.json`` says ``synthetic: true`` and records the run. Generation is batched;
    GeoTIFFs are written by a thread pool while the generator computes the next batch. Each sample's noise
    depends only on (seed, source tile, sample), so a resumed run produces exactly the same tiles.

    Args:
        tiles: Source tile set.
        generator: A loaded generator (:func:`rsaug.gan.inference.load_generator`).
        out: Output directory (absent or empty, unless ``overwrite``/``resume``).
        plan: The plan (default: plain doubling of the training split, seed 0).
        checkpoint: Checkpoint path (recorded in the description; for error messages).
        batch_size: Masks per forward pass.
        writers: GeoTIFF writer threads.
        overwrite: Replace an earlier rsaug output in ``out``.
        resume: Continue an interrupted run with the same tile set, checkpoint and plan.
        progress: Show a tqdm progress bar.
        on_batch: Optional callback ``(n_tiles, generator_seconds)`` after each batch (benchmarks).

    Returns:
        A :class:`SynthesisResult`.

    Raises:
        InputError: Incompatible checkpoint and tile set, missing source files, bad output directory, unknown
            class names. Nothing is written before these checks pass; the tile set's ``tileset.json`` and
            ``index.gpkg`` appear only when every tile is written.
    """
    import time
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import geopandas as gpd
    import torch
    from tqdm.auto import tqdm

    from rsaug.core.files import remove_temporaries, write_json
    from rsaug.io.tileset import read_raster, write_description, write_index, write_tile

    ts = tiles if isinstance(tiles, TileSet) else TileSet.open(tiles)
    out = Path(out)
    if plan is None:
        plan = plan_synthesis(ts, PlanConfig())
    if batch_size < 1:
        raise InputError(None, f"--batch-size must be at least 1, got {batch_size}")
    check_compatible(generator, ts, checkpoint)
    if plan.total_samples == 0:
        raise InputError(ts.root, "the plan is empty: nothing to synthesize (no rare class, or no mask selected)")
    cfg = plan.config
    vary_index = ts.scheme.index_of(cfg.vary_class) if cfg.mode == "vary" else None
    vary_name = cfg.vary_class if cfg.mode == "vary" else None
    rows = ts.index.set_index(ts.index["tile_id"].astype(str), drop=False)
    unknown = [t for t, _ in plan.tiles if t not in rows.index]
    if unknown:
        raise InputError(ts.root, f"plan names tiles not in this tile set: {', '.join(unknown[:5])}")
    missing = [ts.mask_path(rows.loc[t]) for t, _ in plan.tiles if not ts.mask_path(rows.loc[t]).is_file()]
    if missing:
        raise InputError(missing[0], f"source mask tile not found ({len(missing)} missing)")
    if vary_index is not None and plan.tiles:  # fail early for models without per-class noise
        _vary_noise(generator, sample_noise(generator, 0), vary_index, 1)
    sha = str(generator.checkpoint_sha256)
    job = SynthesisConfig(tiles=str(ts.root.resolve()), checkpoint=str(checkpoint or ""), checkpoint_sha256=sha,
                          plan=cfg, batch_size=batch_size, writers=writers,
                          device=str(getattr(generator, "device", "cpu")),
                          model=str(getattr(getattr(generator, "config", None), "model", "")))
    state = prepare_output(out, overwrite, resume, job)
    if state == "overwrite":
        _clear_output(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_temporaries(out)
    write_json(out / JOB_FILE, asdict(job))
    save_plan(plan, out / PLAN_FILE)

    # ---- the work list
    items = []
    for tid, s, sd in plan.samples():
        sid = synthetic_tile_id(tid, s, vary_name)
        items.append((tid, s, sd, sid))
    done = {sid for *_, sid in items
            if (out / "images" / f"{sid}.tif").is_file() and (out / "masks" / f"{sid}.tif").is_file()}
    todo = [it for it in items if it[3] not in done]

    def load_mask(tid: str) -> tuple[np.ndarray, Any, Any]:
        import rasterio

        path = ts.mask_path(rows.loc[tid])
        with _quiet_georef(), rasterio.open(path) as src:
            crs, transform = src.crs, (src.transform if ts.georeferenced else None)
        return read_raster(path)[0], crs, transform

    def load_batch(batch: list[Any]) -> dict[str, tuple[np.ndarray, Any, Any]]:
        return {tid: load_mask(tid) for tid in dict.fromkeys(it[0] for it in batch)}

    def shape_of(it: Any) -> tuple[int, int]:
        r = rows.loc[it[0]]
        if "height" in r.index and "width" in r.index:
            return int(r["height"]), int(r["width"])
        return load_mask(it[0])[0].shape

    def write_pair(arr: np.ndarray, m: tuple[np.ndarray, Any, Any], tid: str, s: int, sd: int, sid: str) -> None:
        mask, crs, transform = m
        tags = {f"{TAG_PREFIX}SYNTHETIC": "true", f"{TAG_PREFIX}CHECKPOINT_SHA256": sha,
                f"{TAG_PREFIX}SEED": str(sd), f"{TAG_PREFIX}RUN_SEED": str(cfg.seed),
                f"{TAG_PREFIX}SOURCE_TILE": tid, f"{TAG_PREFIX}SAMPLE": str(s),
                f"{TAG_PREFIX}VARY_CLASS": vary_name or "", f"{TAG_PREFIX}MODEL": job.model}
        crs_w = crs if ts.georeferenced else None
        write_tile(out / "masks" / f"{sid}.tif", mask, crs=crs_w, transform=transform, is_mask=True,
                   scheme=ts.scheme, tags=tags)
        write_tile(out / "images" / f"{sid}.tif", arr, crs=crs_w, transform=transform, tags=tags)

    base_noise: dict[str, Any] = {}
    t0 = time.perf_counter()
    gen_seconds = 0.0
    bar = tqdm(total=len(items), initial=len(items) - len(todo), disable=not progress, unit="tile",
               desc="synthesize")
    pending: list[Any] = []
    batches = list(_batches(todo, batch_size, shape_of))
    with ThreadPoolExecutor(max_workers=max(1, writers)) as pool, torch.inference_mode():
        reading = pool.submit(load_batch, batches[0]) if batches else None
        for bi, batch in enumerate(batches):
            loaded = reading.result()
            if bi + 1 < len(batches):  # read the next masks while this batch is generated
                reading = pool.submit(load_batch, batches[bi + 1])
            masks = []
            noises = []
            for tid, s, sd, _ in batch:
                masks.append(torch.from_numpy(loaded[tid][0].astype(np.int64)))
                if vary_index is None:
                    noises.append(sample_noise(generator, sd))
                else:
                    if tid not in base_noise:
                        base_noise[tid] = sample_noise(generator, sample_seed(cfg.seed, tid, -1))
                    noises.append(_vary_noise(generator, base_noise[tid], vary_index, sd))
            g0 = time.perf_counter()
            img = generator.generate(torch.stack(masks), noise=_cat_noise(noises))
            arrs = generator.to_raster(img)
            gen_seconds += time.perf_counter() - g0
            if on_batch is not None:
                on_batch(len(batch), time.perf_counter() - g0)
            while len(pending) > 2 * max(1, writers) * batch_size:  # back-pressure: bounded queue of writes
                pending.pop(0).result()
                bar.update(1)
            for arr, (tid, s, sd, sid) in zip(arrs, batch):
                pending.append(pool.submit(write_pair, np.ascontiguousarray(arr), loaded[tid], tid, s, sd, sid))
        for f in pending:
            f.result()
            bar.update(1)
    bar.close()
    seconds = time.perf_counter() - t0

    # ---- index and description (last: the tile set is complete only now)
    out_rows = []
    for tid, s, sd, sid in items:
        r = rows.loc[tid].copy()
        r["tile_id"] = sid
        r["image"] = f"images/{sid}.tif"
        r["mask"] = f"masks/{sid}.tif"
        r["synthetic"] = True
        r["source_tile"] = tid
        r["sample"] = int(s)
        r["seed"] = int(sd)
        r["checkpoint_sha256"] = sha
        r["vary_class"] = vary_name or ""
        out_rows.append(r)
    index = gpd.GeoDataFrame(out_rows, geometry="geometry", crs=ts.index.crs).reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # pyogrio: no CRS for non-georeferenced sets
        write_index(out, index)
    desc = {k: v for k, v in ts.description.items()
            if k not in ("format", "format_version", "rsaug_version", "index", "summary", "split_counts")}
    split_counts = {s: int((index["split"] == s).sum()) if len(index) else 0 for s in ("train", "val", "test",
                                                                                      "reserved")}
    desc.update({
        "synthetic": True, "split_counts": split_counts, "source_tileset": str(ts.root.resolve()),
        "synthesis": {**asdict(job), "total_samples": plan.total_samples, "plan_file": PLAN_FILE},
        "summary": {"tiles": len(index), "class_pixel_shares_after": dict(zip(plan.class_names,
                                                                               plan.shares_after))},
    })
    write_description(out, desc)
    return SynthesisResult(out=out, plan=plan, generated=len(todo), resumed=len(done), seconds=seconds,
                           generator_seconds=gen_seconds)


def _batches(items: list[Any], size: int, shape_of: Any) -> Any:
    """Consecutive batches of at most ``size`` items with the same mask shape."""
    batch: list[Any] = []
    shape = None
    for it in items:
        sh = shape_of(it)
        if batch and (len(batch) >= size or sh != shape):
            yield batch
            batch = []
        batch.append(it)
        shape = sh
    if batch:
        yield batch


class _quiet_georef:
    """Context manager silencing rasterio's NotGeoreferencedWarning."""

    def __enter__(self) -> None:
        import warnings

        from rasterio.errors import NotGeoreferencedWarning

        self._cm = warnings.catch_warnings()
        self._cm.__enter__()
        warnings.simplefilter("ignore", NotGeoreferencedWarning)

    def __exit__(self, *exc: Any) -> None:
        self._cm.__exit__(*exc)


# ====================================================================== whole-scene synthesis
@dataclass
class SceneConfig:
    """Options of whole-scene synthesis (saved as ``<output>.json`` next to the GeoTIFF).

    Attributes:
        mask: Mask raster path.
        checkpoint: Checkpoint path.
        checkpoint_sha256: SHA-256 of the checkpoint.
        window: Generator window size in pixels.
        overlap: Overlap of neighbouring windows in pixels (blended with cosine feathering weights).
        seed: Seed of the class noise (one draw, shared by every window).
        mask_values: ``scheme`` (raw values of the checkpoint's class scheme, like ``rsaug tile`` input) or
            ``internal`` (0..K-1, 255 = unknown, like rsaug's mask tiles).
        batch_size: Windows per forward pass.
    """

    mask: str
    checkpoint: str
    checkpoint_sha256: str
    window: int = 256
    overlap: int = 64
    seed: int = 0
    mask_values: str = "scheme"
    batch_size: int = 4


def window_starts(n: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``window`` px with at least ``overlap`` px overlap covering ``0..n``.

    The last window is aligned to the end; a dimension shorter than the window gets one window.
    """
    if n <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, n - window, step))
    starts.append(n - window)
    return sorted(set(starts))


def feather_weights(length: int, before: int, after: int) -> np.ndarray:
    """1-D blending weights of a window: a cosine ramp up over the ``before`` px shared with the previous
    window, 1 in the middle, a cosine ramp down over the ``after`` px shared with the next window.

    The ramps of two neighbours over the same ``L`` shared pixels are ``sin^2`` and ``cos^2`` of the same
    angle, so they sum to exactly 1: the blend is a partition of unity and seams are invisible.
    """
    w = np.ones(length, dtype=np.float64)
    if before > 0:
        i = np.arange(before)
        w[:before] = np.sin(0.5 * np.pi * (i + 0.5) / before) ** 2
    if after > 0:
        i = np.arange(after)
        w[length - after:] *= np.cos(0.5 * np.pi * (i + 0.5) / after) ** 2
    return w


def _axis_weights(starts: list[int], size: int, n: int) -> list[np.ndarray]:
    out = []
    for j, s in enumerate(starts):
        length = min(size, n)
        before = (starts[j - 1] + length - s) if j > 0 else 0
        after = (s + length - starts[j + 1]) if j + 1 < len(starts) else 0
        out.append(feather_weights(length, max(before, 0), max(after, 0)))
    return out


def synthesize_scene(
    mask: str | os.PathLike[str],
    generator: Any,
    out: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    window: int | None = None,
    overlap: int | None = None,
    seed: int = 0,
    mask_values: str = "scheme",
    batch_size: int = 4,
    overwrite: bool = False,
    progress: bool = False,
) -> Path:
    """Generate one seamless synthetic scene for a large mask raster, on the mask's grid.

    The mask is covered by overlapping windows (``window`` px, ``overlap`` px shared); every window is generated
    with the *same* noise (one draw per class, shared by all windows, so a class looks alike everywhere), and the
    windows are blended with cosine feathering weights (:func:`feather_weights`). Rows are processed top to
    bottom and written as soon as no later window touches them (windowed writes; memory grows with the scene
    width, not its height). The output GeoTIFF has the mask's CRS, transform, width and height, the
    generator's band count and source dtype, and provenance tags.

    Args:
        mask: Mask raster (GeoTIFF or any raster rasterio reads).
        generator: A loaded generator.
        out: Output GeoTIFF path (written atomically).
        checkpoint: Checkpoint path (provenance, messages).
        window: Window size (default: the generator's training crop size if known, else 256).
        overlap: Overlap in px (default: a quarter of the window).
        seed: Noise seed.
        mask_values: ``scheme`` (raw values of the checkpoint's scheme) or ``internal``.
        batch_size: Windows per forward pass.
        overwrite: Replace an existing output file.
        progress: Show a progress bar.

    Returns:
        The output path.

    Raises:
        InputError: Missing/unreadable mask, values outside the scheme, bad window/overlap, existing output.
    """
    import warnings

    import rasterio
    import torch
    from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
    from rasterio.windows import Window
    from tqdm.auto import tqdm

    from rsaug.core.files import atomic_path, write_json

    mask = Path(mask)
    out = Path(out)
    scheme = generator.scheme
    if mask_values not in ("scheme", "internal"):
        raise InputError(None, f"--mask-values must be 'scheme' or 'internal', got {mask_values!r}")
    if out.exists() and not overwrite:
        raise InputError(out, "output file exists; use --overwrite to replace it")
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(out, "whole-scene output must be a GeoTIFF (.tif)")
    if window is None:
        cfg = getattr(generator, "config", None)
        window = int(getattr(cfg, "crop_size", 0) or getattr(cfg, "size", 0) or 256)
    if overlap is None:
        overlap = window // 4
    if window < 16 or not 0 <= overlap < window:
        raise InputError(None, f"need window >= 16 and 0 <= overlap < window (got window {window}, overlap {overlap})")
    if batch_size < 1:
        raise InputError(None, f"--batch-size must be at least 1, got {batch_size}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            src = rasterio.open(mask)
    except RasterioIOError as exc:
        raise InputError(mask, "file not found" if not mask.exists() else f"cannot read raster: {exc}") from None

    with src:
        H, W = src.height, src.width
        ys = window_starts(H, window, overlap)
        xs = window_starts(W, window, overlap)
        wy = _axis_weights(ys, window, H)
        wx = _axis_weights(xs, window, W)
        wh, ww = min(window, H), min(window, W)

        def read_mask(r0: int, r1: int) -> np.ndarray:
            raw = src.read(1, window=Window(0, r0, W, r1 - r0))
            if mask_values == "scheme":
                return scheme.encode(raw, mask)
            scheme.validate_internal(raw, mask)
            return raw.astype(np.uint8)

        # validate the whole mask before creating any output (strip by strip)
        for r0 in range(0, H, 1024):
            read_mask(r0, min(H, r0 + 1024))

        noise = sample_noise(generator, seed)
        sha = str(generator.checkpoint_sha256)
        scfg = SceneConfig(mask=str(mask.resolve()), checkpoint=str(checkpoint or ""), checkpoint_sha256=sha,
                           window=window, overlap=overlap, seed=seed, mask_values=mask_values, batch_size=batch_size)
        profile = {"driver": "GTiff", "width": W, "height": H, "count": int(generator.out_bands),
                   "dtype": str(getattr(generator, "dtype", "uint8")), "compress": "deflate",
                   "tiled": True, "blockxsize": 256, "blockysize": 256, "BIGTIFF": "IF_SAFER"}
        if src.crs is not None:
            profile["crs"] = src.crs
            profile["transform"] = src.transform
        elif not src.transform.is_identity:
            profile["transform"] = src.transform
        tags = {f"{TAG_PREFIX}SYNTHETIC": "true", f"{TAG_PREFIX}CHECKPOINT_SHA256": sha,
                f"{TAG_PREFIX}SEED": str(seed), f"{TAG_PREFIX}SOURCE_MASK": str(mask.resolve()),
                f"{TAG_PREFIX}WINDOW": str(window), f"{TAG_PREFIX}OVERLAP": str(overlap)}
        C = int(generator.out_bands)
        bar = tqdm(total=len(ys) * len(xs), disable=not progress, unit="window", desc="scene")
        with atomic_path(out) as tmp, warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            with rasterio.open(tmp, "w", **profile) as dst, torch.inference_mode():
                acc0 = 0                                   # first scene row held in the accumulator
                acc = np.zeros((C, 0, W), np.float32)
                wsum = np.zeros((0, W), np.float32)
                for j, y0 in enumerate(ys):
                    y1 = y0 + wh
                    grow = y1 - (acc0 + acc.shape[1])
                    if grow > 0:
                        acc = np.concatenate([acc, np.zeros((C, grow, W), np.float32)], axis=1)
                        wsum = np.concatenate([wsum, np.zeros((grow, W), np.float32)], axis=0)
                    strip = read_mask(y0, y1)
                    for b0 in range(0, len(xs), batch_size):
                        bx = xs[b0:b0 + batch_size]
                        labels = torch.from_numpy(np.stack([strip[:, x:x + ww] for x in bx]).astype(np.int64))
                        img = generator.generate(labels, noise=_repeat_noise(noise, len(bx)))
                        img = img.detach().float().cpu().numpy()
                        for k, x in enumerate(bx):
                            wgt = np.outer(wy[j], wx[b0 + k]).astype(np.float32)
                            acc[:, y0 - acc0:y1 - acc0, x:x + ww] += img[k] * wgt
                            wsum[y0 - acc0:y1 - acc0, x:x + ww] += wgt
                        bar.update(len(bx))
                    final = ys[j + 1] if j + 1 < len(ys) else H   # rows no later window touches
                    n_final = final - acc0
                    if n_final > 0:
                        blended = acc[:, :n_final] / np.maximum(wsum[:n_final], 1e-12)
                        arr = generator.to_raster(torch.from_numpy(blended[None].astype(np.float32)))[0]
                        dst.write(np.asarray(arr), window=Window(0, acc0, W, n_final))
                        acc = acc[:, n_final:]
                        wsum = wsum[n_final:]
                        acc0 = final
                dst.update_tags(**tags)
        bar.close()
    write_json(out.with_suffix(".json"), asdict(scfg))
    return out
