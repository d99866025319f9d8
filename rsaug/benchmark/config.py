"""The benchmark protocol: :class:`BenchmarkConfig` (saved as ``benchmark_config.json`` in the output)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rsaug.segmentation.config import SegmenterConfig

CONFIG_FILE = "benchmark_config.json"
ARM_KINDS = ("real", "real+synthetic", "classic", "synthetic-only")

#: Benchmark defaults that come with a segmenter preset (a command-line flag or an explicit value overrides them).
#: ``cpu-converge`` is the standard acceptance benchmark: real, real+<each synthetic set>, classic, at full and
#: at a quarter of the real training tiles, 5 paired seeds.
PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "cpu-small": {"seeds": 3, "real_fractions": [], "arms": list(ARM_KINDS)},
    "paper": {"seeds": 3, "real_fractions": [], "arms": list(ARM_KINDS)},
    "cpu-converge": {"seeds": 5, "real_fractions": [0.25], "arms": ["real", "real+synthetic", "classic"]},
}


def preset_defaults(name: str | None) -> dict[str, Any]:
    """``seeds``, ``real_fractions`` and ``arms`` a benchmark gets by default with segmenter preset ``name``."""
    d = PRESET_DEFAULTS.get(str(name), PRESET_DEFAULTS["cpu-small"])
    return {k: list(v) if isinstance(v, list) else v for k, v in d.items()}


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
        test_split: Real split used for evaluation (unless ``test_tiles`` is given).
        val_split: Real split evaluated during training for the validation curves and, with the segmenter's
            ``select="best-val"``, for model selection (used only when the segmenter's ``val_every`` > 0; never
            the evaluated split when selecting).
        test_tiles: A separate tile set evaluated instead of ``test_split`` (every tile of it; same class scheme,
            band count and dtype as ``real``; none of its tiles may come from a scene that feeds training).
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
    val_split: str = "val"
    test_tiles: str | None = None

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
