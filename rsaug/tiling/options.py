"""Options of a tiling run: :class:`TileOptions` (saved as ``tile-config.json``), split specs, warnings.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rsaug.core.errors import InputError, option
from rsaug.io.tileset import DEFAULT_COMPRESS_LEVEL

#: Run configuration written into the output directory (inputs and options; ``--resume`` compares it).
CONFIG_FILE = "tile-config.json"
#: Split names in the order of a ``train:val:test`` spec (the ``reserved`` split comes on top).
SPLIT_NAMES = ("train", "val", "test")
#: Default limit of the candidate tiles of a run (all scenes): pass 1 keeps a record of every candidate and the
#: index one row per kept tile (a few kB each), so a tiny tile size or stride on a large scene would exhaust memory.
DEFAULT_MAX_TILES = 1_000_000


class TilingWarning(UserWarning):
    """Non-fatal remarks about the inputs (e.g. non-georeferenced scenes)."""


@dataclass
class TileOptions:
    """Options of a tiling run (saved as ``tile-config.json`` and in ``tileset.json``).

    Attributes:
        tile_size: Tile side in pixels.
        stride: Step between tiles in pixels (``None`` = ``tile_size``, no overlap).
        max_unknown: Tiles with a larger fraction of unknown mask pixels are dropped.
        scheme: Class scheme name or JSON file of the source masks.
        split: Split ratios ``train:val:test``.
        seed: Seed of the split.
        reserve: Number of tiles set aside as the ``reserved`` split (e.g. for ablations), before splitting.
        split_mode: ``random`` (tile-level, as the paper) or ``blocked`` (spatial blocks; tiles overlapping a
            tile of another split are dropped so overlapping tiles never straddle splits).
        block_size: Block side in pixels for ``blocked`` (``None`` = 4 tiles).
        edge: ``drop`` partial border tiles or ``pad`` them (image with nodata/0, mask with unknown).
        mask_kind: ``auto``, ``index``, ``color`` or ``vector``.
        class_attribute: Attribute of vector masks holding the class name or raw value.
        vector_fill: Class (name or raw value) given to scene pixels no polygon of a vector mask covers
            (``None`` = unknown).
        compress: GeoTIFF compression of the tiles.
        compress_level: Deflate (1-12) / zstd (1-22) level of the tiles (ignored for ``lzw`` / ``none``).
    """

    tile_size: int = 256
    stride: int | None = None
    max_unknown: float = 0.8
    scheme: str = "gid15"
    split: str = "4:1:1"
    seed: int = 0
    reserve: int = 0
    split_mode: str = "random"
    block_size: int | None = None
    edge: str = "drop"
    mask_kind: str = "auto"
    class_attribute: str = "class"
    vector_fill: str | None = None
    compress: str = "deflate"
    compress_level: int = DEFAULT_COMPRESS_LEVEL

    @property
    def step(self) -> int:
        """Effective stride."""
        return self.stride or self.tile_size

    def validate(self) -> tuple[float, float, float]:
        """Check the options; returns the parsed split ratios.

        Raises:
            InputError: On an invalid value.
        """
        if int(self.tile_size) < 1:
            raise InputError(None, f"tile size must be positive, got {self.tile_size}")
        if self.stride is not None and int(self.stride) < 1:
            raise InputError(None, f"stride must be positive, got {self.stride}")
        if not 0.0 <= float(self.max_unknown) <= 1.0:
            raise InputError(None, f"{option('max_unknown')} must be within 0..1, got {self.max_unknown}")
        if int(self.reserve) < 0:
            raise InputError(None, f"{option('reserve')} must be >= 0, got {self.reserve}")
        if int(self.seed) < 0:
            raise InputError(None, f"{option('seed')} must be >= 0, got {self.seed}")
        if self.split_mode not in ("random", "blocked"):
            raise InputError(None, f"split mode must be 'random' or 'blocked', got {self.split_mode!r}")
        if self.edge not in ("drop", "pad"):
            raise InputError(None, f"edge policy must be 'drop' or 'pad', got {self.edge!r}")
        top = {"deflate": 12, "zstd": 22}.get(self.compress)
        if top is not None and not 1 <= int(self.compress_level) <= top:
            raise InputError(
                None,
                f"{option('compress_level')} for {self.compress} must be within 1..{top}, got {self.compress_level}",
            )
        if self.block_size is not None and int(self.block_size) < 1:
            raise InputError(None, f"block size must be positive, got {self.block_size}")
        return parse_split(self.split)


def parse_split(spec: str) -> tuple[float, float, float]:
    """Parse ``"4:1:1"`` (train:val:test; also ``"8:2"`` = no test split) into ratios.

    Raises:
        InputError: If the spec is malformed, negative, or all zero.
    """
    parts = str(spec).replace("/", ":").split(":")
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise InputError(None, f"invalid split spec {spec!r}; expected train:val:test such as 4:1:1") from None
    if not 1 <= len(vals) <= 3 or any(v < 0 or not math.isfinite(v) for v in vals) or sum(vals) <= 0:
        raise InputError(
            None,
            f"invalid split spec {spec!r}; expected up to three non-negative numbers "
            "train:val:test with a positive sum, such as 4:1:1",
        )
    vals += [0.0] * (3 - len(vals))
    return (vals[0], vals[1], vals[2])
