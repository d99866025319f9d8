"""The fast tile writer (GDAL template + tifffile + ISA-L) produces the same GeoTIFFs as GDAL, on real data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.crs import CRS
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

import rsaug.io.tileset as tileset
from rsaug.core.classes import get_scheme
from rsaug.io.geotiff import fast_layout
from tests.conftest import CHESAPEAKE_TILE, GEOREF_PAIR, GID15
from tests.fixtures_tiles import assert_same_tile_file

RESOLUTION_TAGS = frozenset({"TIFFTAG_XRESOLUTION", "TIFFTAG_YRESOLUTION", "TIFFTAG_RESOLUTIONUNIT"})


def _both(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, array: np.ndarray, **kw: object
) -> tuple[Path, Path]:
    """Write ``array`` with the fast path (asserting it is taken) and with GDAL."""
    calls: list[int] = []
    real = tileset.write_fast
    monkeypatch.setattr(tileset, "write_fast", lambda *a, **k: (calls.append(1), real(*a, **k)))
    fast = tmp_path / f"{name}_fast.tif"
    tileset.write_tile(fast, array, **kw)  # type: ignore[arg-type]
    assert calls, "the fast writer was not used"
    monkeypatch.setattr(tileset, "_cached_layout", lambda *a: None)
    gdal = tmp_path / f"{name}_gdal.tif"
    tileset.write_tile(gdal, array, **kw)  # type: ignore[arg-type]
    monkeypatch.undo()
    return fast, gdal


def _assert_same(fast: Path, gdal: Path, array: np.ndarray) -> None:
    assert_same_tile_file(fast, gdal, ignore_profile=("blockysize",), ignore_tags_of_a=RESOLUTION_TAGS)
    with rasterio.open(fast) as f:
        assert np.array_equal(f.read(), array if array.ndim == 3 else array[None])
        # the only structural difference: one strip per band instead of GDAL's ~8 kB strips
        assert f.profile["blockysize"] == f.height
        assert f.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"] == "2"


def test_chesapeake_image_and_mask_match_gdal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    win = Window(3, 4, 256, 256)
    with rasterio.open(CHESAPEAKE_TILE / "m_3907833_nw_17_1_naip-new.tif") as src:
        image, crs, tr = src.read(window=win), src.crs, window_transform(win, src.transform)
    with rasterio.open(CHESAPEAKE_TILE / "m_3907833_nw_17_1_lc.tif") as src:
        raw = src.read(1, window=win)
    scheme = get_scheme("chesapeake")
    mask = scheme.encode(raw)
    fast, gdal = _both(tmp_path, monkeypatch, "img", image, crs=crs, transform=tr)
    _assert_same(fast, gdal, image)
    with rasterio.open(fast) as f:  # the tile keeps the scene CRS and the exact window transform
        assert f.crs == crs and f.transform == tr and f.colorinterp[3].name == "undefined"  # NIR is not alpha
    fast, gdal = _both(tmp_path, monkeypatch, "mask", mask, crs=crs, transform=tr, is_mask=True, scheme=scheme)
    _assert_same(fast, gdal, mask)
    with rasterio.open(fast) as f:
        assert f.nodata == 255 and f.colormap(1)[0][:3] == scheme.classes[0].color


def test_second_tile_of_a_layout_gets_its_own_origin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template is made once per layout; every later tile must still carry its own transform."""
    with rasterio.open(GEOREF_PAIR / "image.tif") as src:
        for i, (r, c) in enumerate([(0, 0), (256, 0), (0, 256), (256, 256), (100, 37)]):
            win = Window(c, r, 256, 256)
            img, tr = src.read(window=win), window_transform(win, src.transform)
            fast, gdal = _both(tmp_path, monkeypatch, f"t{i}", img, crs=src.crs, transform=tr)
            _assert_same(fast, gdal, img)
            with rasterio.open(fast) as f:
                assert f.transform == tr
                assert f.bounds == rasterio.windows.bounds(win, src.transform)


def test_user_defined_crs_and_non_georeferenced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stem = sorted(p.stem for p in (GID15 / "images").glob("*.tif"))[0]
    with rasterio.open(GID15 / "images" / f"{stem}.tif") as src:
        img = src.read(window=Window(0, 0, 224, 224))
    # a CRS with no EPSG code: its GeoTIFF keys are user-defined, copied from GDAL's template
    albers = CRS.from_proj4(
        "+proj=aea +lat_1=29.5 +lat_2=45.5 +lat_0=23 +lon_0=-96 +x_0=0 +y_0=0 +datum=NAD83 +units=m +no_defs"
    )
    tr = rasterio.transform.from_origin(1_234_567.5, 2_345_678.25, 0.6, 0.6)
    fast, gdal = _both(tmp_path, monkeypatch, "albers", img, crs=albers, transform=tr)
    _assert_same(fast, gdal, img)
    fast, gdal = _both(tmp_path, monkeypatch, "plain", img)  # GID-15 as distributed: no georeferencing
    _assert_same(fast, gdal, img)
    with rasterio.open(fast) as f:
        assert f.crs is None


@pytest.mark.parametrize("dtype", ["uint16", "int16", "int32"])
def test_wide_integer_predictor_wraps_like_gdal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, dtype: str) -> None:
    """Predictor 2 on multi-byte integers with large jumps (modular differences) and extreme values."""
    with rasterio.open(GEOREF_PAIR / "image.tif") as src:
        base = src.read(window=Window(0, 0, 256, 256)).astype(np.int64)
        crs, tr = src.crs, src.transform
    info = np.iinfo(dtype)
    arr = (base * 257 + info.min).clip(info.min, info.max).astype(dtype)
    arr[:, ::7, ::5] = info.max
    arr[:, 3::11, ::3] = info.min
    fast, gdal = _both(tmp_path, monkeypatch, dtype, arr, crs=crs, transform=tr)
    _assert_same(fast, gdal, arr)


def test_other_cases_fall_back_to_gdal(tmp_path: Path) -> None:
    img = np.zeros((3, 256, 256), np.uint8)
    base = tileset._tile_profile(img, None, None, False, "deflate", 1)
    assert fast_layout(base, img)
    assert not fast_layout(tileset._tile_profile(img, None, None, False, "deflate", 6), img)  # level > 3
    assert not fast_layout(tileset._tile_profile(img, None, None, False, "lzw", 1), img)
    assert not fast_layout(
        tileset._tile_profile(img.astype(np.float32), None, None, False, "deflate", 1), img.astype(np.float32)
    )
    big = np.zeros((3, 512, 512), np.uint8)  # internally tiled by GDAL
    assert not fast_layout(tileset._tile_profile(big, None, None, False, "deflate", 1), big)
    rotated = rasterio.Affine(1, 0.5, 0, 0.5, -1, 0)
    assert not fast_layout(tileset._tile_profile(img, "EPSG:32650", rotated, False, "deflate", 1), img)
    # per-tile metadata (synthetic provenance) goes through GDAL and is kept
    tileset.write_tile(tmp_path / "t.tif", img, tags={"source_tile": "a"})
    with rasterio.open(tmp_path / "t.tif") as f:
        assert f.tags()["source_tile"] == "a"


@pytest.mark.parametrize("shape", [(64, 64), (37, 101), (16, 4000), (256, 200)])
def test_small_and_odd_tiles(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shape: tuple[int, int]) -> None:
    """16- and 32-bit strip byte counts, odd sizes, and incompressible data (deflate output larger than input)."""
    h, w = shape
    with rasterio.open(GEOREF_PAIR / "image.tif") as src:
        img = src.read(window=Window(0, 0, min(w, src.width), min(h, src.height)))
        img = np.resize(img, (3, h, w))  # real pixels, tiled to the requested shape
        crs, tr = src.crs, src.transform
    noise = np.random.default_rng(0).integers(0, 256, (3, h, w), dtype=np.uint8)
    for name, arr in (("real", img), ("noise", noise), ("mask", noise[0] % 7)):
        fast, gdal = _both(tmp_path, monkeypatch, f"{name}{h}x{w}", arr, crs=crs, transform=tr)
        _assert_same(fast, gdal, arr)


def test_non_contiguous_views(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The tiler passes column slices of a row of tiles; both writers must take such views."""
    with rasterio.open(GEOREF_PAIR / "image.tif") as src:
        row = src.read(window=Window(0, 0, 512, 128))
        crs, tr = src.crs, src.transform
    view = row[:, :, 100:356]
    assert not view.flags.c_contiguous
    fast, gdal = _both(tmp_path, monkeypatch, "view", view, crs=crs, transform=tr)
    _assert_same(fast, gdal, view)
    mask_view = (row[0] % 5)[:, 37:293]
    fast, gdal = _both(
        tmp_path, monkeypatch, "mview", mask_view, crs=crs, transform=tr, is_mask=True, scheme=get_scheme("gid5")
    )
    _assert_same(fast, gdal, mask_view)
