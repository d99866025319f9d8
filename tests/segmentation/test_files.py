"""``segmenter.pt``: a tiny trained U-Net survives saving and loading; other files are refused
(:mod:`rsaug.segmentation.files`)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.classes import BUILTIN_SCHEMES
from rsaug.core.errors import InputError
from rsaug.segmentation import SEGMENTER_FORMAT, SegmenterConfig, load_segmenter, save_segmenter, train_segmenter
from tests.segmentation.helpers import gid15_tiles

TINY = SegmenterConfig(iterations=2, batch_size=2, crop=64, eval_batch_size=2, threads=1)


def test_save_and_load_round_trip(tmp_path: Path) -> None:
    tiles = gid15_tiles(["garden_plot_001", "river_001"])
    seg = train_segmenter(tiles, config=TINY, seed=0, device="cpu", num_classes=15)
    assert seg.info["steps"] == TINY.iterations
    scheme = BUILTIN_SCHEMES["gid15"]
    path = save_segmenter(seg, tmp_path / "segmenter.pt", scheme, TINY, {"seed": 0})
    loaded, state = load_segmenter(path, torch.device("cpu"))
    assert state["format"] == SEGMENTER_FORMAT and state["seed"] == 0
    assert state["segmenter_config"] == asdict(TINY) and state["scheme"] == scheme.to_dict()
    assert loaded.norm == seg.norm and loaded.num_classes == 15
    assert "loss_curve" not in loaded.info and loaded.info["steps"] == TINY.iterations
    for image in tiles.images:  # whole tiles of different sizes
        assert np.array_equal(loaded.predict(image), seg.predict(image))
    assert np.array_equal(loaded.confusion(tiles, batch_size=2), seg.confusion(tiles, batch_size=2))
    # a file whose stored protocol cannot build a network: one line naming the problem, no traceback
    for field, value in (("backbone", "no_such_encoder"), ("iterations", 0)):
        bad = torch.load(path, weights_only=True)
        bad["segmenter_config"][field] = value
        torch.save(bad, tmp_path / "bad.pt")
        with pytest.raises(InputError, match="damaged segmenter file: ") as exc:
            load_segmenter(tmp_path / "bad.pt", torch.device("cpu"))
        assert exc.value.path == str(tmp_path / "bad.pt") and "\n" not in str(exc.value)


def test_other_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="segmenter file not found"):
        load_segmenter(tmp_path / "missing.pt", torch.device("cpu"))
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    with pytest.raises(InputError, match="cannot read segmenter file"):
        load_segmenter(garbage, torch.device("cpu"))
    other = tmp_path / "other.pt"
    torch.save({"format": "rsaug-checkpoint", "state_dict": {}}, other)
    with pytest.raises(InputError, match="not an rsaug segmenter file") as exc:
        load_segmenter(other, torch.device("cpu"))
    assert exc.value.path == str(other)


def test_files_that_would_run_code_or_lack_fields_are_one_line_errors(tmp_path: Path) -> None:
    import datetime

    hostile = tmp_path / "hostile.pt"
    torch.save({"format": SEGMENTER_FORMAT, "when": datetime.date(2020, 1, 1)}, hostile)
    with pytest.raises(InputError, match=r"refusing to load: .*could run code \(datetime\.date\)") as exc:
        load_segmenter(hostile, torch.device("cpu"))
    assert exc.value.path == str(hostile)
    damaged = tmp_path / "damaged.pt"
    torch.save({"format": SEGMENTER_FORMAT, "num_classes": 15, "state_dict": {}}, damaged)
    with pytest.raises(InputError, match="damaged segmenter file: KeyError") as exc:
        load_segmenter(damaged, torch.device("cpu"))
    assert exc.value.path == str(damaged)
