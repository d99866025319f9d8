"""Split assignment on its own: random and blocked splits, their counts, determinism and the reserve."""

from __future__ import annotations

from collections import Counter

import numpy as np

from rsaug.tiling.options import parse_split
from rsaug.tiling.splits import _split_counts, assign_blocked, assign_random


def test_split_counts_are_largest_remainder() -> None:
    # the GID-15 fixture: 90 tiles at 4:1:1
    assert _split_counts(90, parse_split("4:1:1")) == [60, 15, 15]
    # 16 Chesapeake tiles at 4:1:1: 10.67 / 2.67 / 2.67; the two left over go to the largest remainders
    # (in floating point those of val and test)
    assert _split_counts(16, parse_split("4:1:1")) == [10, 3, 3]
    assert _split_counts(7, parse_split("8:2")) == [6, 1, 0]
    assert sum(_split_counts(1001, (1.0, 1.0, 1.0))) == 1001


def test_random_split_counts_reserve_and_seed() -> None:
    s = assign_random(90, parse_split("4:1:1"), 6, 0)
    assert Counter(s.tolist()) == {"reserved": 6, "train": 56, "val": 14, "test": 14}
    assert np.array_equal(s, assign_random(90, parse_split("4:1:1"), 6, 0))
    assert not np.array_equal(s, assign_random(90, parse_split("4:1:1"), 6, 1))
    assert Counter(assign_random(5, parse_split("1:1:1"), 9, 0).tolist()) == {"reserved": 5}


def test_blocked_split_keeps_blocks_together() -> None:
    # a 12 x 12 grid of tiles in 3 x 3-tile blocks (16 blocks of 9 tiles)
    keys = [(0, r // 3, c // 3) for r in range(12) for c in range(12)]
    s = assign_blocked(keys, parse_split("4:1:1"), 18, 3)
    by_block: dict[tuple[int, int, int], set[str]] = {}
    for k, sp in zip(keys, s.tolist()):
        by_block.setdefault(k, set()).add(sp)
    assert all(len(v) == 1 for v in by_block.values())
    counts = Counter(s.tolist())
    assert counts["reserved"] == 18  # two whole blocks
    rest = len(keys) - counts["reserved"]
    for name, ratio in zip(("train", "val", "test"), (4, 1, 1)):
        assert abs(counts[name] - rest * ratio / 6) <= 9  # within one block of the target
    assert np.array_equal(s, assign_blocked(keys, parse_split("4:1:1"), 18, 3))
    # a zero ratio gets no block
    assert "test" not in set(assign_blocked(keys, parse_split("8:2"), 0, 0).tolist())
