"""Whole-scene synthesis as a cloud-optimized GeoTIFF (``--cog``) and ``rsaug synthesize --stac`` (scene and tile
set), with a real untrained generator (``load_generator`` replaced; nothing is trained)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pystac
import pytest
import rasterio
from click.testing import CliRunner
from rio_cogeo.cogeo import cog_validate

import rsaug.cli.synthesize as synth_cli
from rsaug.cli.main import cli
from rsaug.io.tileset import TileSet
from rsaug.synthesis import synthesize_scene
from tests.conftest import CHESAPEAKE_TILE, GID15
from tests.synthesis.conftest import varied_generator

pytestmark = [pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")]
LC = CHESAPEAKE_TILE / "m_3907833_nw_17_1_lc.tif"


@pytest.fixture(scope="module")
def ches_gen():
    return varied_generator("chesapeake", 4)


@pytest.fixture
def fake_checkpoint(monkeypatch: pytest.MonkeyPatch, ches_gen):
    """``rsaug synthesize -c ANY`` gets the untrained Chesapeake generator."""
    monkeypatch.setattr(synth_cli, "load_generator", lambda *a, **k: ches_gen)
    return "untrained.ckpt"


def run(*args: object):
    return CliRunner().invoke(cli, ["synthesize", *map(str, args)], catch_exceptions=False)


def one_error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [ln.split("\r")[-1] for ln in result.stderr.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


def test_cog_scene_and_its_stac_item(fake_checkpoint: str, ches_gen, tmp_path: Path) -> None:
    out, stac = tmp_path / "scene.tif", tmp_path / "scene_stac"
    args = ("-c", fake_checkpoint, "--scene-mask", LC, "-o", out, "--window", 128, "--overlap", 32, "--seed", 3)
    res = run(*args, "--cog", "--stac", stac, "--device", "cpu")
    assert res.exit_code == 0, res.output
    assert "cloud-optimized" in res.output and "STAC collection written to" in res.output
    valid, errors, warns = cog_validate(str(out), quiet=True)
    assert valid and not errors, (errors, warns)
    plain = tmp_path / "plain.tif"
    synthesize_scene(LC, ches_gen, plain, window=128, overlap=32, seed=3, batch_size=8)
    with rasterio.open(out) as cog, rasterio.open(plain) as ref, rasterio.open(LC) as m:
        assert cog.overviews(1) and cog.profile["tiled"] and cog.block_shapes[0] == (256, 256)
        assert cog.compression.name == "deflate"
        assert (cog.crs, cog.transform, cog.shape) == (m.crs, m.transform, m.shape)
        np.testing.assert_array_equal(cog.read(), ref.read())  # the same pixels as the plain GeoTIFF
        assert cog.tags()["RSAUG_CHECKPOINT_SHA256"] == ches_gen.checkpoint_sha256
    assert json.loads(out.with_suffix(".json").read_text())["cog"] is True
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["plain.json", "plain.tif", "scene.json", "scene.tif", "scene_stac"]  # no scratch file left
    # the scene's STAC item: the COG as image, the source mask (raw Chesapeake values) as labels, provenance
    col = pystac.Collection.from_file(str(stac / "collection.json"))
    (item,) = list(col.get_items(recursive=True))
    image, mask = item.assets["image"], item.assets["mask"]
    assert image.media_type == pystac.MediaType.COG and not Path(image.href).is_absolute()
    assert Path(image.get_absolute_href()).resolve() == out.resolve()
    assert image.extra_fields["file:checksum"] == "1220" + hashlib.sha256(out.read_bytes()).hexdigest()
    assert Path(mask.get_absolute_href()).resolve() == LC.resolve()
    classes = mask.extra_fields["classification:classes"]
    assert [c["value"] for c in classes if not c.get("nodata")] == [1, 2, 3, 4, 5, 6]
    assert sorted(c["value"] for c in classes if c.get("nodata")) == [0, 15]
    props = item.properties
    assert props["proj:code"] == "EPSG:26917" and props["proj:shape"] == [260, 260]
    assert props["rsaug:synthetic"] is True and props["rsaug:cog"] is True and props["rsaug:seed"] == 3
    assert props["rsaug:checkpoint_sha256"] == ches_gen.checkpoint_sha256
    x0, y0, x1, y1 = item.bbox
    assert -80 < x0 < x1 < -78 and 39 < y0 < y1 < 40


def test_cog_refused_for_a_mask_without_crs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    gen = varied_generator("gid15", 3)

    def no_generation(*args, **kwargs):
        raise AssertionError("generated before the --cog check")

    monkeypatch.setattr(gen, "generate", no_generation)
    monkeypatch.setattr(synth_cli, "load_generator", lambda *a, **k: gen)
    mask = sorted((GID15 / "labels_index").glob("*.tif"))[0]
    with rasterio.open(mask) as m:
        assert m.crs is None
    out = tmp_path / "scene.tif"
    line = one_error_line(
        run("-c", "x.ckpt", "--scene-mask", mask, "-o", out, "--cog", "--stac", tmp_path / "stac", "--device", "cpu")
    )
    assert str(mask) in line and "--cog" in line and "no CRS" in line
    assert list(tmp_path.iterdir()) == []
    line = one_error_line(run("-c", "x.ckpt", "--scene-mask", mask, "-o", out, "--stac", out.parent / "s", "--dry-run"))
    assert "--stac" in line
    assert "--scene-mask" in one_error_line(run("-c", "x.ckpt", "some_tiles", "-o", out, "--cog"))
    assert list(tmp_path.iterdir()) == []


def test_synthetic_tile_set_with_stac(fake_checkpoint: str, chesapeake_tileset: Path, tmp_path: Path) -> None:
    syn = tmp_path / "syn"
    # a catalog inside the output's masks/ folder is refused before anything is planned or written
    line = one_error_line(run("-c", fake_checkpoint, chesapeake_tileset, "-o", syn, "--stac", syn / "masks" / "c"))
    assert "masks/" in line and not syn.exists()
    res = run("-c", fake_checkpoint, chesapeake_tileset, "-o", syn, "--stac", syn / "stac", "--device", "cpu")
    assert res.exit_code == 0, res.output
    ts = TileSet.open(syn)
    items = list(pystac.Collection.from_file(str(syn / "stac" / "collection.json")).get_items(recursive=True))
    assert len(items) == len(ts.index) > 0
    assert all(it.properties["rsaug:synthetic"] is True for it in items)
    assert {it.properties["rsaug:checkpoint_sha256"] for it in items} == set(ts.index["checkpoint_sha256"])
