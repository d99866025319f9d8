"""``rsaug stac`` and ``rsaug tile --stac`` through click's CliRunner: good runs and bad inputs (exit 2, one line,
nothing written)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pystac
import pytest
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.io.tileset import TileSet
from tests.fixtures_tiles import chesapeake_pair

pytestmark = [pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning")]


def run(*args: object):
    return CliRunner().invoke(cli, [*map(str, args)], catch_exceptions=False)


def assert_bad_input(result, *words: str) -> None:
    """Exit 2, exactly one line ``Error: ...`` containing ``words``, no traceback."""
    assert result.exit_code == 2, result.output
    lines = [ln.split("\r")[-1] for ln in result.stderr.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in result.output
    for w in words:
        assert w in lines[0], lines[0]


def n_items(collection_json: Path) -> int:
    return len(list(pystac.Collection.from_file(str(collection_json)).get_items(recursive=True)))


def test_tile_with_stac_writes_the_catalog_after_the_tile_set(tmp_path: Path) -> None:
    ches = ("tile", *chesapeake_pair(), "--scheme", "chesapeake")
    out = tmp_path / "tiles"
    res = run(*ches, "-o", out, "--tile-size", 64, "--stac", out / "stac")
    assert res.exit_code == 0, res.output
    assert "STAC collection written to" in res.output
    assert n_items(out / "stac" / "collection.json") == len(TileSet.open(out).index) == 16
    assert not list(out.rglob(".rsaug*"))  # no lock or temporary left
    # bad: the catalog inside the tile set's images/ folder; refused before anything is written
    fresh = tmp_path / "fresh"
    res = run(*ches, "-o", fresh, "--tile-size", 64, "--stac", fresh / "images")
    assert_bad_input(res, str(fresh / "images"), "images/")
    assert not fresh.exists()
    # bad: an existing catalog without --overwrite (checked before tiling); --overwrite replaces both
    res = run(*ches, "-o", tmp_path / "t2", "--tile-size", 64, "--stac", out / "stac")
    assert_bad_input(res, "--overwrite")
    assert not (tmp_path / "t2").exists()
    res = run(*ches, "-o", out, "--tile-size", 128, "--stac", out / "stac", "--overwrite")
    assert res.exit_code == 0, res.output
    assert n_items(out / "stac" / "collection.json") == len(TileSet.open(out).index) == 4


def test_stac_command(chesapeake_tileset: Path, tmp_path: Path) -> None:
    res = run("stac", "--help")
    assert res.exit_code == 0 and "--overwrite" in res.output and "TILES" in res.output
    out = tmp_path / "cat"
    res = run("stac", chesapeake_tileset, "-o", out)
    assert res.exit_code == 0, res.output
    assert "16 items" in res.output and n_items(out / "collection.json") == 16
    assert_bad_input(run("stac", chesapeake_tileset, "-o", out), str(out), "--overwrite")
    assert run("stac", chesapeake_tileset, "-o", out, "--overwrite", "-q").output == ""
    assert n_items(out / "collection.json") == 16


def test_stac_command_bad_inputs(chesapeake_tileset: Path, tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    assert_bad_input(run("stac", plain, "-o", tmp_path / "c1"), str(plain), "not an rsaug tile set")
    assert_bad_input(run("stac", tmp_path / "missing", "-o", tmp_path / "c2"), "tile set directory not found")
    copy = tmp_path / "tiles"
    shutil.copytree(chesapeake_tileset, copy)
    before = sorted(p.relative_to(copy) for p in copy.rglob("*"))
    assert_bad_input(run("stac", copy, "-o", copy / "masks" / "stac"), "masks/")
    assert_bad_input(run("stac", copy, "-o", copy), "tile-set directory")
    assert sorted(p.relative_to(copy) for p in copy.rglob("*")) == before  # nothing written
    assert not (tmp_path / "c1").exists() and not (tmp_path / "c2").exists()
