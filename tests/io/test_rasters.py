"""rsaug.io.rasters on real data: scene/mask opening, mask kinds, grid detection, windowed and padded reads."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from rsaug.core.classes import IGNORE, get_scheme
from rsaug.core.errors import InputError
from rsaug.io.rasters import (
    MaskReader,
    clip_window,
    decode_colors_fast,
    encode_fast,
    open_mask,
    open_scene,
    read_padded,
)
from tests.conftest import GEOREF_PAIR, GID15
from tests.fixtures_tiles import chesapeake_pair

pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]


def test_open_scene_georeferenced_and_plain() -> None:
    scene, _ = chesapeake_pair()
    info = open_scene(scene)
    with rasterio.open(scene) as src:
        assert (info.width, info.height, info.count, info.dtype) == (src.width, src.height, 4, "uint8")
        assert info.rio_crs == src.crs and info.affine == src.transform and info.georeferenced
    plain = open_scene(GID15 / "images" / "lake_001.tif")
    assert not plain.georeferenced and plain.crs is None and plain.count == 3


def test_mask_kinds_and_grids() -> None:
    scene = open_scene(GID15 / "images" / "lake_001.tif")
    g15 = get_scheme("gid15")
    idx = open_mask(GID15 / "labels_index" / "lake_001.tif", scene, g15)
    col = open_mask(GID15 / "labels_color" / "lake_001_15label.png", scene, g15)
    assert (idx.kind, col.kind) == ("index", "color") and idx.pixel_grid and not idx.resample
    win = Window(0, 0, 224, 224)
    with MaskReader(idx) as a, MaskReader(col) as b:
        assert np.array_equal(a.read(win), b.read(win))
    ches, lc = chesapeake_pair()
    spec = open_mask(lc, open_scene(ches), get_scheme("chesapeake"))
    assert spec.kind == "index" and not spec.resample and not spec.pixel_grid
    with pytest.raises(InputError, match="index mask must have 1 band"):
        open_mask(ches, open_scene(ches), get_scheme("chesapeake"), kind="index")


def test_mask_read_matches_source_and_pads_unknown() -> None:
    ches, lc = chesapeake_pair()
    spec = open_mask(lc, open_scene(ches), get_scheme("chesapeake"))
    with rasterio.open(lc) as src:
        raw = src.read(1)
    expect = get_scheme("chesapeake").encode(raw)
    with MaskReader(spec) as r:
        assert np.array_equal(r.read(Window(10, 20, 100, 50)), expect[20:70, 10:110])
        edge = r.read(Window(200, 240, 64, 64))  # extends 4 / 20 px past the scene
    assert np.array_equal(edge[:20, :60], expect[240:, 200:])
    assert (edge[20:] == IGNORE).all() and (edge[:, 60:] == IGNORE).all()


def test_resampled_mask_on_shifted_grid(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A mask on the same CRS but a grid shifted by exactly 7 columns / 3 rows is read back in place."""
    image, label = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
    with rasterio.open(label) as src:
        raw = src.read(1)
        prof = {**src.profile, "transform": src.transform * rasterio.Affine.translation(7, 3), "nodata": None}
    shifted = tmp_path / "shifted.tif"
    with rasterio.open(shifted, "w", **prof) as d:
        d.write(raw, 1)
    scheme = get_scheme(_scheme_file(tmp_path))
    spec = open_mask(shifted, open_scene(image), scheme)
    assert spec.resample
    with MaskReader(spec) as r:
        m = r.read(Window(0, 0, 512, 512))
    assert (m[:3] == IGNORE).all() and (m[:, :7] == IGNORE).all()
    assert np.array_equal(m[3:, 7:], raw[:-3, :-7])


def _scheme_file(tmp_path) -> str:  # type: ignore[no-untyped-def]
    p = tmp_path / "roads.json"
    p.write_text(
        '{"name": "roads", "classes": [{"name": "background", "value": 0, "color": [0, 0, 0]}, '
        '{"name": "road", "value": 1, "color": [255, 255, 0]}, '
        '{"name": "building", "value": 2, "color": [255, 0, 0]}], "unknown_color": [255, 255, 255]}'
    )
    return str(p)


def test_clip_and_read_padded() -> None:
    assert clip_window(Window(-5, -2, 10, 10), 100, 100) == (Window(0, 0, 5, 8), 2, 5)
    assert clip_window(Window(200, 0, 10, 10), 100, 100) is None
    with rasterio.open(GEOREF_PAIR / "image.tif") as src:
        full = src.read()
        out = read_padded(src, Window(500, -4, 20, 10), fill=7)
    assert out.shape == (3, 10, 20)
    assert np.array_equal(out[:, 4:, :12], full[:, :6, 500:])
    assert (out[:, :4] == 7).all() and (out[:, :, 12:] == 7).all()


def test_encode_fast_equals_scheme_encode() -> None:
    g15 = get_scheme("gid15")
    with rasterio.open(GID15 / "labels_index" / "pond_001.tif") as src:
        raw = src.read(1)
    assert np.array_equal(encode_fast(g15, raw), g15.encode(raw))
    bad = raw.copy()
    bad[0, :3] = 200
    with pytest.raises(InputError, match=r"200 \(3 px\)"):
        encode_fast(g15, bad, "x.tif")


def test_vector_shapefile_with_raw_values(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Shapefile, numeric raw class values: a box over the left half is 'building', the rest unknown."""
    import geopandas as gpd
    from shapely.geometry import box

    image = GEOREF_PAIR / "image.tif"
    with rasterio.open(image) as src:
        b, t, crs = src.bounds, src.transform, src.crs
    mid_x = (t * (256, 0))[0]
    shp = tmp_path / "left.shp"
    gpd.GeoDataFrame({"code": [2]}, geometry=[box(b.left, b.bottom, mid_x, b.top)], crs=crs).to_file(shp)
    spec = open_mask(shp, open_scene(image), get_scheme(_scheme_file(tmp_path)), class_attribute="code")
    assert spec.kind == "vector"
    with MaskReader(spec) as r:
        m = r.read(Window(128, 0, 256, 512))
    assert (m[:, :128] == 2).all() and (m[:, 128:] == IGNORE).all()
    with pytest.raises(InputError, match="no attribute 'class'"):
        open_mask(shp, open_scene(image), get_scheme(_scheme_file(tmp_path)))


def test_decode_colors_fast_equals_scheme_decode() -> None:
    g15 = get_scheme("gid15")
    with rasterio.open(GID15 / "labels_color" / "pond_001_15label.png") as src:
        rgb = src.read()
    assert np.array_equal(decode_colors_fast(g15, rgb), g15.decode_colors(rgb))
    bad = rgb.copy()
    bad[:, 0, :2] = 7
    with pytest.raises(InputError, match=r"\(7,7,7\)x2"):
        decode_colors_fast(g15, bad, "x.png")
