"""Training the U-Net: seeded initialisation (:mod:`rsaug.segmentation.training`)."""

from __future__ import annotations

import torch

from rsaug.core.runtime import seed_everything
from rsaug.segmentation import SegmenterConfig, build_task

TINY = SegmenterConfig(iterations=3, batch_size=4, crop=64, eval_batch_size=8, threads=1)


def test_same_seed_same_initialisation() -> None:
    seed_everything(3)
    a = build_task(15, 3, TINY).model.state_dict()
    seed_everything(3)
    b = build_task(15, 3, TINY).model.state_dict()
    seed_everything(4)
    c = build_task(15, 3, TINY).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
