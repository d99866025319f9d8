"""Validation during training, best-val model selection and the convergence rule (:mod:`rsaug.segmentation`)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.classes import BUILTIN_SCHEMES
from rsaug.core.errors import InputError
from rsaug.segmentation import (
    SegmenterConfig,
    build_task,
    converged,
    load_segmenter,
    preset,
    save_segmenter,
    train_segmenter,
    validation_miou,
)
from tests.fixtures_tiles import gid15_fixture_stems
from tests.segmentation.helpers import gid15_tiles

# tiny real runs: 8 steps of 4 x 64-px crops, validation every 2 steps on 4 whole GID-15 tiles
TINY = SegmenterConfig(
    iterations=8, batch_size=4, crop=64, eval_batch_size=4, threads=1, decoder_channels=[32, 16, 16, 16, 16], lr=3e-3
)
OLD_KEYS = {"steps", "samples", "draws", "loss_first", "loss_last", "loss_curve", "seconds", "device"}
VAL_KEYS = {
    "val_curve",
    "best_step",
    "best_val_miou",
    "converged",
    "select",
    "selected_step",
    "val_tiles",
    "val_seconds",
}


@pytest.fixture(scope="module")
def data() -> dict:
    stems = gid15_fixture_stems(2)
    return {"train": gid15_tiles(stems[:20]), "val": gid15_tiles(stems[20:24])}


@pytest.fixture(scope="module")
def runs(data: dict) -> dict:
    """The same seed trained three times: no validation; validation + last; validation + best-val."""

    def run(cfg: SegmenterConfig):
        val = data["val"] if cfg.val_every else None
        return train_segmenter(data["train"], config=cfg, seed=5, device="cpu", num_classes=15, val=val)

    return {
        "plain": run(TINY),
        "last": run(replace(TINY, val_every=2)),
        "best": run(replace(TINY, val_every=2, select="best-val")),
    }


def _miou(seg, val) -> float:
    return validation_miou(seg.model, norm=seg.norm, num_classes=15, val=val, batch_size=4)


def test_val_curve_recorded_at_the_right_steps(runs: dict, data: dict) -> None:
    info = runs["last"].info
    assert [p[0] for p in info["val_curve"]] == [2, 4, 6, 8]
    mious = [p[1] for p in info["val_curve"]]
    assert all(0 <= m <= 1 for m in mious)
    assert info["best_val_miou"] == max(mious)
    assert info["best_step"] == info["val_curve"][mious.index(max(mious))][0]  # the earliest best
    assert info["val_tiles"] == len(data["val"]) and info["select"] == "last" and info["selected_step"] == 8
    assert info["converged"] == converged(info["val_curve"], 8)
    # the last evaluation is of the returned (last) weights
    assert _miou(runs["last"], data["val"]) == pytest.approx(mious[-1], abs=1e-12)


def test_final_step_is_evaluated_when_not_a_multiple(data: dict) -> None:
    seg = train_segmenter(
        data["train"],
        config=replace(TINY, iterations=5, val_every=2),
        seed=0,
        device="cpu",
        num_classes=15,
        val=data["val"].select([0]),
    )
    assert [p[0] for p in seg.info["val_curve"]] == [2, 4, 5]
    assert seg.info["converged"] is converged(seg.info["val_curve"], 5)


def test_best_val_returns_the_best_weights(runs: dict, data: dict, tmp_path: Path) -> None:
    last, best = runs["last"], runs["best"]
    # keeping a copy of the weights does not change training: same curve as the `last` run
    assert best.info["val_curve"] == last.info["val_curve"]
    assert best.info["select"] == "best-val" and best.info["selected_step"] == best.info["best_step"]
    # evaluated again, the returned weights give exactly the recorded best validation mIoU
    assert _miou(best, data["val"]) == pytest.approx(best.info["best_val_miou"], abs=1e-12)
    same = all(torch.equal(a, b) for a, b in zip(best.model.state_dict().values(), last.model.state_dict().values()))
    assert same == (best.info["best_step"] == 8)
    # the narrow-decoder U-Net round-trips through segmenter.pt
    path = save_segmenter(best, tmp_path / "segmenter.pt", BUILTIN_SCHEMES["gid15"], replace(TINY, val_every=2))
    loaded, _ = load_segmenter(path, torch.device("cpu"))
    img = np.stack(data["val"].images[:2])
    assert np.array_equal(loaded.predict(img), best.predict(img))


def test_validation_leaves_training_bit_identical(runs: dict, data: dict) -> None:
    plain, last = runs["plain"], runs["last"]
    assert set(plain.info) == OLD_KEYS  # no new keys without validation
    assert set(last.info) == OLD_KEYS | VAL_KEYS
    a, b = plain.model.state_dict(), last.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # BatchNorm buffers included
    img = np.stack(data["val"].images)
    assert np.array_equal(plain.predict(img), last.predict(img))
    assert plain.info["loss_curve"] == last.info["loss_curve"]


def test_decoder_channels_and_default_decoder() -> None:
    narrow = build_task(15, 3, TINY).model
    assert [b.conv2[0].out_channels for b in narrow.decoder.blocks] == [32, 16, 16, 16, 16]
    default = build_task(15, 3, replace(TINY, decoder_channels=None)).model
    assert [b.conv2[0].out_channels for b in default.decoder.blocks] == [256, 128, 64, 32, 16]


def test_converged_rule() -> None:
    # best of the last 20 % (steps > 80) vs best before: +0.4 points -> converged, +0.6 -> not
    assert converged([[50, 0.40], [80, 0.500], [90, 0.49], [100, 0.504]], 100) is True
    assert converged([[50, 0.40], [80, 0.500], [90, 0.49], [100, 0.506]], 100) is False
    assert converged([[50, 0.40], [80, 0.500], [100, 0.45]], 100) is True  # got worse: nothing left to gain
    assert converged([[100, 0.5]], 100) is None  # nothing before the tail
    assert converged([[40, 0.3], [80, 0.5]], 100) is None  # nothing inside the tail


def test_bad_validation_settings(data: dict) -> None:
    for cfg, msg in (
        (replace(TINY, val_every=-1), "val_every"),
        (replace(TINY, val_every=9), "val_every"),
        (replace(TINY, select="best-val"), "best-val needs validation"),
        (replace(TINY, select="best"), "must be one of"),
        (replace(TINY, decoder_channels=[16, 16]), "decoder channels"),
    ):
        with pytest.raises(InputError, match=msg):
            cfg.validate()
    with pytest.raises(InputError, match="needs validation tiles"):
        train_segmenter(data["train"], config=replace(TINY, val_every=2), device="cpu", num_classes=15)


def test_old_presets_unchanged() -> None:
    assert preset("cpu-small") == SegmenterConfig(backbone="resnet18", iterations=500, batch_size=16, crop=64, lr=2e-3)
    p = preset("paper")
    assert (p.backbone, p.iterations, p.crop, p.lr, p.val_every, p.select, p.decoder_channels) == (
        "resnet34",
        10000,
        224,
        1e-3,
        0,
        "last",
        None,
    )
    c = preset("cpu-converge")
    c.validate()
    assert c.select == "best-val" and c.val_every > 0 and c.decoder_channels is not None
    assert c.channels_last and c.fused_adamw


def test_channels_last_and_fused_adamw_train_the_same_network(data: dict) -> None:
    """The speed options change the memory layout and the optimizer kernel, not the training: the same seed gives
    weights stored channels-last that stay close to the NCHW run's, the same losses, and the same predictions."""
    base = train_segmenter(data["train"], config=TINY, seed=3, device="cpu", num_classes=15)
    fast_cfg = replace(TINY, channels_last=True, fused_adamw=True)
    fast = train_segmenter(data["train"], config=fast_cfg, seed=3, device="cpu", num_classes=15)
    w = dict(fast.model.named_parameters())
    first = next(p for p in w.values() if p.ndim == 4)
    assert first.is_contiguous(memory_format=torch.channels_last) and not first.is_contiguous()
    diffs = [float((p - w[n]).detach().abs().max()) for n, p in base.model.named_parameters()]
    tiles = np.stack(data["val"].images[:2])
    agree = (fast.predict(tiles) == base.predict(tiles)).mean()
    # Adam moves every weight by about lr per step whatever the gradient's size, so rounding differences in tiny
    # gradients can move single weights by up to 2 x lr x steps; typical ones stay far below
    assert max(diffs) < TINY.lr * TINY.iterations and float(np.median(diffs)) < TINY.lr
    assert base.info["loss_first"] == pytest.approx(fast.info["loss_first"], rel=1e-3)
    assert agree > 0.9
