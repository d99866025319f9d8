"""Session fixtures producing tile sets from real data (owned by the tiler).

* ``gid15_tileset``: 90 real GID-15 pairs (6 per scene class, picked deterministically, pixel-identical
  duplicates skipped), index masks with scheme ``gid15``, tile size 224 (one tile per pair), split 4:1:1 with
  seed 0. Every one of the 15 classes occurs. Returns the tile-set root.
* ``chesapeake_tileset``: the georeferenced Chesapeake tile (``naip-new`` 4-band + ``lc``, scheme
  ``chesapeake``, EPSG:26917) cut into 64-px tiles (16 tiles), split 4:1:1 seed 0. Returns the root.

Both are built once per test session in a temporary directory and must be treated as read-only.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio

from rsaug.tiling import TileOptions, tile_scenes
from tests.conftest import CHESAPEAKE_TILE, GID15

GID15_PER_CLASS = 6
GID15_TILE = 224
CHESAPEAKE_STEM = "m_3907833_nw_17_1"


def gid15_fixture_stems(per_class: int = GID15_PER_CLASS) -> list[str]:
    """The GID-15 stems of the fixture: the first ``per_class`` of each scene class (sorted by stem) whose image
    and label are 224x224 and whose image is not a pixel duplicate of an earlier pick."""
    with open(GID15 / "manifest.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: r["stem"])
    seen: set[str] = set()
    picked: dict[str, list[str]] = {}
    for r in rows:
        lst = picked.setdefault(r["scene_class"], [])
        if len(lst) >= per_class or r["image_sha1_16"] in seen or (r["height"], r["width"]) != ("224", "224"):
            continue
        seen.add(r["image_sha1_16"])
        lst.append(r["stem"])
    return [s for cls in sorted(picked) for s in picked[cls]]


def gid15_pairs(stems: list[str]) -> list[tuple[Path, Path]]:
    """(image, index label) paths of GID-15 stems."""
    return [(GID15 / "images" / f"{s}.tif", GID15 / "labels_index" / f"{s}.tif") for s in stems]


def chesapeake_pair() -> tuple[Path, Path]:
    """(naip-new image, lc label) of the georeferenced Chesapeake tile."""
    return (CHESAPEAKE_TILE / f"{CHESAPEAKE_STEM}_naip-new.tif", CHESAPEAKE_TILE / f"{CHESAPEAKE_STEM}_lc.tif")


@pytest.fixture(scope="session")
def gid15_tileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real GID-15 tile set (90 tiles of 224 px, 4:1:1 seed 0, all 15 classes present); returns its root."""
    root = tmp_path_factory.mktemp("gid15_tileset") / "tiles"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tile_scenes(
            gid15_pairs(gid15_fixture_stems()),
            root,
            TileOptions(tile_size=GID15_TILE, scheme="gid15", split="4:1:1", seed=0),
        )
    return root


@pytest.fixture(scope="session")
def chesapeake_tileset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A georeferenced Chesapeake tile set (64-px tiles, EPSG:26917, 4 bands); returns its root."""
    root = tmp_path_factory.mktemp("chesapeake_tileset") / "tiles"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tile_scenes([chesapeake_pair()], root, TileOptions(tile_size=64, scheme="chesapeake", split="4:1:1", seed=0))
    return root


def assert_same_tile_file(
    a: Path, b: Path, *, ignore_profile: tuple[str, ...] = (), ignore_tags_of_a: frozenset[str] = frozenset()
) -> None:
    """Two tile GeoTIFFs hold the same tile: pixels, georeferencing, profile, dataset/band/structure tags,
    band descriptions, colour interpretation and colormap. (Their compressed bytes may differ: ISA-L's deflate
    does not always pick the same matches in different processes; the decoded content is what rsaug guarantees
    to be reproducible.)

    Args:
        a, b: The files.
        ignore_profile: Profile keys allowed to differ (e.g. ``blockysize`` between the two writers).
        ignore_tags_of_a: Dataset tags only ``a`` has (e.g. the TIFF resolution tags tifffile always writes).
    """
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert np.array_equal(x.read(), y.read()), (a, b)
        px = {k: v for k, v in x.profile.items() if k not in ignore_profile}
        py = {k: v for k, v in y.profile.items() if k not in ignore_profile}
        assert px == py, (a, b)  # driver, dtype, nodata, size, count, crs, transform, tiled, compress, interleave
        assert x.crs == y.crs and x.transform == y.transform and x.nodata == y.nodata and x.bounds == y.bounds
        assert {k: v for k, v in x.tags().items() if k not in ignore_tags_of_a} == y.tags(), (a, b)
        assert x.tags(ns="IMAGE_STRUCTURE") == y.tags(ns="IMAGE_STRUCTURE"), (a, b)
        assert all(x.tags(i) == y.tags(i) for i in range(1, x.count + 1)) and x.descriptions == y.descriptions
        assert x.colorinterp == y.colorinterp, (a, b)
        if x.colorinterp[0].name == "palette":
            assert x.colormap(1) == y.colormap(1), (a, b)


def assert_same_tileset(a: Path, b: Path) -> None:
    """Two tile sets are the same: the same files, every tile the same (:func:`assert_same_tile_file`), the
    same index rows and footprints, and byte-identical JSON files (GeoPackages carry a timestamp and are compared
    as tables; lock files are not part of a tile set)."""
    from rsaug.io.tileset import TileSet

    def files(root: Path) -> list[Path]:
        return sorted(p.relative_to(root) for p in root.rglob("*") if p.is_file() and p.name != ".rsaug.lock")

    assert files(a) == files(b)
    for rel in files(a):
        if rel.suffix == ".tif":
            assert_same_tile_file(a / rel, b / rel)
        elif rel.name != "index.gpkg":
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ta, tb = TileSet.open(a), TileSet.open(b)
    assert ta.index.drop(columns="geometry").equals(tb.index.drop(columns="geometry"))
    assert ta.index.geometry.geom_equals_exact(tb.index.geometry, tolerance=0).all()
    assert ta.index.crs == tb.index.crs and ta.description == tb.description
