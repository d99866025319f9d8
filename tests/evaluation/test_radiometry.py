"""Radiometric figures of ``rsaug evaluate``: streaming moments vs numpy, the target logic, the evaluation output."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rsaug.core.classes import IGNORE
from rsaug.core.errors import InputError
from rsaug.evaluation.radiometry import (
    MEAN_TOLERANCE_DN,
    STD_TOLERANCE_PCT,
    PixelMoments,
    compare_bands,
    radiometry_report,
)
from rsaug.io.tileset import TileSet
from rsaug.segmentation import load_tiles
from tests.evaluation.test_evaluate import _write_checkpoint

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def real_test(gid15_tileset: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The real test tiles (N, 3, 224, 224) uint8, their masks (N, 224, 224) and the class names."""
    ts = TileSet.open(gid15_tileset)
    test = load_tiles(ts, ["test"], "test")
    return np.stack(test.images), np.stack(test.masks), ts.scheme.names


def _numpy_moments(images: np.ndarray, masks: np.ndarray, select: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-band mean and std (numpy, float64) of the pixels where ``select`` (N, H, W) holds."""
    px = np.moveaxis(images, 1, -1)[select].astype(np.float64)  # (pixels, C)
    return px.mean(axis=0), px.std(axis=0)


def _feed(acc: PixelMoments, images: np.ndarray, masks: np.ndarray) -> None:
    """Add in uneven batches, the first one a single (C, H, W) image, as a streaming caller would."""
    acc.add(images[0], masks[0])
    for lo, hi in ((1, 4), (4, 5), (5, len(images))):
        acc.add(images[lo:hi], masks[lo:hi])


def test_streaming_moments_equal_numpy_per_band_and_class(real_test) -> None:
    images, masks, names = real_test
    k = len(names)
    # real GID-15 test tiles hold unknown pixels already; make sure of it and of a class that is absent
    masks = masks.copy()
    masks[:, :8, :8] = IGNORE
    absent = [c for c in range(k) if not (masks == c).any()]
    acc = PixelMoments(images.shape[1], k)
    _feed(acc, images, masks)

    mean, std = _numpy_moments(images, masks, np.ones(masks.shape, bool))
    ov = acc.overall()
    assert ov.pixels == masks.size
    np.testing.assert_allclose(ov.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(ov.std, std, rtol=1e-9)
    present = 0
    for c in range(k):
        sel = masks == c
        got = acc.of_class(c)
        assert got.pixels == int(sel.sum())
        if not sel.any():
            assert got.mean is None and got.std is None
            continue
        present += 1
        mean, std = _numpy_moments(images, masks, sel)
        np.testing.assert_allclose(got.mean, mean, rtol=1e-10)
        np.testing.assert_allclose(got.std, std, rtol=1e-9, atol=1e-9)
    assert present >= 5  # several classes really compared
    unk = acc.unknown()
    mean, std = _numpy_moments(images, masks, masks == IGNORE)
    assert unk.pixels == int((masks == IGNORE).sum()) >= 64 * len(images)
    np.testing.assert_allclose(unk.mean, mean, rtol=1e-10)
    np.testing.assert_allclose(unk.std, std, rtol=1e-9)
    d = acc.to_dict(names)
    assert [c["class"] for c in d["classes"]] == names and d["unknown"]["pixels"] == unk.pixels
    assert all(d["classes"][c]["pixels"] == 0 for c in absent)


def test_streaming_moments_keep_precision_far_from_zero() -> None:
    """uint16-like values of mean 30 000 and std ~2: sums of squares of raw values would lose the variance."""
    rng = np.random.default_rng(1)
    images = (30_000 + rng.normal(0, 2, size=(6, 2, 64, 64))).astype(np.float64)
    masks = rng.integers(0, 3, size=(6, 64, 64)).astype(np.uint8)
    acc = PixelMoments(2, 3)
    _feed(acc, images, masks)
    for c in range(3):
        mean, std = _numpy_moments(images, masks, masks == c)
        np.testing.assert_allclose(acc.of_class(c).mean, mean, rtol=1e-13)
        np.testing.assert_allclose(acc.of_class(c).std, std, rtol=1e-7)


def test_bad_inputs_are_refused() -> None:
    acc = PixelMoments(3, 4)
    img = np.zeros((2, 3, 4, 4), np.uint8)
    with pytest.raises(InputError, match="neither a class index"):
        acc.add(img, np.full((2, 4, 4), 4, np.uint8))
    with pytest.raises(InputError, match="do not match"):
        acc.add(img, np.zeros((2, 5, 4), np.uint8))
    with pytest.raises(InputError, match="do not match"):
        acc.add(np.zeros((2, 2, 4, 4)), np.zeros((2, 4, 4), np.uint8))
    assert int(acc.count.sum()) == 0  # nothing was counted by a refused batch
    with pytest.raises(InputError, match="bands"):
        radiometry_report(acc, PixelMoments(2, 4), ["a", "b", "c", "d"], "uint8")


def test_identity_is_zero_error_and_within_target(real_test) -> None:
    images, masks, names = real_test
    masks = masks.copy()
    masks[:, -4:, -4:] = IGNORE  # an unknown row that is reported but never counted
    real = PixelMoments(3, len(names))
    gen = PixelMoments(3, len(names))
    _feed(real, images, masks)
    _feed(gen, images.copy(), masks)
    rep = radiometry_report(real, gen, names, "uint8")
    assert rep["units"] == "DN (uint8)"
    assert (
        rep["target"]
        == {"mean_dn": MEAN_TOLERANCE_DN, "std_pct": STD_TOLERANCE_PCT}
        == {
            "mean_dn": 3.0,
            "std_pct": 10.0,
        }
    )
    rows = [*rep["overall"], *(b for c in rep["classes"] if c["bands"] for b in c["bands"])]
    assert rep["unknown"]["real_pixels"] >= 16 * len(images)
    rows += rep["unknown"]["bands"]
    for b in rows:
        assert b["mean_error_dn"] == 0.0 and b["std_error_pct"] == 0.0 and b["within_target"]
        assert b["std_ratio"] == 1.0 and b["real_mean"] == b["generated_mean"] and b["real_std"] > 0
    s = rep["summary"]
    present = sum(bool((masks == c).any()) for c in range(len(names)))
    assert s["overall_within"] == s["overall_bands"] == 3
    assert s["classes_measured"] == s["classes_within"] == present
    assert s["class_within"] == s["class_pairs"] == 3 * present
    assert s["class_mean_abs_error_dn"] == 0.0 and s["class_mean_abs_std_error_pct"] == 0.0
    assert rep["summary_line"] == (
        f"overall: 3/3 bands within 3 DN and 10 %; per class: {3 * present}/{3 * present} band-class pairs "
        f"({present}/{present} classes), mean |error| 0.0 DN / 0 %"
    )
    # absent classes have no figures and count in no target; the unknown row is never counted
    for c, row in enumerate(rep["classes"]):
        assert (row["bands"] is None) == (not (masks == c).any())


def test_target_limits(real_test) -> None:
    """+2 DN is within target, +5 DN is not; std x1.2 (20 %) is out, x1.05 is in; per class as well as overall."""
    images, masks, names = real_test
    x = images.astype(np.float64)
    mu = x.mean(axis=(0, 2, 3), keepdims=True)
    real = PixelMoments(3, len(names))
    _feed(real, x, masks)

    def report(generated: np.ndarray) -> dict:
        gen = PixelMoments(3, len(names))
        _feed(gen, generated, masks)
        return radiometry_report(real, gen, names, "float64")

    def bands(rep: dict) -> list[dict]:
        return [*rep["overall"], *(b for c in rep["classes"] if c["bands"] for b in c["bands"])]

    for shift, inside in ((2.0, True), (5.0, False), (-5.0, False)):
        rep = report(x + shift)
        for b in bands(rep):
            assert b["mean_error_dn"] == pytest.approx(shift, abs=1e-9)
            assert b["std_error_pct"] == pytest.approx(0.0, abs=1e-7)
            assert b["within_target"] is inside
        # every class is off by |shift|, so the pixel-weighted class error is |shift| too
        assert rep["summary"]["class_mean_abs_error_dn"] == pytest.approx(abs(shift), abs=1e-9)
    for scale, inside in ((1.2, False), (1.05, True), (0.8, False)):
        rep = report((x - mu) * scale + mu)
        assert all(b["std_error_pct"] == pytest.approx(100 * (scale - 1), rel=1e-7) for b in bands(rep))
        for b in rep["overall"]:
            assert b["mean_error_dn"] == pytest.approx(0.0, abs=1e-9) and b["within_target"] is inside
            assert b["std_ratio"] == pytest.approx(scale)
        # the global stretch about the band means moves class means by (scale - 1) * (class mean - band mean):
        # the pixel-weighted class error is that, computed here by hand
        want_dn, want_pct, total = 0.0, 0.0, 0
        for c in range(len(names)):
            sel = masks == c
            if not sel.any():
                continue
            cm, _ = _numpy_moments(x, masks, sel)
            want_dn += sel.sum() * np.mean(np.abs((scale - 1) * (cm - mu.reshape(-1))))
            want_pct += sel.sum() * 100 * abs(scale - 1)
            total += sel.sum()
        assert rep["summary"]["class_mean_abs_error_dn"] == pytest.approx(want_dn / total, rel=1e-6)
        assert rep["summary"]["class_mean_abs_std_error_pct"] == pytest.approx(want_pct / total, rel=1e-6)
    # one band off by 4 DN: overall 2/3; the summary counts it per class too
    off = x.copy()
    off[:, 1] += 4.0
    rep = report(off)
    assert [b["within_target"] for b in rep["overall"]] == [True, False, True]
    s = rep["summary"]
    assert s["overall_within"] == 2 and s["class_within"] == 2 * s["classes_measured"] and s["classes_within"] == 0
    assert rep["summary_line"].startswith("overall: 2/3 bands within 3 DN and 10 %;")


def test_constant_real_band() -> None:
    from rsaug.evaluation.radiometry import BandMoments

    real = BandMoments(pixels=10, mean=[5.0, 5.0], std=[0.0, 0.0])
    gen = BandMoments(pixels=10, mean=[5.5, 5.0], std=[0.0, 1.0])
    a, b = compare_bands(real, gen)  # type: ignore[misc]
    assert a["std_ratio"] is None and a["std_error_pct"] == 0.0 and a["within_target"]
    assert b["std_ratio"] is None and b["std_error_pct"] is None and not b["within_target"]
    assert compare_bands(BandMoments(0, None, None), gen) is None


def test_evaluate_writes_radiometry(gid15_tileset, real_test, tmp_path) -> None:
    from rsaug.evaluation import EvaluateConfig, evaluate
    from rsaug.evaluation.evaluate import _chunk_seed
    from rsaug.gan.inference import load_generator

    ckpt = _write_checkpoint(tmp_path / "cse" / "checkpoints" / "last.ckpt", "csebgan")
    cfg = EvaluateConfig(
        tiles=str(gid15_tileset),
        checkpoints=[str(ckpt)],
        labels=["CSE"],
        max_tiles=4,
        diversity_masks=0,
        csd_masks=0,
        fid=False,
        segmentation=False,
        device="cpu",
    )
    out = tmp_path / "eval"
    evaluate(cfg, out)
    data = json.loads((out / "evaluation.json").read_text())
    images, masks, names = real_test
    images, masks = images[:4], masks[:4]
    rad = data["checkpoints"][0]["radiometry"]
    assert set(rad) == {"units", "target", "pixels", "overall", "classes", "unknown", "summary", "summary_line"}
    assert rad["units"] == "DN (uint8)" and rad["pixels"] == {"real": masks.size, "generated": masks.size}
    assert [c["class"] for c in rad["classes"]] == names and rad["unknown"]["class"] == "unknown"

    # the real figures are numpy's over the 4 real test tiles; the reference section holds the same moments
    mean, std = _numpy_moments(images, masks, np.ones(masks.shape, bool))
    np.testing.assert_allclose([b["real_mean"] for b in rad["overall"]], mean, rtol=1e-10)
    np.testing.assert_allclose([b["real_std"] for b in rad["overall"]], std, rtol=1e-9)
    ref = data["reference"]["radiometry"]
    np.testing.assert_allclose(ref["overall"]["mean"], mean, rtol=1e-10)
    assert ref["units"] == "DN (uint8)" and ref["overall"]["pixels"] == masks.size

    # the generated figures are numpy's over the generator's to_raster output for the same masks and seed
    gen = load_generator(ckpt, device="cpu")
    seed = _chunk_seed(cfg.seed, 0)
    with torch.inference_mode():
        fake = gen.to_raster(gen.generate(masks, noise=gen.sample_noise(4, seed=seed), seed=seed))
    assert fake.dtype == np.uint8 and fake.shape == images.shape
    gmean, gstd = _numpy_moments(fake, masks, np.ones(masks.shape, bool))
    np.testing.assert_allclose([b["generated_mean"] for b in rad["overall"]], gmean, rtol=1e-9)
    np.testing.assert_allclose([b["generated_std"] for b in rad["overall"]], gstd, rtol=1e-7)

    present = 0
    for c, row in enumerate(rad["classes"]):
        n = int((masks == c).sum())
        assert row["real_pixels"] == row["generated_pixels"] == n
        if n == 0:
            assert row["bands"] is None
            continue
        present += 1
        gm, _ = _numpy_moments(fake, masks, masks == c)
        rm, _ = _numpy_moments(images, masks, masks == c)
        np.testing.assert_allclose([b["mean_error_dn"] for b in row["bands"]], gm - rm, rtol=1e-7, atol=1e-7)
    all_bands = [*rad["overall"], *(b for c in rad["classes"] if c["bands"] for b in c["bands"])]
    for b in all_bands:
        for key in ("real_mean", "real_std", "generated_mean", "generated_std", "mean_error_dn", "std_error_pct"):
            assert math.isfinite(b[key])
        assert 0 <= b["generated_mean"] <= 255
        assert b["within_target"] == (abs(b["mean_error_dn"]) <= 3 and abs(b["std_error_pct"]) <= 10)
    s = rad["summary"]
    assert s["overall_bands"] == 3 and s["classes_measured"] == present and s["class_pairs"] == 3 * present
    assert s["overall_within"] == sum(b["within_target"] for b in rad["overall"])
    assert s["class_within"] == sum(b["within_target"] for c in rad["classes"] if c["bands"] for b in c["bands"])
    # a random generator is far from the real radiometry
    assert s["overall_within"] < 3

    # the radiometry floor: the same figures for the FID floor's draw of 4 real train tiles against the 4 test tiles
    from rsaug.evaluation.evaluate import _floor_draw

    floor = data["reference"]["radiometry_floor"]
    assert floor["split"] == "train" and floor["tiles"] == floor["evaluated_tiles"] == 4
    assert "fid_floor" not in data["reference"]  # FID was off; the radiometry floor does not need it
    drawn = _floor_draw(TileSet.open(gid15_tileset), cfg, 4)
    assert set(drawn.tile_ids).isdisjoint(load_tiles(TileSet.open(gid15_tileset), ["test"], "test").tile_ids)
    fimg, fmask = np.stack(drawn.images), np.stack(drawn.masks)
    fmean, fstd = _numpy_moments(fimg, fmask, np.ones(fmask.shape, bool))
    np.testing.assert_allclose([b["generated_mean"] for b in floor["overall"]], fmean, rtol=1e-10)
    np.testing.assert_allclose([b["generated_std"] for b in floor["overall"]], fstd, rtol=1e-9)
    np.testing.assert_allclose([b["real_mean"] for b in floor["overall"]], mean, rtol=1e-10)
    w_dn, w = 0.0, 0
    for c, row in enumerate(floor["classes"]):
        both = (masks == c).any() and (fmask == c).any()
        assert (row["bands"] is not None) == both
        if both:
            rm, _ = _numpy_moments(images, masks, masks == c)
            fm, _ = _numpy_moments(fimg, fmask, fmask == c)
            w_dn += int((masks == c).sum()) * np.mean(np.abs(fm - rm))
            w += int((masks == c).sum())
    assert floor["summary"]["class_mean_abs_error_dn"] == pytest.approx(w_dn / w, rel=1e-7)
    # two real sets differ as well: the floor is not zero
    assert floor["summary"]["class_mean_abs_error_dn"] > 0

    md = (out / "evaluation.md").read_text()
    assert "## Radiometry, DN (uint8), test tiles" in md and f"CSE: {rad['summary_line']}" in md
    assert f"floor: 4 real train tiles: {floor['summary_line']}" in md and "Radiometry floor:" in md
    band0 = next(line for line in md.splitlines() if line.startswith("| CSE | 0 |"))
    assert f"{rad['overall'][0]['mean_error_dn']:+.2f}" in band0
    page = (out / "evaluation.html").read_text()
    assert "CSE: radiometry per class" in page and rad["summary_line"] in page
    assert "floor: 4 real train tiles: radiometry per class" in page

    # without floors: no radiometry floor either, and the tables do not mention one
    cfg.fid_floor_split = None
    evaluate(cfg, tmp_path / "eval-nofloor")
    data = json.loads((tmp_path / "eval-nofloor" / "evaluation.json").read_text())
    assert "radiometry_floor" not in data["reference"] and data["checkpoints"][0]["radiometry"] == rad
    assert "floor" not in (tmp_path / "eval-nofloor" / "evaluation.md").read_text().split("## Radiometry")[1]
