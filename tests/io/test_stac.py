"""STAC catalogs of tile sets (``rsaug.io.stac``): items against the real tile GeoTIFFs, relative hrefs after a
copy, non-georeferenced and synthetic sets, odc-stac loading, and the output-directory rules."""

from __future__ import annotations

import hashlib
import shutil
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
import torch
from rasterio.warp import transform as warp_transform
from shapely.geometry import Point, shape

from rsaug.core.errors import InputError
from rsaug.io.stac import COLLECTION_FILE, GLOBAL_BBOX, check_stac_output, write_stac_collection
from rsaug.io.tileset import DESCRIPTION_FILE, TileSet, count_column
from rsaug.synthesis import plan_synthesis, synthesize_tileset
from tests.synthesis.conftest import varied_generator

pytestmark = [pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")]


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def items_of(collection_json: Path) -> tuple[pystac.Collection, list[pystac.Item]]:
    col = pystac.Collection.from_file(str(collection_json))
    return col, sorted(col.get_items(recursive=True), key=lambda it: it.id)


@pytest.fixture(scope="module")
def ches_copy(chesapeake_tileset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the Chesapeake tile set with its catalog in TILES/stac (the session fixture stays
    read-only)."""
    root = tmp_path_factory.mktemp("stac_ches") / "tiles"
    shutil.copytree(chesapeake_tileset, root)
    write_stac_collection(root, root / "stac")
    return root


@pytest.fixture(scope="module")
def ches_gen():
    torch.set_num_threads(2)
    return varied_generator("chesapeake", 4)


@pytest.fixture(scope="module")
def ches_syn(chesapeake_tileset: Path, ches_gen, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("stac_syn") / "syn"
    ts = TileSet.open(chesapeake_tileset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        synthesize_tileset(ts, ches_gen, out, plan_synthesis(ts, samples_per_mask=1, seed=2), batch_size=8)
    return out


def test_georeferenced_items_describe_the_tiles(ches_copy: Path) -> None:
    ts = TileSet.open(ches_copy)
    col, items = items_of(ches_copy / "stac" / COLLECTION_FILE)
    assert len(items) == len(ts.index) == 16
    rows = ts.index.set_index("tile_id", drop=False)
    assert {it.id for it in items} == set(rows.index)
    mtime = datetime.fromtimestamp((ches_copy / DESCRIPTION_FILE).stat().st_mtime, tz=timezone.utc)
    cx0, cy0, cx1, cy1 = col.extent.spatial.bboxes[0]
    for it in items:
        row = rows.loc[it.id]
        for key, path in (("image", ts.image_path(row)), ("mask", ts.mask_path(row))):
            asset = it.assets[key]
            assert not Path(asset.href).is_absolute() and asset.href.startswith("../../")
            assert Path(asset.get_absolute_href()).resolve() == path.resolve()
            assert asset.extra_fields["file:checksum"] == "1220" + sha256(path)
            assert asset.extra_fields["file:size"] == path.stat().st_size
        assert it.assets["image"].roles == ["data"] and "labels" in it.assets["mask"].roles
        with rasterio.open(ts.image_path(row)) as src:
            assert src.crs.to_epsg() == 26917
            assert it.properties["proj:code"] == "EPSG:26917"
            assert it.properties["proj:transform"] == pytest.approx(list(src.transform)[:6], abs=0, rel=0)
            assert it.properties["proj:shape"] == [src.height, src.width]
            cx, cy = src.transform * (src.width / 2, src.height / 2)
            (lon,), (lat,) = warp_transform(src.crs, "EPSG:4326", [cx], [cy])
            assert [b["data_type"] for b in it.assets["image"].extra_fields["raster:bands"]] == list(src.dtypes)
        x0, y0, x1, y1 = it.bbox
        assert x0 < lon < x1 and y0 < lat < y1 and -80 < lon < -78 and 39 < lat < 40
        assert shape(it.geometry).contains(Point(lon, lat))
        assert cx0 <= x0 and cy0 <= y0 and x1 <= cx1 and y1 <= cy1
        assert it.datetime == mtime
        props = it.properties
        assert props["rsaug:split"] == row["split"] and props["rsaug:tile_id"] == it.id
        assert props["rsaug:synthetic"] is False
        assert props["rsaug:unknown_fraction"] == pytest.approx(row["unknown_fraction"])
        assert props["rsaug:class_pixels"] == {n: int(row[count_column(n)]) for n in ts.scheme.names}
        # label + classification: the internal values and the scheme's names and colours
        assert props["label:type"] == "raster" and props["label:properties"] is None
        assert props["label:classes"] == [{"name": None, "classes": list(range(ts.scheme.num_classes))}]
        classes = it.assets["mask"].extra_fields["classification:classes"]
        named = [c for c in classes if not c.get("nodata")]
        assert [(c["value"], c["title"]) for c in named] == list(enumerate(ts.scheme.names))
        assert [c["color_hint"] for c in named] == ["".join(f"{v:02X}" for v in c.color) for c in ts.scheme.classes]
        assert [c["value"] for c in classes if c.get("nodata")] == [255]
        assert it.assets["mask"].extra_fields["raster:bands"] == [{"data_type": "uint8", "nodata": 255}]
    assert col.extra_fields["rsaug:tileset"]["scheme"] == "chesapeake"
    assert col.extent.temporal.intervals == [[mtime, mtime]]


def test_catalog_still_resolves_after_copying_it_with_the_tile_set(ches_copy: Path, tmp_path: Path) -> None:
    moved = tmp_path / "elsewhere" / "deeper" / "tiles"
    shutil.copytree(ches_copy, moved)
    _, items = items_of(moved / "stac" / COLLECTION_FILE)
    for it in items:
        for asset in it.assets.values():
            path = Path(asset.get_absolute_href())
            assert path.is_file() and moved in path.resolve().parents
            assert asset.extra_fields["file:checksum"] == "1220" + sha256(path)


def test_non_georeferenced_set_has_no_geometry(gid15_tileset: Path, tmp_path: Path) -> None:
    path = write_stac_collection(gid15_tileset, tmp_path / "stac")
    ts = TileSet.open(gid15_tileset)
    assert not ts.georeferenced
    col, items = items_of(path)
    assert len(items) == len(ts.index)
    assert col.extent.spatial.bboxes == [GLOBAL_BBOX]
    for it in items:
        assert it.geometry is None and it.bbox is None
        assert it.properties["proj:code"] is None and "proj:transform" not in it.properties
        assert it.properties["proj:shape"] == [224, 224]
        assert it.datetime is not None
    row = ts.index.set_index("tile_id").loc[items[0].id]
    assert Path(items[0].assets["image"].get_absolute_href()).resolve() == (gid15_tileset / row["image"]).resolve()
    classes = items[0].assets["mask"].extra_fields["classification:classes"]
    assert [c["title"] for c in classes if not c.get("nodata")] == ts.scheme.names
    assert not any(gid15_tileset.rglob("collection.json"))  # nothing written into the tile set


def test_synthetic_items_carry_provenance(ches_syn: Path, ches_gen, tmp_path: Path) -> None:
    ts = TileSet.open(ches_syn)
    col, items = items_of(write_stac_collection(ts, tmp_path / "syn_stac"))
    assert len(items) == len(ts.index)
    rows = ts.index.set_index("tile_id", drop=False)
    for it in items:
        props, row = it.properties, rows.loc[it.id]
        assert props["rsaug:synthetic"] is True
        assert props["rsaug:checkpoint_sha256"] == ches_gen.checkpoint_sha256
        assert props["rsaug:source_tile"] == row["source_tile"]
        assert (props["rsaug:sample"], props["rsaug:seed"]) == (int(row["sample"]), int(row["seed"]))
        assert props["rsaug:recipe"]["generator"]["checkpoint_sha256"] == ches_gen.checkpoint_sha256
        assert props["rsaug:recipe"]["plan"]["mode"] == "plain"
        assert "synthetic" in props["label:description"]
        assert it.properties["proj:code"] == "EPSG:26917"
    assert col.extra_fields["rsaug:recipe"]["generator"]["model"] == "csebgan"
    assert col.extra_fields["rsaug:tileset"]["synthetic"] is True


def test_odc_stac_loads_the_tiles_exactly(ches_copy: Path) -> None:
    odc_stac = pytest.importorskip("odc.stac")
    from odc.geo import resxy_, xy_

    _, items = items_of(ches_copy / "stac" / COLLECTION_FILE)
    for it in items[:2]:
        with rasterio.open(it.assets["image"].get_absolute_href()) as im:
            img, t, crs = im.read(), im.transform, im.crs
        with rasterio.open(it.assets["mask"].get_absolute_href()) as mk:
            mask = mk.read(1)
        # the native grid, from the items' projection fields only
        ds = odc_stac.load([it], chunks=None)
        assert ds.odc.geobox.crs.epsg == 26917 and ds.odc.geobox.shape == mask.shape
        assert tuple(ds.odc.geobox.affine)[:6] == pytest.approx(tuple(t)[:6])
        np.testing.assert_array_equal(np.stack([ds[f"image.{b}"].values[0] for b in range(1, 5)]), img)
        np.testing.assert_array_equal(ds["mask"].values[0], mask)
        assert ds["mask"].dtype == np.uint8 and ds["image.1"].dtype == np.uint8
        # bands by asset name, CRS from the item, resolution and pixel-grid anchor from the tile
        anchor = xy_((t.c / abs(t.a)) % 1.0, (t.f / abs(t.e)) % 1.0)
        ds = odc_stac.load(
            [it], bands=["image", "mask"], crs=it.properties["proj:code"], resolution=resxy_(t.a, t.e), anchor=anchor
        )
        assert ds.odc.geobox.crs == crs and ds["mask"].shape[1:] == mask.shape
        np.testing.assert_array_equal(ds["image"].values[0], img[0])
        np.testing.assert_array_equal(ds["mask"].values[0], mask)


def test_output_directory_rules(chesapeake_tileset: Path, ches_copy: Path, tmp_path: Path) -> None:
    for bad in (ches_copy / "images", ches_copy / "images" / "stac", ches_copy / "masks" / "x"):
        with pytest.raises(InputError, match="inside the tile set's"):
            write_stac_collection(ches_copy, bad)
    for bad in (ches_copy, ches_copy.parent):
        with pytest.raises(InputError, match="tile-set directory"):
            write_stac_collection(ches_copy, bad)
    assert not (ches_copy / "images" / "stac").exists() and not (ches_copy / "masks" / "x").exists()
    assert not (ches_copy / COLLECTION_FILE).exists()
    # an existing catalog: refused without overwrite, replaced with it
    out = tmp_path / "stac"
    write_stac_collection(chesapeake_tileset, out)
    (out / "stale_item").mkdir()
    with pytest.raises(InputError, match="overwrite"):
        write_stac_collection(chesapeake_tileset, out)
    write_stac_collection(chesapeake_tileset, out, overwrite=True)
    assert not (out / "stale_item").exists()
    assert len(items_of(out / COLLECTION_FILE)[1]) == 16
    # a directory that holds something else is never overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not a STAC catalog"):
        write_stac_collection(chesapeake_tileset, other, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"
    with pytest.raises(InputError, match="not a directory"):
        check_stac_output(other / "notes.txt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other", "stac"]  # no temporary left


def test_a_failed_write_leaves_nothing(chesapeake_tileset: Path, tmp_path: Path, monkeypatch) -> None:
    def broken_save(self, *args, **kwargs):
        raise OSError("disk on fire")

    monkeypatch.setattr(pystac.Catalog, "save", broken_save)
    with pytest.raises(OSError, match="disk on fire"):
        write_stac_collection(chesapeake_tileset, tmp_path / "stac")
    assert list(tmp_path.iterdir()) == []
