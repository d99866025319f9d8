"""Draw plans, classic augmentation and the segmenter's input standardisation (:mod:`rsaug.segmentation.data`)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rsaug.core.errors import InputError
from rsaug.io.normalization import percentile_range
from rsaug.segmentation import (
    MixRecipe,
    Normalization,
    PlanDataset,
    SegmenterConfig,
    SegmenterNormalization,
    TileArrays,
    build_task,
    classic_augmentation,
    make_plan,
)
from tests.segmentation.helpers import gid15_tiles


def test_plan_pairs_real_draws_across_arms() -> None:
    """Seed s draws the same real tiles and crops, in the same order, whether or not synthetic tiles are mixed in."""
    alone = make_plan([40], [1.0], 200, seed=7)
    mixed = make_plan([40, 25], [0.6, 0.4], 200, seed=7)
    real_pos = np.flatnonzero(mixed.source == 0)
    n = len(real_pos)
    assert 0 < n < 200 and mixed.counts(2) == [n, 200 - n]
    for key in ("tile", "y0", "x0", "aug_seed"):
        assert np.array_equal(getattr(mixed, key)[real_pos], getattr(alone, key)[:n]), key
    # epoch-wise drawing: every real tile is seen 5 times in 200 draws of 40 tiles
    assert np.bincount(alone.tile, minlength=40).tolist() == [5] * 40
    other = make_plan([40], [1.0], 200, seed=8)
    assert not np.array_equal(other.tile, alone.tile)


def test_classic_augmentation_is_deterministic_and_geometric() -> None:
    """Classic augmentation on real GID-15 crops: reproducible per draw, image and mask moved together."""
    tiles = gid15_tiles(["garden_plot_001", "river_001"])
    norm = SegmenterNormalization.fit(tiles, "uint8")
    plan = make_plan([2], [1.0], 16, seed=0)
    plain = PlanDataset([tiles], plan, 64, norm)
    aug = PlanDataset([tiles], plan, 64, norm, classic_augmentation(3))
    changed = 0
    for i in range(16):
        a1, a2, p = aug[i], aug[i], plain[i]
        assert torch.equal(a1["image"], a2["image"]) and torch.equal(a1["mask"], a2["mask"])
        m = p["mask"].numpy()
        dihedral = [np.rot90(f, k) for f in (m, m[:, ::-1]) for k in range(4)]
        assert any(np.array_equal(a1["mask"].numpy(), d) for d in dihedral)
        changed += not torch.equal(a1["image"], p["image"])
    assert changed >= 12


def test_normalization_uses_the_one_percentile_fit() -> None:
    """uint8: range 0..255; other dtypes: rsaug.io.normalization.percentile_range; then per-band mean / std."""
    assert Normalization is SegmenterNormalization  # the former name still loads old code and segmenter.pt
    tiles = gid15_tiles(["garden_plot_001", "river_001"])
    n8 = SegmenterNormalization.fit(tiles, "uint8")
    assert n8.low == [0.0] * 3 and n8.high == [255.0] * 3
    direct = np.concatenate([im.reshape(3, -1) for im in tiles.images], axis=1).astype(np.float64) / 255.0
    np.testing.assert_allclose(n8.mean, direct.mean(axis=1), rtol=1e-12)  # moments from value counts: exact
    np.testing.assert_allclose(n8.std, direct.std(axis=1), rtol=1e-10)
    rng = np.random.default_rng(0)
    wide = [rng.integers(100, 4000, size=(4, 16, 16)).astype(np.uint16) for _ in range(3)]
    for w in wide:
        w[3] = 7  # a constant band: its range gets width 1
    n16 = SegmenterNormalization.fit(
        TileArrays("real", wide, [np.zeros((16, 16), np.uint8)] * 3, ["a", "b", "c"]), "uint16"
    )
    stack = np.concatenate([w.reshape(4, -1) for w in wide], axis=1).astype(np.float64)
    low, high = percentile_range(stack)
    assert n16.low == low.tolist() and n16.high == high.tolist()
    assert n16.low[3] == 7.0 and n16.high[3] == 8.0
    scaled = (stack - low[:, None]) / (high - low)[:, None]
    assert n16.mean == scaled.mean(axis=1).tolist()
    x = torch.from_numpy(np.stack(wide).astype(np.float32))
    y = n16.apply(x)
    assert y.shape == x.shape and abs(float(y[:, :3].mean())) < 0.1


def test_mixing_schedules_shape_the_synthetic_share() -> None:
    """pretrain: synthetic draws only before the fine-tuning tail; anneal: the share decays; real draws stay paired."""
    n = 4000
    const = make_plan([40, 25], [0.5, 0.5], n, seed=3, recipe=MixRecipe())
    assert np.array_equal(const.source, make_plan([40, 25], [0.5, 0.5], n, seed=3).source)  # the old draws
    pre = make_plan([40, 25], [0.5, 0.5], n, seed=3, recipe=MixRecipe("pretrain", finetune=0.3))
    tail = round(0.7 * n)
    assert (pre.source[tail:] == 0).all() and 0.45 < pre.source[:tail].mean() < 0.55
    only = make_plan([40, 25], [0.0, 1.0], n, seed=3, recipe=MixRecipe("pretrain", finetune=0.25))
    assert (only.source[: round(0.75 * n)] == 1).all() and (only.source[round(0.75 * n) :] == 0).all()
    ann = make_plan([40, 25], [0.6, 0.4], n, seed=3, recipe=MixRecipe("anneal"))
    quarters = [ann.source[i * n // 4 : (i + 1) * n // 4].mean() for i in range(4)]
    assert quarters == sorted(quarters, reverse=True) and quarters[0] > 0.3 and quarters[-1] < 0.1
    assert 0.17 < ann.source.mean() < 0.23  # half of the constant share
    alone = make_plan([40], [1.0], n, seed=3)
    for plan in (pre, ann):
        real = np.flatnonzero(plan.source == 0)
        assert np.array_equal(plan.tile[real], alone.tile[: len(real)])


def test_recipe_ranges_are_checked() -> None:
    for bad, match in (
        (MixRecipe("cyclic"), "schedule must be one of"),
        (MixRecipe("pretrain", finetune=1.0), "fine-tuning share must lie strictly between 0 and 1"),
        (MixRecipe(weight=0.0), r"weight must be in \(0, 1\]"),
        (MixRecipe(weight=1.5), r"weight must be in \(0, 1\]"),
    ):
        with pytest.raises(InputError, match=match):
            bad.validate()


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_loss_weights_reach_the_samples_and_the_loss() -> None:
    """Synthetic crops carry their weight; the task's loss is the weighted mean over all valid pixels."""
    tiles = gid15_tiles(["garden_plot_001", "river_001"])
    norm = SegmenterNormalization.fit(tiles, "uint8")
    plan = make_plan([2, 2], [0.5, 0.5], 8, seed=0)
    ds = PlanDataset([tiles, tiles], plan, 64, norm, loss_weights=[1.0, 0.25])
    batch = torch.utils.data.default_collate([ds[i] for i in range(8)])
    expect_w = np.where(plan.source == 1, 0.25, 1.0)
    assert np.allclose(batch["weight"].numpy(), expect_w)
    assert "weight" not in PlanDataset([tiles, tiles], plan, 64, norm)[0]
    task = build_task(15, 3, SegmenterConfig(backbone="resnet18"))
    torch.manual_seed(0)
    loss = task.training_step(batch, 0)
    with torch.no_grad():
        pixel = torch.nn.functional.cross_entropy(
            task(batch["image"]), batch["mask"], ignore_index=255, reduction="none"
        )
    valid = (batch["mask"] != 255).sum()
    manual = (pixel * torch.as_tensor(expect_w, dtype=torch.float32)[:, None, None]).sum() / valid
    assert torch.allclose(loss.detach(), manual, rtol=1e-5)
    plain = task.training_step({"image": batch["image"], "mask": batch["mask"]}, 0)
    assert float(loss.detach()) < float(plain.detach())  # down-weighting lowers the loss of the same batch
