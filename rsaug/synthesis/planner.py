"""The class-balancing planner: which training masks to synthesize and how many samples of each.

:func:`plan_synthesis` supports plain doubling as in the paper (``plain``), growing every rare class by a
factor (``rare``, ``rsaug synthesize --double-rare-classes``) and resampling one class's noise (``vary``,
``--vary-class``). It only reads the tile index (``px_<class>`` columns), is deterministic for a seed, and
returns a :class:`SynthesisPlan` (saved as ``plan.json`` with :func:`save_plan`). The algorithm is documented in
``docs/synthesis.md``.
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
from rsaug.core.errors import InputError, option
from rsaug.core.files import read_json, write_json
from rsaug.io.tileset import TileSet, count_column

PLAN_MODES = ("plain", "rare", "vary", "hard")
#: Default ``max_samples_per_mask`` of ``hard`` mode.
HARD_MAX_SAMPLES = 4


@dataclass
class PlanConfig:
    """Options of the synthesis planner (saved inside every plan JSON).

    Attributes:
        mode: ``plain`` (every training mask, as in the paper: one sample each doubles the training set),
            ``rare`` (``--double-rare-classes``: choose masks so every rare class grows by ``factor``) or
            ``vary`` (``--vary-class``: masks containing ``vary_class``, ``samples_per_mask`` samples each) or
            ``hard`` (``--hard-classes-from``: every mask, 1 to ``max_samples_per_mask`` samples growing with its
            hardness score, from the real-only segmenter's per-class IoU ``class_iou``).
        factor: Target growth factor. ``rare``: every rare class's pixel count is multiplied by at least
            ``factor``. ``plain`` without ``samples_per_mask``: the training set grows by ``factor``
            (``(factor - 1) * n`` samples spread evenly over the masks).
        rare_share: A class is rare when its pixel share in the training split is below this value; ``None``
            means below the median class share.
        samples_per_mask: ``plain``/``vary``: samples per mask (``plain`` default: from ``factor``; ``vary``
            default 4). Not allowed in ``rare`` mode (the planner chooses).
        max_samples_per_mask: ``rare``: most samples of one mask (default ``2 * ceil(factor - 1)``); ``hard``:
            samples of the hardest mask (default :data:`HARD_MAX_SAMPLES`).
        split: Split whose masks are used (and whose class statistics define rarity).
        seed: Seed for tie-breaking / remainder distribution and for the per-sample generation seeds.
        allow_absent: ``rare``: classes with no pixel in the split are reported but not planned for
            (otherwise such a class makes the plan impossible).
        vary_class: Class name for ``vary`` mode.
        tile_ids: Restrict the plan to these source tiles (``None``: all tiles of the split).
        class_iou: ``hard``: per-class IoU of a segmenter trained on real data only (``None`` entries: unknown,
            e.g. a class absent from its evaluation split).
        hardness_source: ``hard``: where ``class_iou`` was measured (a segmenter file or a benchmark report).
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
    class_iou: list[float | None] | None = None
    hardness_source: str | None = None


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

    def hardness(self) -> list[float] | None:
        """``hard`` mode: per-class hardness ``1 - IoU`` (classes of unknown IoU: the mean of the known ones)."""
        if self.config.mode != "hard" or self.config.class_iou is None:
            return None
        return class_hardness_weights(self.config.class_iou).tolist()

    def samples(self) -> list[tuple[str, int, int]]:
        """Every planned sample as ``(source tile id, sample number, generation seed)``."""
        return [(tid, s, sample_seed(self.config.seed, tid, s)) for tid, n in self.tiles for s in range(n)]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (what ``plan.json`` holds)."""
        classes = []
        growth = self.growth()
        hardness = self.hardness()
        for i, name in enumerate(self.class_names):
            classes.append(
                {
                    "name": name,
                    "pixels_before": int(self.counts_before[i]),
                    "pixels_after": int(self.counts_after[i]),
                    "share_before": self.shares_before[i],
                    "share_after": self.shares_after[i],
                    "growth": None if math.isinf(growth[i]) else growth[i],
                    "rare": name in self.rare,
                    "absent": name in self.absent,
                }
            )
            if hardness is not None:
                iou = self.config.class_iou[i]  # type: ignore[index]
                classes[-1].update({"iou": None if iou is None else float(iou), "hardness": hardness[i]})
        return {
            "config": asdict(self.config),
            "threshold": self.threshold,
            "rare": self.rare,
            "absent": self.absent,
            "total_samples": self.total_samples,
            "masks_chosen": len(self.tiles),
            "classes": classes,
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
            rare=list(data.get("rare", [])),
            threshold=data.get("threshold"),
            absent=list(data.get("absent", [])),
            tiles=[(t["tile_id"], int(t["samples"])) for t in data["tiles"]],
        )

    def format_table(self) -> str:
        """Human-readable plan: per-class pixels and shares before/after, growth, masks and samples."""
        c = self.config
        head = {
            "plain": "plain (whole training split)",
            "rare": "double rare classes",
            "vary": f"vary class {c.vary_class!r}",
            "hard": f"hardness-aware (IoU from {c.hardness_source})",
        }[c.mode]
        lines = [f"Synthesis plan: {head}, factor {c.factor:g}, split {c.split!r}, seed {c.seed}"]
        if c.mode == "rare":
            lines.append(
                f"rare = share below {self.threshold:.4f}"
                + (" (median class share)" if c.rare_share is None else " (--rare-share)")
            )
        width = max(len(n) for n in self.class_names)
        lines.append(
            f"{'class':<{width}}  {'pixels before':>13}  {'share':>7}  {'pixels after':>13}  "
            f"{'share':>7}  {'growth':>7}"
        )
        g = self.growth()
        hard = self.hardness()
        for i, n in enumerate(self.class_names):
            tag = " rare" if n in self.rare else (" absent" if n in self.absent else "")
            if hard is not None:
                tag += f" hardness {hard[i]:.2f}"
            gs = "-" if self.counts_before[i] == 0 else f"x{g[i]:.2f}"
            lines.append(
                f"{n:<{width}}  {self.counts_before[i]:>13,}  {self.shares_before[i]:>7.2%}  "
                f"{self.counts_after[i]:>13,}  {self.shares_after[i]:>7.2%}  {gs:>7}{tag}"
            )
        hist: dict[int, int] = {}
        for _, samples in self.tiles:
            hist[samples] = hist.get(samples, 0) + 1
        dist = ", ".join(f"{v} mask(s) x {k} sample(s)" for k, v in sorted(hist.items()))
        lines.append(
            f"masks chosen: {len(self.tiles)}; synthetic tiles: {self.total_samples}" + (f" ({dist})" if dist else "")
        )
        return "\n".join(lines)


def _shares(counts: list[int]) -> list[float]:
    """Shares of ``counts`` in their sum (0 for an empty sum)."""
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

    plan = SynthesisPlan(
        config=cfg, class_names=names, counts_before=before.tolist(), counts_after=before.tolist(), absent=absent
    )
    if cfg.mode == "plain":
        samples = _plain_samples(len(rows), cfg, priority)
    elif cfg.mode == "vary":
        assert cfg.vary_class is not None  # _check_config: vary mode names its class
        k = scheme.index_of(cfg.vary_class)  # InputError for unknown names
        if before[k] == 0:
            raise InputError(where, f"class {cfg.vary_class!r} has no pixels in split {cfg.split!r}: nothing to vary")
        n = cfg.samples_per_mask or 4
        samples = np.where(P[:, k] > 0, n, 0)
        plan.rare = [cfg.vary_class]
    elif cfg.mode == "hard":
        if len(cfg.class_iou or []) != len(names):
            raise InputError(where, f"hard mode needs one IoU per class ({len(names)}), got {len(cfg.class_iou or [])}")
        samples = _hard_samples(P, cfg, rng)
    else:
        samples, rare, threshold = _rare_samples(P, names, cfg, priority, where)
        plan.rare, plan.threshold = rare, threshold
    plan.tiles = [(ids[i], int(samples[i])) for i in range(len(rows)) if samples[i] > 0]  # index order
    plan.counts_after = (before + (samples[:, None] * P).sum(axis=0)).tolist()
    return plan


def _check_config(cfg: PlanConfig) -> None:
    """Raise :class:`InputError` for invalid planner options."""
    if cfg.mode not in PLAN_MODES:
        raise InputError(None, f"unknown plan mode {cfg.mode!r}; use one of {', '.join(PLAN_MODES)}")
    if not (cfg.factor > 1.0) or not math.isfinite(cfg.factor):
        raise InputError(None, f"{option('factor')} must be a number above 1, got {cfg.factor}")
    if cfg.rare_share is not None and not 0.0 < cfg.rare_share < 1.0:
        raise InputError(None, f"{option('rare_share')} must be between 0 and 1, got {cfg.rare_share}")
    if cfg.samples_per_mask is not None and cfg.samples_per_mask < 1:
        raise InputError(None, f"{option('samples_per_mask')} must be at least 1, got {cfg.samples_per_mask}")
    if cfg.mode == "rare" and cfg.samples_per_mask is not None:
        raise InputError(
            None,
            f"{option('samples_per_mask')} cannot be combined with "
            f"{option('double_rare_classes')} (the planner chooses the samples per mask; cap "
            f"them with {option('max_samples_per_mask')})",
        )
    if cfg.mode == "hard" and cfg.samples_per_mask is not None:
        raise InputError(
            None,
            f"{option('samples_per_mask')} cannot be combined with {option('hard_classes_from')} (the planner "
            f"chooses 1 to {option('max_samples_per_mask')} samples per mask from its hardness)",
        )
    if cfg.mode == "hard" and cfg.class_iou is None:
        raise InputError(None, "hard mode needs the per-class IoU of a real-only segmenter")
    if cfg.mode == "vary" and not cfg.vary_class:
        raise InputError(None, "vary mode needs a class name")
    if cfg.max_samples_per_mask is not None and cfg.max_samples_per_mask < 1:
        raise InputError(None, f"{option('max_samples_per_mask')} must be at least 1, got {cfg.max_samples_per_mask}")


def _plain_samples(n: int, cfg: PlanConfig, priority: np.ndarray) -> np.ndarray:
    """Samples per mask in plain mode: ``samples_per_mask`` each, or ``factor`` spread evenly (seeded remainder)."""
    if cfg.samples_per_mask is not None:
        return np.full(n, cfg.samples_per_mask, dtype=np.int64)
    total = round((cfg.factor - 1.0) * n)
    base, rem = divmod(total, n)
    samples = np.full(n, base, dtype=np.int64)
    samples[np.argsort(priority, kind="stable")[:rem]] += 1  # seeded choice of the masks that get one more
    return samples


def class_hardness_weights(class_iou: list[float | None]) -> np.ndarray:
    """Per-class hardness ``1 - IoU`` clipped to ``[0, 1]``; unknown IoUs (``None``/NaN) get the mean hardness of
    the known classes (1 if none is known)."""
    iou = np.array([np.nan if v is None else float(v) for v in class_iou], dtype=np.float64)
    hard = np.clip(1.0 - iou, 0.0, 1.0)
    known = np.isfinite(hard)
    hard[~known] = float(hard[known].mean()) if known.any() else 1.0
    return hard


def mask_hardness(P: np.ndarray, class_iou: list[float | None]) -> np.ndarray:
    """Hardness score of every mask: ``sum_k share_mk * (1 - IoU_k)`` over its labelled pixels (FreeMask's
    class-wise loss weighting applied to whole masks); masks without labelled pixels score 0."""
    tot = P.sum(axis=1, keepdims=True).astype(np.float64)
    shares = np.divide(P, tot, out=np.zeros(P.shape, np.float64), where=tot > 0)
    return shares @ class_hardness_weights(class_iou)


def _hard_samples(P: np.ndarray, cfg: PlanConfig, rng: np.random.Generator) -> np.ndarray:
    """Samples per mask in ``hard`` mode: ``1 + (max - 1) * score / max score``, seeded stochastic rounding."""
    cap = cfg.max_samples_per_mask or HARD_MAX_SAMPLES
    score = mask_hardness(P, cfg.class_iou or [])
    top = float(score.max()) if score.size else 0.0
    rel = score / top if top > 0 else np.zeros_like(score)
    extra = (cap - 1) * rel
    base = np.floor(extra)
    frac = extra - base
    return (1 + base + (rng.random(len(score)) < frac)).astype(np.int64)


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
        raise InputError(
            where,
            f"impossible plan: rare class(es) {', '.join(impossible)} have no pixels in any "
            f"mask of split {cfg.split!r} (pass {option('allow_absent')} to plan without them)",
        )
    rare = np.flatnonzero(rare_mask)
    n = P.shape[0]
    samples = np.zeros(n, dtype=np.int64)
    if rare.size == 0:
        return samples, [], threshold
    cap = cfg.max_samples_per_mask or 2 * max(1, math.ceil(cfg.factor - 1.0 - 1e-9))
    if cap < cfg.factor - 1.0 - 1e-9:
        raise InputError(
            None,
            f"{option('max_samples_per_mask')} {cap} is too small for {option('factor')} "
            f"{cfg.factor:g}: a rare class found in a single mask needs at least "
            f"{math.ceil(cfg.factor - 1 - 1e-9)} samples of it",
        )
    need = np.ceil((cfg.factor - 1.0) * before[rare] - 1e-9).astype(np.int64)
    R = P[:, rare]  # rare pixels per mask
    common = P[:, ~rare_mask].sum(axis=1)  # common-class pixels per mask (the cost)
    remaining = need.copy().astype(np.float64)
    needf = need.astype(np.float64)
    tie = -priority.astype(np.float64)
    while (remaining > 0).any():
        avail = samples < cap
        gain = (np.minimum(R, remaining[None, :]) / needf[None, :]).sum(axis=1)
        gain[~avail] = 0.0
        if not (gain > 0).any():  # cannot happen when cap >= factor - 1, kept as a safeguard
            short = [names[rare[j]] for j in np.flatnonzero(remaining > 0)]
            raise InputError(
                where, f"impossible plan: not enough masks for {', '.join(short)} with at most {cap} samples per mask"
            )
        score = gain / (common + 1.0)
        best = np.lexsort((tie, score))[-1]  # highest score, ties by seeded priority
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
    try:
        return SynthesisPlan.from_dict(read_json(path))
    except FileNotFoundError:
        raise InputError(path, "plan file not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"not a synthesis plan: {exc}") from None


def save_plan(plan: SynthesisPlan, path: str | os.PathLike[str]) -> Path:
    """Write a plan as JSON (atomically); returns the path."""
    write_json(path, plan.to_dict())
    return Path(path)
