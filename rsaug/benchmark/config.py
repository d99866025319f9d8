"""The benchmark protocol: :class:`BenchmarkConfig` (saved as ``benchmark_config.json`` in the output)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

from rsaug.segmentation.config import SegmenterConfig

CONFIG_FILE = "benchmark_config.json"
ARM_KINDS = ("real", "real+synthetic", "classic", "synthetic-only")


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
