"""FreeMask pixel filtering (``rsaug filter``) on real GID-15 tiles with a briefly trained real-only U-Net."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.core.classes import IGNORE, get_scheme
from rsaug.gan.inference import file_sha256
from rsaug.integrations.torchgeo import TileSetDataset
from rsaug.io.tileset import TileSet
from rsaug.segmentation import load_segmenter, load_tiles
from rsaug.synthesis import class_mean_losses, pixel_losses

warnings.filterwarnings("ignore", category=rasterio.errors.NotGeoreferencedWarning)


def _filter(*args: str):
    return CliRunner().invoke(cli, ["filter", *map(str, args)])


def _ce(seg, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-pixel cross-entropy computed here, independently of the library (224 px: no padding needed)."""
    x = seg.norm.apply(torch.as_tensor(image[None]))
    with torch.no_grad():
        logits = seg.model.eval()(x)
    t = torch.as_tensor(mask[None].astype(np.int64))
    return torch.nn.functional.cross_entropy(logits, t, ignore_index=IGNORE, reduction="none")[0].numpy()


@pytest.fixture(scope="module")
def margin(gid15_tileset: Path, gid_syn: Path, real_segmenter: Path) -> float:
    """A margin that removes about half of the synthetic pixels: the median of loss / class mean real loss.

    (The briefly trained U-Net's losses are not those of a converged one, so FreeMask's 1.25 could remove all or
    nothing; the test needs both removed and kept pixels.)"""
    seg, _ = load_segmenter(real_segmenter, torch.device("cpu"))
    mean, _ = class_mean_losses(seg, load_tiles(TileSet.open(gid15_tileset), ["train"], "real"), 15)
    syn = TileSet.open(gid_syn)
    ratios = []
    for _, r in syn.index.iterrows():
        m = syn.read_mask(r)
        lab = m != IGNORE
        ratios.append(pixel_losses(seg, syn.read_image(r), m)[lab] / mean[m[lab]])
    return round(float(np.nanmedian(np.concatenate(ratios))), 4)


@pytest.fixture(scope="module")
def filtered(
    gid15_tileset: Path, gid_syn: Path, real_segmenter: Path, margin: float, tmp_path_factory: pytest.TempPathFactory
):
    out = tmp_path_factory.mktemp("filtered") / "syn_f"
    res = _filter(gid_syn, "-o", out, "--segmenter", real_segmenter, "--real", gid15_tileset, "--device", "cpu",
                  "--margin", margin)  # fmt: skip
    assert res.exit_code == 0, res.output
    return out


def test_class_mean_losses_are_the_class_means(gid15_tileset: Path, real_segmenter: Path) -> None:
    seg, _ = load_segmenter(real_segmenter, torch.device("cpu"))
    tiles = load_tiles(TileSet.open(gid15_tileset), ["train"], "real").select(range(5))
    mean, counts = class_mean_losses(seg, tiles, 15, batch_size=2)
    sums, n = np.zeros(15), np.zeros(15)
    for im, m in zip(tiles.images, tiles.masks):
        ce = _ce(seg, im, m)
        lab = m != IGNORE
        sums += np.bincount(m[lab], weights=ce[lab], minlength=15)
        n += np.bincount(m[lab], minlength=15)
    np.testing.assert_array_equal(counts, n)
    np.testing.assert_allclose(mean[n > 0], sums[n > 0] / n[n > 0], rtol=1e-4)
    assert np.all(np.isnan(mean[n == 0]))


def test_removed_pixels_are_the_high_loss_ones(
    gid15_tileset: Path, gid_syn: Path, real_segmenter: Path, filtered, margin: float
) -> None:
    seg, _ = load_segmenter(real_segmenter, torch.device("cpu"))
    report = json.loads((filtered / "filter_report.json").read_text())
    assert report["config"]["margin"] == margin
    real_counts = TileSet.open(gid15_tileset).class_pixel_counts("train")
    for k, c in enumerate(report["classes"]):
        assert c["real_pixels"] == real_counts[k]
        if real_counts[k]:
            assert c["threshold"] == pytest.approx(margin * c["real_mean_loss"], rel=1e-9)
    thr = np.array([np.inf if c["threshold"] is None else c["threshold"] for c in report["classes"]])
    src, out = TileSet.open(gid_syn), TileSet.open(filtered)
    removed_any = kept_any = 0
    for (_, r), (_, o) in zip(src.index.iterrows(), out.index.iterrows()):
        m, f = src.read_mask(r), out.read_mask(o)
        ce = _ce(seg, src.read_image(r), m)
        removed = (m != IGNORE) & (f == IGNORE)
        kept = f != IGNORE
        assert np.all(ce[removed] > thr[m[removed]] - 1e-4)
        assert np.all(ce[kept] <= thr[f[kept]] + 1e-4)
        assert np.array_equal(f[kept], m[kept])  # kept pixels keep their class
        assert np.all(f[m == IGNORE] == IGNORE)  # unknown stays unknown
        removed_any += int(removed.sum())
        kept_any += int(kept.sum())
    assert removed_any > 0 and kept_any > 0


def test_removal_shares_add_up_and_index_is_updated(gid_syn: Path, filtered) -> None:
    report = json.loads((filtered / "filter_report.json").read_text())
    src, out = TileSet.open(gid_syn), TileSet.open(filtered)
    cls = report["classes"]
    assert sum(c["pixels_removed"] for c in cls) == report["pixels_removed"] == int(out.index["filter_removed"].sum())
    assert sum(c["pixels_before"] for c in cls) == report["pixels_labelled_before"]
    assert report["pixels_removed"] > 0
    assert sum(c["share_of_removed"] for c in cls) == pytest.approx(1.0)
    assert report["share_removed"] == pytest.approx(report["pixels_removed"] / report["pixels_labelled_before"])
    for c in cls:
        col = f"px_{c['name']}"
        assert int(src.index[col].sum()) == c["pixels_before"]
        assert int(out.index[col].sum()) == c["pixels_after"] == c["pixels_before"] - c["pixels_removed"]
        if c["pixels_before"]:
            assert c["share_removed"] == pytest.approx(c["pixels_removed"] / c["pixels_before"])
    for _, o in out.index.iterrows():
        m = out.read_mask(o)
        assert o["unknown_fraction"] == pytest.approx(float((m == IGNORE).mean()))


def test_output_is_a_valid_tileset_with_provenance(gid_syn: Path, real_segmenter: Path, filtered, margin) -> None:
    src, out = TileSet.open(gid_syn), TileSet.open(filtered)
    assert out.synthetic and list(out.index["tile_id"]) == list(src.index["tile_id"])
    assert out.description["split_counts"] == src.description["split_counts"]
    f = out.description["filtering"]
    assert f["segmenter_sha256"] == file_sha256(real_segmenter) and f["margin"] == margin
    assert set(f["share_removed_by_class"]) == set(src.scheme.names)
    for (_, r), (_, o) in zip(src.index.iterrows(), out.index.iterrows()):
        np.testing.assert_array_equal(src.read_image(r), out.read_image(o))  # same images
        with rasterio.open(out.mask_path(o)) as m:
            tags = m.tags()
            assert tags["RSAUG_FILTER_SEGMENTER_SHA256"] == file_sha256(real_segmenter)
            assert float(tags["RSAUG_FILTER_MARGIN"]) == margin and tags["RSAUG_SYNTHETIC"] == "true"
            assert m.nodata == 255
    ds = TileSetDataset(out, "train")
    item = ds[0]
    assert item["mask"].shape == (224, 224) and bool(item["synthetic"])


def test_class_gate_ignores_exactly_the_classes_the_filter_mostly_rejects(
    gid15_tileset: Path, gid_syn: Path, real_segmenter: Path, filtered, margin: float, tmp_path: Path
) -> None:
    """``--min-kept-share``: the classes of which less than that share passed the loss filter (read from the
    ungated run's report) are ignored everywhere; every other pixel is exactly as in the ungated run."""
    plain = json.loads((filtered / "filter_report.json").read_text())
    kept = {c["name"]: 1 - c["share_removed"] for c in plain["classes"] if c["pixels_before"]}
    gate = round(float(np.median(list(kept.values()))), 6) + 1e-6  # about half of the classes fall below
    expect = sorted(n for n, k in kept.items() if k < gate)
    assert 0 < len(expect) < len(kept)
    out = tmp_path / "gated"
    res = _filter(gid_syn, "-o", out, "--segmenter", real_segmenter, "--real", gid15_tileset, "--device", "cpu",
                  "--margin", margin, "--min-kept-share", gate)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "class gate: ignored" in res.output
    report = json.loads((out / "filter_report.json").read_text())
    assert sorted(report["config"]["dropped_classes"]) == expect and report["config"]["min_kept_share"] == gate
    assert sorted(c["name"] for c in report["classes"] if c["dropped_by_class_gate"]) == expect
    for c in report["classes"]:
        if c["name"] in expect:
            assert c["pixels_after"] == 0 and c["share_removed"] == 1.0
        else:
            assert c["pixels_removed"] == next(p for p in plain["classes"] if p["name"] == c["name"])["pixels_removed"]
    names = TileSet.open(gid_syn).scheme.names
    dropped_ids = [names.index(n) for n in expect]
    src, ref, gated = TileSet.open(gid_syn), TileSet.open(filtered), TileSet.open(out)
    assert sorted(gated.description["filtering"]["dropped_classes"]) == expect
    for (_, r), (_, f), (_, g) in zip(src.index.iterrows(), ref.index.iterrows(), gated.index.iterrows()):
        m, mf, mg = src.read_mask(r), ref.read_mask(f), gated.read_mask(g)
        in_dropped = np.isin(m, dropped_ids)
        assert np.all(mg[in_dropped] == IGNORE)
        assert np.array_equal(mg[~in_dropped], mf[~in_dropped])
    with rasterio.open(gated.mask_path(gated.index.iloc[0])) as m:
        assert sorted(m.tags()["RSAUG_FILTER_DROPPED_CLASSES"].split(",")) == expect


def test_train_segmenter_and_align_in_one_run(gid15_tileset: Path, gid_syn: Path, tmp_path: Path) -> None:
    out = tmp_path / "tf"
    res = _filter(gid_syn, "-o", out, "--train-segmenter", "cpu-small", "--segmenter-iterations", "3", "--real",
                  gid15_tileset, "--align", "mean-std", "--margin", "0.01", "--device", "cpu", "-q")  # fmt: skip
    assert res.exit_code == 0, res.output
    report = json.loads((out / "filter_report.json").read_text())
    assert report["config"]["segmenter_preset"] == "cpu-small" and report["config"]["segmenter_iterations"] == 3
    assert report["config"]["segmenter_sha256"] == file_sha256(out / "segmenter.pt")
    assert report["config"]["radiometry"]["method"] == "mean-std" and report["pixels_removed"] > 0
    ts = TileSet.open(out)
    assert ts.description["filtering"]["margin"] == 0.01
    with rasterio.open(ts.image_path(ts.index.iloc[0])) as im:
        assert im.tags()["RSAUG_ALIGN"] == "mean-std"


def test_bad_input_is_one_line_and_writes_nothing(
    gid15_tileset: Path, gid_syn: Path, real_segmenter: Path, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a segmenter")
    state = torch.load(real_segmenter, weights_only=True)
    other = tmp_path / "other_scheme.pt"
    torch.save({**state, "scheme": get_scheme("chesapeake").to_dict()}, other)
    bands = tmp_path / "other_bands.pt"
    torch.save({**state, "in_channels": 4}, bands)
    cases = [
        (["--segmenter", bad], "segmenter"),
        (["--segmenter", tmp_path / "missing.pt"], "not found"),
        (["--segmenter", other], "class scheme"),
        (["--segmenter", bands], ""),
        (["--segmenter", real_segmenter, "--margin", "0"], "--margin"),
        (["--segmenter", real_segmenter, "--margin", "-1"], "--margin"),
        (["--segmenter", real_segmenter, "--train-segmenter", "cpu-small"], "not both"),
        (["--segmenter", real_segmenter, "--min-kept-share", "1"], "--min-kept-share"),
        (["--segmenter", real_segmenter, "--min-kept-share", "-0.1"], "--min-kept-share"),
        (["--segmenter", real_segmenter, "--min-kept-share", "nan"], "--min-kept-share"),
        (["--align", "mean-std", "--min-kept-share", "0.5"], "needs pixel filtering"),
    ]
    for i, (extra, text) in enumerate(cases):
        out = tmp_path / f"out{i}"
        res = _filter(gid_syn, "-o", out, "--real", gid15_tileset, "--device", "cpu", *extra)
        assert res.exit_code == 2, (extra, res.output)
        assert len(res.output.strip().splitlines()) == 1 and res.output.startswith("Error: "), res.output
        assert text in res.output, res.output
        assert not out.exists()
