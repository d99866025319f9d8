"""Tiler tests on real data: georeferencing, pixels, reprojected / colour / vector masks, filter, splits, resume."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.warp import Resampling, calculate_default_transform, reproject
from rasterio.windows import Window
from rasterio.windows import bounds as window_bounds

import rsaug.tiling.workers as tiling_workers
from rsaug.core.classes import IGNORE, get_scheme
from rsaug.core.errors import InputError
from rsaug.core.files import TMP_PREFIX
from rsaug.io.tileset import TileSet, count_column
from rsaug.tiling import (
    TileOptions,
    TilingWarning,
    assign_random,
    overlapping_pairs,
    parse_split,
    tile_scenes,
    tile_windows,
)
from tests.conftest import GEOREF_PAIR, GID15
from tests.fixtures_tiles import assert_same_tile_file, chesapeake_pair, gid15_fixture_stems, gid15_pairs

pytestmark = [
    pytest.mark.filterwarnings("ignore::rsaug.tiling.options.TilingWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


@pytest.fixture(scope="module")
def road_scheme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """User JSON scheme of the georeferenced pair: 0 background, 1 road, 2 building."""
    p = tmp_path_factory.mktemp("scheme") / "roads.json"
    p.write_text(
        json.dumps(
            {
                "name": "roads",
                "classes": [
                    {"name": "background", "value": 0, "color": [0, 0, 0]},
                    {"name": "road", "value": 1, "color": [255, 255, 0]},
                    {"name": "building", "value": 2, "color": [255, 0, 0]},
                ],
                "unknown_values": [],
                "unknown_color": [255, 255, 255],
            }
        )
    )
    return p


def _check_georef_and_pixels(root: Path, scene: Path, mask: Path, scheme_name: str | Path) -> None:
    ts = TileSet.open(root)
    scheme = get_scheme(scheme_name)
    with rasterio.open(scene) as s, rasterio.open(mask) as m:
        assert ts.index.crs == s.crs
        assert ts.georeferenced and CRS.from_user_input(ts.description["crs"]) == s.crs
        assert len(ts.index) > 0
        for _, row in ts.index.iterrows():
            win = Window(row.col_off, row.row_off, row.width, row.height)
            with rasterio.open(ts.image_path(row)) as ti, rasterio.open(ts.mask_path(row)) as tm:
                for t in (ti, tm):
                    assert t.crs == s.crs
                    assert t.transform == s.transform * rasterio.Affine.translation(row.col_off, row.row_off)
                    assert t.transform == rasterio.windows.transform(win, s.transform)
                    assert np.allclose(tuple(t.bounds), window_bounds(win, s.transform), rtol=0, atol=1e-6)
                assert tm.nodata == IGNORE and tm.dtypes[0] == "uint8"
                assert tm.colormap(1)[0][:3] == scheme.classes[0].color
                img = ti.read()
                assert img.dtype == s.dtypes[0] and img.shape[0] == s.count
                assert np.array_equal(img, s.read(window=win))
                expect = scheme.encode(m.read(1, window=win))
                assert np.array_equal(tm.read(1), expect)
            assert np.allclose(row.geometry.bounds, window_bounds(win, s.transform), rtol=0, atol=1e-6)
            counts = scheme.class_counts(expect)
            assert [row[count_column(n)] for n in scheme.names] == counts.tolist()
            assert row.unknown_fraction == pytest.approx((expect == IGNORE).mean(), abs=1e-6)


def test_chesapeake_georeferencing_exact(chesapeake_tileset: Path) -> None:
    scene, mask = chesapeake_pair()
    _check_georef_and_pixels(chesapeake_tileset, scene, mask, "chesapeake")
    ts = TileSet.open(chesapeake_tileset)
    assert ts.bands == 4 and ts.dtype == "uint8" and ts.description["tile_size"] == 64
    assert len(ts.index) == 16  # 260 px -> 4 complete 64-px tiles per side, partial ones dropped
    assert sorted(ts.index.tile_id)[0] == "m_3907833_nw_17_1_naip-new_r0_c0"


def test_georef_pair_exact_with_json_scheme_and_overlap(tmp_path: Path, road_scheme: Path) -> None:
    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    idx = tile_scenes(
        [(scene, mask)], tmp_path / "t", tile_size=128, stride=96, scheme=str(road_scheme), max_unknown=1.0
    )
    assert len(idx) == 25  # offsets 0, 96, ..., 384 on both axes
    assert {(r, c) for r, c in zip(idx.row_off, idx.col_off)} == {
        (r, c) for r in range(0, 385, 96) for c in range(0, 385, 96)
    }
    _check_georef_and_pixels(tmp_path / "t", scene, mask, road_scheme)


@pytest.mark.parametrize("factor", [0.5, 1.0])
def test_mask_in_other_crs_is_aligned(tmp_path: Path, road_scheme: Path, factor: float) -> None:
    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    with rasterio.open(mask) as src:
        ref = src.read(1)
        dst_crs = CRS.from_epsg(32619)  # neighbouring UTM zone: a rotated, rescaled grid
        t, w, h = calculate_default_transform(
            src.crs, dst_crs, src.width, src.height, *src.bounds, resolution=src.res[0] * factor
        )
        out = np.zeros((h, w), np.uint8)
        reproject(
            ref,
            out,
            src_transform=src.transform,
            src_crs=src.crs,
            dst_transform=t,
            dst_crs=dst_crs,
            resampling=Resampling.nearest,
        )
        prof = {**src.profile, "crs": dst_crs, "transform": t, "width": w, "height": h, "nodata": None}
    warped = tmp_path / "label_utm19.tif"
    with rasterio.open(warped, "w", **prof) as d:
        d.write(out, 1)
    idx = tile_scenes([(scene, warped)], tmp_path / "t", tile_size=128, scheme=str(road_scheme), max_unknown=1.0)
    desc = TileSet.open(tmp_path / "t").description
    assert desc["sources"][0]["resampled"] is True
    ts = TileSet.open(tmp_path / "t")
    agree, agree_shifted = [], []
    for _, row in idx.iterrows():
        m = ts.read_mask(row)
        sl = np.s_[row.row_off : row.row_off + 128, row.col_off : row.col_off + 128]
        valid = m != IGNORE
        assert valid.mean() > 0.99
        agree.append((m == ref[sl])[valid].mean())
        agree_shifted.append((m == np.roll(ref, 1, axis=1)[sl])[valid].mean())
    # nearest neighbour twice: exact for the finer grid, nearly exact at the same resolution;
    # a one-pixel misalignment would give ~0.96
    assert min(agree) >= (0.9999 if factor < 1 else 0.998)
    assert np.mean(agree_shifted) < 0.97


def test_partially_overlapping_mask_gives_unknown_outside(tmp_path: Path, road_scheme: Path) -> None:
    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    with rasterio.open(mask) as src:
        data = src.read(1, window=Window(0, 0, 256, 512))  # left half only
        prof = {**src.profile, "width": 256, "transform": src.transform}
    half = tmp_path / "left.tif"
    with rasterio.open(half, "w", **prof) as d:
        d.write(data, 1)
    idx = tile_scenes([(scene, half)], tmp_path / "t", tile_size=128, scheme=str(road_scheme), max_unknown=0.8)
    assert set(idx.col_off) == {0, 128}  # right half entirely unknown -> dropped
    assert idx.attrs["summary"]["dropped"]["unknown_fraction"] == 8


def test_mask_nodata_value_reads_as_unknown(tmp_path: Path) -> None:
    """A source mask's own nodata value (not a class of the scheme) becomes unknown; a class value stays."""
    stem = "lake_001"
    scene, lab = GID15 / "images" / f"{stem}.tif", GID15 / "labels_index" / f"{stem}.tif"
    with rasterio.open(lab) as src:
        raw = src.read(1)
        prof = dict(src.profile)
    holed = raw.copy()
    holed[:50, :70] = 200  # a block of "no data" in the file's own convention
    for nodata, name in ((200, "holes.tif"), (None, "holes_undeclared.tif")):
        with rasterio.open(tmp_path / name, "w", **{**prof, "nodata": nodata}) as d:
            d.write(holed, 1)
    idx = tile_scenes([(scene, tmp_path / "holes.tif")], tmp_path / "t", tile_size=224, scheme="gid15", max_unknown=1.0)
    ts = TileSet.open(tmp_path / "t")
    got = ts.read_mask(ts.index.iloc[0])
    expect = get_scheme("gid15").encode(raw)
    expect[:50, :70] = IGNORE
    assert (got == expect).all()
    assert idx.iloc[0]["unknown_fraction"] == pytest.approx(float((expect == IGNORE).mean()), abs=1e-6)
    with pytest.raises(InputError, match="outside class scheme"):  # undeclared: still an error
        tile_scenes([(scene, tmp_path / "holes_undeclared.tif")], tmp_path / "u", tile_size=224, scheme="gid15")
    # nodata equal to a class value (0 = industrial_land in gid15): pixels keep their class, with a warning
    with rasterio.open(tmp_path / "zero.tif", "w", **{**prof, "nodata": 0}) as d:
        d.write(raw, 1)
    with pytest.warns(TilingWarning, match="nodata value 0 is class 'industrial_land'"):
        tile_scenes([(scene, tmp_path / "zero.tif")], tmp_path / "z", tile_size=224, scheme="gid15", max_unknown=1.0)
    z = TileSet.open(tmp_path / "z")
    assert (z.read_mask(z.index.iloc[0]) == get_scheme("gid15").encode(raw)).all()


def test_colour_labels_gid15_equal_index_labels(tmp_path: Path) -> None:
    stems = gid15_fixture_stems(per_class=1)
    colour = [(GID15 / "images" / f"{s}.tif", GID15 / "labels_color" / f"{s}_15label.png") for s in stems]
    a = tile_scenes(colour, tmp_path / "colour", tile_size=224, max_unknown=1.0)
    b = tile_scenes(gid15_pairs(stems), tmp_path / "index", tile_size=224, max_unknown=1.0)
    ta, tb = TileSet.open(tmp_path / "colour"), TileSet.open(tmp_path / "index")
    assert list(a.tile_id) == list(b.tile_id) and len(a) == 15
    for (_, ra), (_, rb) in zip(ta.index.iterrows(), tb.index.iterrows()):
        assert np.array_equal(ta.read_mask(ra), tb.read_mask(rb))
    cols = [count_column(n) for n in ta.scheme.names]
    assert (a[cols].to_numpy() == b[cols].to_numpy()).all()


def test_vector_mask_rasterized_like_raster(tmp_path: Path, road_scheme: Path) -> None:
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    with rasterio.open(mask) as src:
        lab = src.read(1)
        feats = [(shape(g), int(v)) for g, v in shapes(lab, transform=src.transform)]
        crs = src.crs
    names = ["background", "road", "building"]
    gdf = gpd.GeoDataFrame({"class": [names[v] for _, v in feats]}, geometry=[g for g, _ in feats], crs=crs)
    gdf = gdf.to_crs(4326)  # stored in another CRS: reprojected onto the scene grid
    vec = tmp_path / "labels.gpkg"
    gdf.to_file(vec, driver="GPKG")
    tile_scenes([(scene, vec)], tmp_path / "v", tile_size=128, scheme=str(road_scheme), max_unknown=1.0)
    tile_scenes([(scene, mask)], tmp_path / "r", tile_size=128, scheme=str(road_scheme), max_unknown=1.0)
    tv, tr = TileSet.open(tmp_path / "v"), TileSet.open(tmp_path / "r")
    assert tv.description["sources"][0]["mask_kind"] == "vector"
    agree = [
        (tv.read_mask(a) == tr.read_mask(b)).mean() for (_, a), (_, b) in zip(tv.index.iterrows(), tr.index.iterrows())
    ]
    assert min(agree) > 0.99  # polygon edges through a reprojection round trip may flip a few pixels


def test_vector_fill_gives_uncovered_pixels_a_class(tmp_path: Path, road_scheme: Path) -> None:
    """Only road and building polygons: uncovered scene pixels are unknown, or background with --vector-fill."""
    import geopandas as gpd
    from rasterio.features import shapes
    from shapely.geometry import shape

    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    with rasterio.open(mask) as src:
        lab = src.read(1)
        feats = [(shape(g), int(v)) for g, v in shapes(lab, transform=src.transform) if int(v) != 0]
        crs = src.crs
    names = ["background", "road", "building"]
    vec = tmp_path / "objects.geojson"
    gpd.GeoDataFrame({"class": [names[v] for _, v in feats]}, geometry=[g for g, _ in feats], crs=crs).to_file(vec)
    kw = {"tile_size": 128, "scheme": str(road_scheme), "max_unknown": 1.0}
    tile_scenes([(scene, vec)], tmp_path / "plain", **kw)
    tile_scenes([(scene, vec)], tmp_path / "filled", vector_fill="background", **kw)
    tile_scenes([(scene, mask)], tmp_path / "raster", **kw)
    tp, tf, tr = (TileSet.open(tmp_path / n) for n in ("plain", "filled", "raster"))
    for (_, a), (_, b), (_, c) in zip(tp.index.iterrows(), tf.index.iterrows(), tr.index.iterrows()):
        ref = tr.read_mask(c)
        plain, filled = tp.read_mask(a), tf.read_mask(b)
        assert (plain[ref == 0] == IGNORE).all()  # background not covered by any polygon -> unknown
        assert (filled == ref).all()  # background filled in: identical to the raster mask
    assert tf.index["unknown_fraction"].max() == 0.0


def test_non_georeferenced_warns_and_has_no_crs(gid15_tileset: Path) -> None:
    ts = TileSet.open(gid15_tileset)
    assert ts.index.crs is None and not ts.georeferenced
    with rasterio.open(ts.image_path(ts.index.iloc[0])) as t:
        assert t.crs is None
    with pytest.warns(TilingWarning, match="not georeferenced"):
        warnings.simplefilter("always")
        tile_scenes(gid15_pairs(gid15_fixture_stems(1)[:1]), gid15_tileset.parent / "w", tile_size=224)


def test_gid15_fixture(gid15_tileset: Path) -> None:
    ts = TileSet.open(gid15_tileset)
    assert len(ts.index) == 90
    assert (ts.class_pixel_counts() > 0).all()  # all 15 classes occur
    assert {s: len(ts.split(s)) for s in ("train", "val", "test")} == {"train": 60, "val": 15, "test": 15}
    row = ts.index.iloc[0]
    stem = row.tile_id.rsplit("_r0_c0", 1)[0]
    with rasterio.open(GID15 / "images" / f"{stem}.tif") as s:
        assert np.array_equal(ts.read_image(row), s.read())
    with rasterio.open(GID15 / "labels_index" / f"{stem}.tif") as s:
        assert np.array_equal(ts.read_mask(row), get_scheme("gid15").encode(s.read(1)))


def test_unknown_fraction_filter(tmp_path: Path) -> None:
    stems = gid15_fixture_stems(per_class=2)
    scheme = get_scheme("gid15")
    unk = {}
    for s in stems:
        with rasterio.open(GID15 / "labels_index" / f"{s}.tif") as src:
            unk[s] = float((scheme.encode(src.read(1)) == IGNORE).mean())
    thr = float(np.median(list(unk.values())))
    idx = tile_scenes(gid15_pairs(stems), tmp_path / "t", tile_size=224, max_unknown=thr)
    kept = {t.rsplit("_r0_c0", 1)[0] for t in idx.tile_id}
    assert kept == {s for s, u in unk.items() if u <= thr}
    assert 0 < len(kept) < len(stems)
    assert idx.attrs["summary"]["dropped"]["unknown_fraction"] == len(stems) - len(kept)
    assert (idx.unknown_fraction <= thr + 1e-6).all()
    assert not any((tmp_path / "t" / "images" / f"{s}_r0_c0.tif").exists() for s in set(stems) - kept)


def test_split_ratios_determinism_and_reserve(tmp_path: Path) -> None:
    s = assign_random(600, parse_split("4:1:1"), 0, 0)
    assert {k: int((s == k).sum()) for k in ("train", "val", "test")} == {"train": 400, "val": 100, "test": 100}
    assert np.array_equal(s, assign_random(600, parse_split("4:1:1"), 0, 0))
    assert not np.array_equal(s, assign_random(600, parse_split("4:1:1"), 0, 1))
    r = assign_random(100, parse_split("8:1:1"), 10, 3)
    assert {k: int((r == k).sum()) for k in ("reserved", "train", "val", "test")} == {
        "reserved": 10,
        "train": 72,
        "val": 9,
        "test": 9,
    }
    pairs = gid15_pairs(gid15_fixture_stems(per_class=2))
    a = tile_scenes(pairs, tmp_path / "a", tile_size=224, seed=5, reserve=3, max_unknown=1.0)
    b = tile_scenes(pairs, tmp_path / "b", tile_size=224, seed=5, reserve=3, max_unknown=1.0)
    c = tile_scenes(pairs, tmp_path / "c", tile_size=224, seed=6, reserve=3, max_unknown=1.0)
    assert list(a.split) == list(b.split) and list(a.split) != list(c.split)
    assert a.attrs["summary"]["splits"] == {"train": 18, "val": 5, "test": 4, "reserved": 3}
    assert TileSet.open(tmp_path / "a").description["split_counts"] == a.attrs["summary"]["splits"]


def test_blocked_split_never_separates_overlapping_tiles(tmp_path: Path, road_scheme: Path) -> None:
    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    idx = tile_scenes(
        [(scene, mask)],
        tmp_path / "t",
        tile_size=64,
        stride=32,
        scheme=str(road_scheme),
        split="1:1:1",
        split_mode="blocked",
        block_size=128,
        max_unknown=1.0,
        seed=1,
    )
    summary = idx.attrs["summary"]
    assert summary["dropped"]["split_buffer"] > 0
    assert len(set(idx.split)) == 3
    pairs = overlapping_pairs(idx.geometry)
    assert len(pairs) > 100
    assert all(idx.split.iloc[i] == idx.split.iloc[j] for i, j in pairs)
    # the same run in random mode does separate overlapping tiles (the test can fail)
    rnd = tile_scenes(
        [(scene, mask)],
        tmp_path / "r",
        tile_size=64,
        stride=32,
        scheme=str(road_scheme),
        split="1:1:1",
        max_unknown=1.0,
        seed=1,
    )
    assert any(rnd.split.iloc[i] != rnd.split.iloc[j] for i, j in overlapping_pairs(rnd.geometry))


def test_tile_windows_edge_policies() -> None:
    assert tile_windows(260, 260, 64, 64, "drop")[-1] == (192, 192)
    assert len(tile_windows(260, 260, 64, 64, "drop")) == 16
    pad = tile_windows(260, 260, 64, 64, "pad")
    assert len(pad) == 25 and pad[-1] == (256, 256)
    assert tile_windows(100, 50, 64, 64, "drop") == []
    assert tile_windows(100, 50, 64, 64, "pad") == [(0, 0), (0, 64)]


def test_pad_edge_fills_unknown(tmp_path: Path) -> None:
    scene, mask = chesapeake_pair()
    idx = tile_scenes([(scene, mask)], tmp_path / "t", tile_size=64, scheme="chesapeake", edge="pad", max_unknown=1.0)
    ts = TileSet.open(tmp_path / "t")
    row = ts.index[(ts.index.row_off == 256) & (ts.index.col_off == 0)].iloc[0]
    m, img = ts.read_mask(row), ts.read_image(row)
    assert (m[4:] == IGNORE).all() and (m[:4] != IGNORE).all() and (img[:, 4:] == 0).all()
    with rasterio.open(scene) as s:
        assert np.array_equal(img[:, :4], s.read(window=Window(0, 256, 64, 4)))
    assert row.unknown_fraction == pytest.approx(60 / 64)
    assert len(idx) == 25
    assert idx.attrs["summary"]["dropped"]["partial_edge"] == 0


def test_resume_after_interrupt_equals_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pairs = gid15_pairs(gid15_fixture_stems(per_class=2))
    full = tile_scenes(pairs, tmp_path / "full", tile_size=224, max_unknown=1.0)
    real = tiling_workers.write_tile  # pass 2 writes the tiles there
    calls = {"n": 0}

    def killing_write_tile(path, array, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 21:  # die in the middle of a write: a temporary file is left behind
            (Path(path).parent / f"{TMP_PREFIX}killed.tif").write_bytes(b"half")
            raise KeyboardInterrupt
        return real(path, array, **kw)

    monkeypatch.setattr(tiling_workers, "write_tile", killing_write_tile)
    with pytest.raises(KeyboardInterrupt):
        tile_scenes(pairs, tmp_path / "resumed", tile_size=224, max_unknown=1.0)
    monkeypatch.setattr(tiling_workers, "write_tile", real)
    out = tmp_path / "resumed"
    assert not (out / "index.gpkg").exists() and len(list((out / "images").iterdir())) < len(full) + 1
    with pytest.raises(Exception, match="not empty"):
        tile_scenes(pairs, out, tile_size=224, max_unknown=1.0)
    with pytest.raises(Exception, match="differ"):
        tile_scenes(pairs, out, tile_size=224, max_unknown=0.5, resume=True)
    res = tile_scenes(pairs, out, tile_size=224, max_unknown=1.0, resume=True)
    assert res.attrs["summary"]["skipped_existing"] == 10 and res.attrs["summary"]["written"] == len(full) - 10
    files_a = sorted(p.relative_to(tmp_path / "full") for p in (tmp_path / "full").rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel.suffix == ".tif":
            assert_same_tile_file(tmp_path / "full" / rel, out / rel)
        elif rel.name != "index.gpkg":  # GeoPackages carry a timestamp; compared as tables below
            assert (tmp_path / "full" / rel).read_bytes() == (out / rel).read_bytes(), rel
    ta, tb = TileSet.open(tmp_path / "full"), TileSet.open(out)
    assert ta.index.drop(columns="geometry").equals(tb.index.drop(columns="geometry"))
    assert ta.description == tb.description


def test_workers_give_identical_result(tmp_path: Path, road_scheme: Path) -> None:
    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    a = tile_scenes([(scene, mask)], tmp_path / "a", tile_size=64, scheme=str(road_scheme), workers=1)
    b = tile_scenes([(scene, mask)], tmp_path / "b", tile_size=64, scheme=str(road_scheme), workers=2)
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    for tid in a.tile_id:
        for sub in ("images", "masks"):
            name = f"{sub}/{tid}.tif"
            assert_same_tile_file(tmp_path / "a" / name, tmp_path / "b" / name)


def test_options_saved_as_json(chesapeake_tileset: Path) -> None:
    cfg = json.loads((chesapeake_tileset / "tile-config.json").read_text())
    assert TileOptions(**cfg["options"]).tile_size == 64
    assert cfg["sources"][0]["crs"] == "EPSG:26917"


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_any_dtype_and_band_count(tmp_path: Path, road_scheme: Path, dtype: str) -> None:
    """A 5-band uint16 / float32 scene (the real image scaled, plus a derived band) keeps dtype, bands and values."""
    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    with rasterio.open(scene) as src:
        rgb = src.read().astype(np.float64)
        prof = src.profile
    data = np.concatenate([rgb * 257.0, rgb[:2] * 100.5 + 3.25]).astype(dtype)
    prof.update(count=5, dtype=dtype, compress="deflate")
    big = tmp_path / f"scene_{dtype}.tif"
    with rasterio.open(big, "w", **prof) as d:
        d.write(data)
    tile_scenes([(big, mask)], tmp_path / "t", tile_size=200, scheme=str(road_scheme), edge="pad")
    ts = TileSet.open(tmp_path / "t")
    assert ts.bands == 5 and ts.dtype == dtype and len(ts.index) == 9
    for _, row in ts.index.iterrows():
        tile = ts.read_image(row)
        assert tile.dtype == np.dtype(dtype) and tile.shape == (5, 200, 200)
        h = min(200, 512 - row.row_off)
        w = min(200, 512 - row.col_off)
        assert np.array_equal(tile[:, :h, :w], data[:, row.row_off : row.row_off + h, row.col_off : row.col_off + w])
        assert (tile[:, h:] == 0).all() and (tile[:, :, w:] == 0).all()


def test_scenes_in_two_crs_share_one_index(tmp_path: Path, road_scheme: Path) -> None:
    """Tiles keep their own scene's CRS; the index footprints are all in the first scene's CRS."""
    from rasterio.warp import transform_geom
    from shapely.geometry import box, shape

    scene, mask = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    dst_crs = CRS.from_epsg(32619)
    paths = []
    for src_path, name in ((scene, "image_utm19.tif"), (mask, "label_utm19.tif")):
        with rasterio.open(src_path) as src:
            t, w, h = calculate_default_transform(src.crs, dst_crs, src.width, src.height, *src.bounds)
            out = np.zeros((src.count, h, w), src.dtypes[0])
            reproject(
                src.read(),
                out,
                src_transform=src.transform,
                src_crs=src.crs,
                dst_transform=t,
                dst_crs=dst_crs,
                resampling=Resampling.nearest,
            )
            prof = {**src.profile, "crs": dst_crs, "transform": t, "width": w, "height": h}
        with rasterio.open(tmp_path / name, "w", **prof) as d:
            d.write(out)
        paths.append(tmp_path / name)
    idx = tile_scenes(
        [(scene, mask), tuple(paths)], tmp_path / "t", tile_size=128, scheme=str(road_scheme), max_unknown=1.0
    )
    with rasterio.open(scene) as s0:
        assert idx.crs == s0.crs
    ts = TileSet.open(tmp_path / "t")
    second = ts.index[ts.index.tile_id.str.startswith("image_utm19")]
    assert len(second) > 0
    for _, row in second.iterrows():
        with rasterio.open(ts.image_path(row)) as t:
            assert t.crs == dst_crs
            expect = shape(transform_geom(dst_crs, idx.crs, box(*t.bounds).__geo_interface__))
        assert row.geometry.symmetric_difference(expect).area < 1e-6 * expect.area
