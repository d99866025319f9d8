"""Hostile rasters for ``rsaug tile`` (issue 13): a property-based corpus of generated inputs.

Hypothesis generates small GeoTIFFs: index masks of every integer and float dtype with values inside and
outside the class scheme (NaN, infinities, fractions, negative and 64-bit values, declared nodata values of
every kind), NaN/inf in float scenes, every scene dtype (complex too) and band count, 1-pixel scenes, odd tile
sizes and strides with both edge policies, masks on shifted / coarser / south-up / foreign / missing
georeferencing against north-up, south-up, rotated, sheared and degenerate scene grids, mismatched band counts
and pixel formats between pairs, colour masks with foreign colours, zero-size files, garbage in any compressed
strip, tile sizes or strides past the memory limits, 1 or 2 worker processes; and files declaring up to
200000 x 200000 pixels in a few kB. Every case runs the real ``rsaug tile`` command (in-process through click's
CliRunner; the huge ones through a real process whose time and peak memory are measured) and must end in one
of two ways:

* exit 0 and a correct tile set: every index row's tiles exist and nothing else does, tiles have the requested
  size, the source's bands and dtype, the exact source pixels (padding = the scene's nodata or 0), masks hold
  exactly the expected classes (from an independent oracle in this file) or 255, and ``tileset.json`` agrees;
* exit 2 and exactly one line ``Error: <the offending file>: ...``, no traceback, and no output left behind.

The oracle also says which of the two must happen (a value outside the scheme inside a tile is an error, a
tile size larger than the scene with ``--edge drop`` is an error, ...), so a wrong exit is a failure too.

The examples are derandomized (the same corpus on every run); ``RSAUG_HYPOTHESIS=explore`` draws fresh, many
more examples (what was run while fixing the defects this corpus found).
"""

from __future__ import annotations

import json
import math
import os
import struct
import subprocess
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
import tifffile
from affine import Affine
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from rsaug.cli.tile import command as tile_command
from rsaug.core.classes import IGNORE, ClassScheme, get_scheme
from rsaug.io.tileset import TileSet, count_column

pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.timeout(600),
]

EXPLORE = os.environ.get("RSAUG_HYPOTHESIS") == "explore"


def corpus(n: int) -> settings:
    """Settings of one property: ``n`` derandomized examples (x10, random, with ``RSAUG_HYPOTHESIS=explore``)."""
    return settings(
        max_examples=n * 10 if EXPLORE else n,
        deadline=None,
        derandomize=not EXPLORE,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


CRS_UTM = "EPSG:32650"
ORIGIN = Affine(1, 0, 500000, 0, -1, 4000000)  # 1 m pixels, north up
INT_DTYPES = ["int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"]
FLOAT_DTYPES = ["float32", "float64"]
SCHEMES = ["gid5", "chesapeake", "loveda"]
TOP_LEVEL = {"images", "masks", "index.gpkg", "tileset.json", "tile-config.json"}


# --------------------------------------------------------------------------- running the command
class Case:
    """One generated case: a fresh directory for its inputs and its output."""

    _n = 0

    def __init__(self, root: Path) -> None:
        Case._n += 1
        self.dir = root / f"case{Case._n}"
        self.dir.mkdir()
        self.out = self.dir / "out"


def write_raster(path: Path, arr: np.ndarray, **profile: Any) -> Path:
    """Write a (bands, h, w) or (h, w) array as a GeoTIFF (``crs``, ``transform``, ``nodata``... in profile)."""
    arr = arr if arr.ndim == 3 else arr[None]
    prof = {"driver": "GTiff", "width": arr.shape[2], "height": arr.shape[1], "count": arr.shape[0]}
    prof["dtype"] = arr.dtype
    prof.update(profile)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with rasterio.open(path, "w", **prof) as dst:
            dst.write(arr)
    return path


def run_tile(*args: object) -> Any:
    """``rsaug tile ARGS`` in-process (the subcommand as registered, see tests/tiling/test_tile_cli.py)."""
    return CliRunner().invoke(tile_command, [*map(str, args)], catch_exceptions=True, prog_name="rsaug tile")


def shown_lines(stderr: str) -> list[str]:
    """The lines a terminal shows (a cleared progress bar leaves carriage returns)."""
    lines = [ln.split("\r")[-1] for ln in stderr.split("\n")]
    return [ln for ln in lines if ln.strip()]


def outcome(what: str) -> None:
    """Count an outcome in hypothesis' statistics (``--hypothesis-show-statistics``): the corpus must reach both."""
    if currently_in_test_context():
        event(what)


def assert_no_crash(result: Any) -> None:
    """No exception escaped the command (the only allowed exit is click's own SystemExit)."""
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(*result.exc_info))
        raise AssertionError(f"rsaug tile crashed (exit {result.exit_code}):\n{tb}")


def assert_one_line_error(result: Any, out: Path, path: object, *words: str) -> str:
    """Exit 2, exactly one line ``Error: ...`` naming ``path`` (unless None), no traceback, no output left."""
    assert_no_crash(result)
    assert result.exit_code == 2, f"expected exit 2, got {result.exit_code}: {result.output}"
    lines = shown_lines(result.stderr)
    assert len(lines) == 1, result.stderr
    line = lines[0]
    assert line.startswith("Error: "), line
    assert "Traceback" not in result.output
    if path is not None:
        assert line.startswith(f"Error: {path}: "), f"error does not name {path}: {line}"
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    assert not out.exists() or not any(out.iterdir()), f"output left behind: {sorted(out.rglob('*'))}"
    outcome(f"error: {line.split(': ', 2)[-1][:40]}")
    return line


# --------------------------------------------------------------------------- the oracle
def offsets(n: int, size: int, stride: int, edge: str) -> list[int]:
    """Tile offsets along one side, as documented (drop: complete tiles; pad: cover every pixel)."""
    if edge == "drop":
        return list(range(0, n - size + 1, stride))
    offs = [0]
    while offs[-1] + size < n:
        offs.append(offs[-1] + stride)
    return offs


def expected_mask(raw: np.ndarray, scheme: ClassScheme, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(internal mask, invalid pixels) of a raw index mask: class k, 255 for the scheme's unknown values and for
    the file's nodata value (compared in the band's dtype, as GDAL does) unless it is a class value; anything
    else is invalid."""
    classes = {c.value: i for i, c in enumerate(scheme.classes)}
    out = np.full(raw.shape, IGNORE, np.uint8)
    invalid = np.zeros(raw.shape, bool)
    if nodata is None:
        holes = np.zeros(raw.shape, bool)
    elif math.isnan(nodata):
        holes = np.isnan(raw) if raw.dtype.kind == "f" else np.zeros(raw.shape, bool)
    else:
        holes = raw == nodata
    flat = raw.astype(np.float64) if raw.dtype.kind == "f" else raw
    for v in np.unique(flat, equal_nan=True).tolist():
        sel = np.isnan(flat) if isinstance(v, float) and math.isnan(v) else flat == v
        is_int = not isinstance(v, float) or (math.isfinite(v) and v.is_integer())
        iv = int(v) if is_int else None
        if iv is not None and iv in classes:
            out[sel] = classes[iv]
        elif iv is not None and iv in scheme.unknown_values:
            out[sel] = IGNORE
        else:
            out[sel & holes] = IGNORE
            invalid |= sel & ~holes
    return out, invalid


def window_of(arr: np.ndarray, r: int, c: int, size: int, fill: Any) -> np.ndarray:
    """``arr[..., r:r+size, c:c+size]`` with pixels past the edge set to ``fill``."""
    h, w = arr.shape[-2:]
    out = np.full((*arr.shape[:-2], size, size), fill, dtype=arr.dtype)
    rr, cc = min(size, max(h - r, 0)), min(size, max(w - c, 0))
    out[..., :rr, :cc] = arr[..., r : r + rr, c : c + cc]
    return out


@dataclass
class Expect:
    """What a successful run must produce: the scene and mask on the scene grid, and the run's options."""

    scene: np.ndarray  # (bands, h, w)
    mask: np.ndarray  # internal (h, w)
    fill: Any
    scheme: ClassScheme
    size: int
    stride: int
    edge: str
    max_unknown: float
    exact_kept: bool = True  # False with --split-mode blocked and overlapping tiles (split buffer)
    georeferenced: bool = True
    transform: Affine | None = None  # the scene's: tiles and footprints are checked against it

    def windows(self) -> list[tuple[int, int]]:
        h, w = self.mask.shape
        return [
            (r, c)
            for r in offsets(h, self.size, self.stride, self.edge)
            for c in offsets(w, self.size, self.stride, self.edge)
        ]

    def tile_mask(self, r: int, c: int) -> np.ndarray:
        return window_of(self.mask, r, c, self.size, IGNORE)

    def passing(self) -> list[tuple[int, int]]:
        return [(r, c) for r, c in self.windows() if (self.tile_mask(r, c) == IGNORE).mean() <= self.max_unknown]


def assert_tile_set(result: Any, out: Path, stem: str, exp: Expect) -> None:
    """Exit 0 and a complete, correct tile set for one scene ``stem``."""
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    ts = TileSet.open(out)
    desc = json.loads((out / "tileset.json").read_text())
    assert {p.name for p in out.iterdir()} == TOP_LEVEL, sorted(p.name for p in out.iterdir())
    assert desc["tile_size"] == exp.size and desc["stride"] == exp.stride
    assert desc["bands"] == exp.scene.shape[0] and desc["dtype"] == str(exp.scene.dtype)
    assert desc["georeferenced"] == exp.georeferenced
    idx = ts.index
    ids = sorted(idx.tile_id)
    assert len(ids) == len(set(ids)) > 0
    assert sorted(p.stem for p in (out / "images").iterdir()) == ids
    assert sorted(p.stem for p in (out / "masks").iterdir()) == ids
    assert sum(desc["split_counts"].values()) == len(idx)
    assert set(idx.split) <= {"train", "val", "test", "reserved"}
    want = {f"{stem}_r{r}_c{c}" for r, c in exp.passing()}
    assert set(ids) == want if exp.exact_kept else set(ids) <= want, sorted(set(ids) ^ want)
    s = desc["summary"]
    h, w = exp.mask.shape  # candidates: the complete tiles plus the partial ones at the edge, dropped or padded
    cand = len(offsets(h, exp.size, exp.stride, "pad")) * len(offsets(w, exp.size, exp.stride, "pad"))
    assert s["candidate_tiles"] == cand
    assert s["kept"] == len(idx)
    assert s["kept"] + sum(s["dropped"].values()) == s["candidate_tiles"]
    for _, row in idx.iterrows():
        r, c = int(row.row_off), int(row.col_off)
        assert (row.width, row.height) == (exp.size, exp.size)
        with rasterio.open(ts.image_path(row)) as ti, rasterio.open(ts.mask_path(row)) as tm:
            assert (ti.width, ti.height, ti.count) == (exp.size, exp.size, exp.scene.shape[0])
            assert (tm.width, tm.height, tm.count) == (exp.size, exp.size, 1)
            img, msk = ti.read(), tm.read(1)
        assert img.dtype == exp.scene.dtype and msk.dtype == np.uint8
        if exp.transform is not None:  # exact window transform; footprint = the tile's quadrilateral
            t = exp.transform @ Affine.translation(c, r)
            assert ti.transform.almost_equals(t, precision=1e-9 * max(1.0, abs(t.c), abs(t.f))), (ti.transform, t)
            corners = np.array([t @ xy for xy in ((0, 0), (exp.size, 0), (exp.size, exp.size), (0, exp.size))])
            want_bounds = (*corners.min(0), *corners.max(0))
            assert np.allclose(row.geometry.bounds, want_bounds, rtol=1e-12, atol=1e-6)
            assert row.geometry.area == pytest.approx(abs(exp.transform.determinant) * exp.size**2, rel=1e-6)
        assert np.array_equal(img, window_of(exp.scene, r, c, exp.size, exp.fill), equal_nan=img.dtype.kind == "f")
        want_mask = exp.tile_mask(r, c)
        assert np.array_equal(msk, want_mask), (r, c, msk, want_mask)
        assert row.unknown_fraction == pytest.approx(float((want_mask == IGNORE).mean()), abs=1e-6)
        counts = np.bincount(want_mask.ravel(), minlength=256)
        assert [row[count_column(n)] for n in exp.scheme.names] == counts[: exp.scheme.num_classes].tolist()
    outcome("tile set")


# --------------------------------------------------------------------------- strategies
def hostile_values(dtype: str) -> list[float]:
    """Raw mask values outside every scheme that ``dtype`` can hold."""
    dt = np.dtype(dtype)
    vals: list[float] = [7.0, 200.0]
    if dt.kind == "f":
        vals += [math.nan, math.inf, -math.inf, 0.5, -1.0, 1e20, 70000.0]
        return vals
    info = np.iinfo(dt)
    vals += [float(v) for v in (-1, -128, 255, 300, 65535, 70000, 2**31 + 5, 2**40) if info.min <= v <= info.max]
    vals += [float(info.max)] if info.max <= 2**53 else []
    return [v for v in vals if info.min <= v <= info.max]


@st.composite
def index_cases(draw: st.DrawFn, mdtype: str) -> dict[str, Any]:
    """A scene + index mask of dtype ``mdtype`` on the same grid, with options."""
    h, w = draw(st.integers(1, 18)), draw(st.integers(1, 18))
    scheme = get_scheme(draw(st.sampled_from(SCHEMES)))
    sdtype = draw(st.sampled_from([*INT_DTYPES, *FLOAT_DTYPES, "complex64"]))
    bands = draw(st.integers(1, 3))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    good = [c.value for c in scheme.classes] + list(scheme.unknown_values)
    p_unknown = draw(st.sampled_from([0.0, 0.3, 1.0]))
    raw = rng.choice([c.value for c in scheme.classes], size=(h, w)).astype(np.float64)
    if scheme.unknown_values:
        raw[rng.random((h, w)) < p_unknown] = scheme.unknown_values[0]
    hostile = draw(st.lists(st.sampled_from(hostile_values(mdtype)), max_size=3))
    for v in hostile:
        raw[draw(st.integers(0, h - 1)), draw(st.integers(0, w - 1))] = v
    nodata = draw(st.sampled_from([None, *hostile, *good[:2]]))
    if mdtype.startswith("uint") and nodata is not None and nodata < 0:
        nodata = None
    mask = raw.astype(mdtype)  # every value is exact in float64 and within the dtype's range
    # scene: random values of its dtype; NaN / inf sprinkled into float scenes
    info = np.finfo(sdtype) if np.dtype(sdtype).kind in "fc" else np.iinfo(sdtype)
    lo, hi = (max(float(info.min), -1e6), min(float(info.max), 1e6))
    scene = rng.uniform(lo, hi, size=(bands, h, w)).astype(sdtype)
    if np.dtype(sdtype).kind in "fc":
        for v in draw(st.lists(st.sampled_from([math.nan, math.inf, -math.inf]), max_size=3)):
            scene[rng.integers(bands), rng.integers(h), rng.integers(w)] = v
    if np.dtype(sdtype).kind in "fc":
        scene_nodata = draw(st.sampled_from([None, math.nan, -9999.0]))
    else:
        scene_nodata = draw(st.sampled_from([None, float(min(int(info.max), 77))]))
    size = draw(st.integers(1, max(h, w) + 3))
    stride = draw(st.one_of(st.none(), st.integers(1, size + 3)))
    return {
        "h": h,
        "w": w,
        "scheme": scheme,
        "mask": mask,
        "mask_nodata": nodata,
        "scene": scene,
        "scene_nodata": scene_nodata,
        "size": size,
        "stride": stride,
        "edge": draw(st.sampled_from(["drop", "pad"])),
        "max_unknown": draw(st.sampled_from([0.0, 0.5, 0.8, 1.0])),
        "split_mode": draw(st.sampled_from(["random", "blocked"])),
        "georef": draw(st.booleans()),
        "workers": draw(st.sampled_from([1, 1, 1, 2])),
        "seed": draw(st.sampled_from([0, 0, 7, 2**70, -1])),
    }


# --------------------------------------------------------------------------- properties
@pytest.mark.parametrize("mask_dtype", INT_DTYPES + FLOAT_DTYPES)
def test_index_masks_every_dtype_values_nodata_sizes_strides(tmp_path: Path, mask_dtype: str) -> None:
    """Index masks of every dtype with in-scheme, out-of-scheme, NaN/inf/fractional and nodata values, scenes
    of every dtype (complex too) with NaN/inf, 1-pixel to 18-pixel scenes, odd tile sizes and strides, both edge
    policies, both split modes, 1 or 2 workers, odd seeds. The corpus of each dtype must reach both outcomes."""
    seen: list[str] = []

    @corpus(10)
    @given(case=index_cases(mask_dtype))
    def check(case: dict[str, Any]) -> None:
        seen.append(check_index_case(tmp_path, case))

    check()
    assert "tile set" in seen and "error" in seen, seen


def check_index_case(tmp_path: Path, case: dict[str, Any]) -> str:
    """Run one generated index-mask case and check it against the oracle; returns ``tile set`` or ``error``."""
    c = Case(tmp_path)
    scheme: ClassScheme = case["scheme"]
    transform = Affine(2, 0, 500000, 0, -2, 4000000)
    geo = {"crs": CRS_UTM, "transform": transform} if case["georef"] else {}
    scene_p = write_raster(c.dir / "scene.tif", case["scene"], nodata=case["scene_nodata"], **geo)
    mask_p = write_raster(c.dir / "mask.tif", case["mask"], nodata=case["mask_nodata"], **geo)
    with rasterio.open(mask_p) as m:  # what the file really declares (GDAL may normalise the value)
        raw, mask_nodata = m.read(1), m.nodata
    size, edge = case["size"], case["edge"]
    stride = case["stride"] or size
    args = [scene_p, mask_p, "-o", c.out, "--scheme", scheme.name, "--tile-size", size, "--edge", edge, "-q"]
    args += ["--max-unknown", case["max_unknown"], "--split-mode", case["split_mode"]]
    args += ["--workers", case["workers"], "--seed", case["seed"]]
    if case["stride"] is not None:
        args += ["--stride", case["stride"]]
    result = run_tile(*args)

    internal, invalid = expected_mask(raw, scheme, mask_nodata)
    scene_nd = case["scene_nodata"]
    fill: Any = 0 if scene_nd is None else scene_nd
    exp = Expect(
        case["scene"],
        internal,
        fill,
        scheme,
        size,
        stride,
        edge,
        case["max_unknown"],
        exact_kept=case["split_mode"] == "random" or stride >= size,
        georeferenced=case["georef"],
        transform=transform if case["georef"] else None,
    )
    h, w = raw.shape
    if case["seed"] < 0:
        assert_one_line_error(result, c.out, None, "--seed must be >= 0")
        return "error"
    if case["scene"].dtype.kind == "c":
        assert_one_line_error(result, c.out, scene_p, "only integer and floating-point bands")
        return "error"
    if edge == "drop" and (size > w or size > h):
        assert_one_line_error(result, c.out, scene_p, "larger than the scene")
        return "error"
    covered = np.zeros((h, w), bool)
    for r, cc in exp.windows():
        covered[r : r + size, cc : cc + size] = True
    if (invalid & covered).any():
        line = assert_one_line_error(result, c.out, mask_p)
        assert "outside class scheme" in line or "non-integer values" in line, line
        return "error"
    if invalid.any() and result.exit_code == 2:
        # values outside the scheme outside every tile, e.g. between tiles whose stride exceeds their size: the
        # reads may cover them (a row of tiles is one window) and then they are an error as well
        line = assert_one_line_error(result, c.out, mask_p)
        if "outside class scheme" in line or "non-integer values" in line:
            return "error"
    if not exp.passing():
        assert_one_line_error(result, c.out, mask_p, "nothing to write")
        return "error"
    assert_tile_set(result, c.out, "scene", exp)
    return "tile set"


@st.composite
def georef_cases(draw: st.DrawFn, mode: str) -> dict[str, Any]:
    h, w = draw(st.integers(2, 16)), draw(st.integers(2, 16))
    return {
        "h": h,
        "w": w,
        "res": draw(st.sampled_from([0.5, 1.0, 30.0])),
        "orientation": draw(st.sampled_from(["north_up", "north_up", "south_up", "rotated", "sheared", "degenerate"])),
        "angle": draw(st.sampled_from([15.0, 90.0, 135.0, 270.0])),
        "split_mode": draw(st.sampled_from(["random", "blocked"])),
        "mode": mode,
        "dx": draw(st.integers(-20, 20)),
        "dy": draw(st.integers(-20, 20)),
        "size": draw(st.integers(1, min(h, w))),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "holes": draw(st.booleans()),  # int16 mask with nodata -1 (read as unknown through the warp too)
    }


@pytest.mark.parametrize(
    "mode", ["same", "shift", "coarser", "south_up", "far", "other_crs_far", "no_crs", "no_crs_size"]
)
@corpus(5)
@given(data=st.data())
def test_mask_grid_mismatches(tmp_path: Path, mode: str, data: Any) -> None:
    """Masks shifted, coarser, south-up, far away, in another CRS or without georeferencing, with nodata holes,
    against north-up, south-up, rotated, sheared and degenerate (zero or NaN pixel size) scene grids, random and
    blocked splits: exact alignment (nearest neighbour, unknown outside the mask), exact tile transforms and
    footprints, or a one-line error."""
    case = data.draw(georef_cases(mode))
    c = Case(tmp_path)
    scheme = get_scheme("gid5")
    h, w, res = case["h"], case["w"], case["res"]
    rng = np.random.default_rng(case["seed"])
    x0, y0 = 500000.0, 4000000.0
    orientation = case["orientation"]
    if orientation == "south_up":
        scene_t = Affine(res, 0, x0, 0, res, y0 - h * res)  # row 0 at the bottom
    elif orientation == "rotated":
        scene_t = Affine.translation(x0, y0) @ Affine.rotation(case["angle"]) @ Affine.scale(res, -res)
    elif orientation == "sheared":
        scene_t = Affine(res, 0.5 * res, x0, 0.3 * res, -res, y0)
    elif orientation == "degenerate":
        scene_t = Affine(0, 0, x0, 0, 0, y0) if case["angle"] < 100 else Affine(math.nan, 0, x0, 0, -res, y0)
    else:
        scene_t = Affine(res, 0, x0, 0, -res, y0)
    scene = rng.integers(0, 255, (2, h, w), dtype=np.uint8)
    scene_p = write_raster(c.dir / "scene.tif", scene, crs=CRS_UTM, transform=scene_t)
    # what the mask says about each scene pixel, in the scene's row order (the oracle)
    mode, dx, dy = case["mode"], case["dx"], case["dy"]
    mh, mw = (h, w) if mode != "coarser" else ((h + 1) // 2, (w + 1) // 2)
    raw = rng.integers(0, 6, (mh, mw)).astype(np.int16)  # gid5: 0-4 classes, 5 unknown
    if case["holes"]:
        raw[rng.random((mh, mw)) < 0.2] = -1
    enc = expected_mask(raw, scheme, -1 if case["holes"] else None)[0]
    on_scene = np.full((h, w), IGNORE, np.uint8)
    prof: dict[str, Any] = {"crs": CRS_UTM}
    data = raw
    bad_path_words: tuple[str, ...] = ()
    if mode == "same":
        prof["transform"] = scene_t
        on_scene = enc
    elif mode == "shift":  # mask pixel (i, j) lies on scene pixel (i + dy, j + dx)
        prof["transform"] = scene_t @ Affine.translation(dx, dy)
        for i in range(h):
            for j in range(w):
                if 0 <= i - dy < h and 0 <= j - dx < w:
                    on_scene[i, j] = enc[i - dy, j - dx]
        if abs(dx) >= w or abs(dy) >= h:
            bad_path_words = ("does not overlap",)
    elif mode == "coarser":
        prof["transform"] = scene_t @ Affine.scale(2)
        on_scene = np.repeat(np.repeat(enc, 2, 0), 2, 1)[:h, :w]
    elif mode == "south_up":  # the same content stored in the other row order
        flipped_t = scene_t @ Affine.translation(0, h) @ Affine.scale(1, -1)
        prof["transform"] = flipped_t
        data = raw[::-1]
        on_scene = enc
    elif mode == "far":
        prof["transform"] = scene_t @ Affine.translation(10 * w + 50, 0)
        bad_path_words = ("does not overlap",)
    elif mode == "other_crs_far":
        prof.update(crs="EPSG:4326", transform=Affine(0.001, 0, -60, 0, -0.001, -30))
        bad_path_words = ("does not overlap",)
    elif mode == "no_crs":  # aligned on the pixel grid
        prof = {}
        on_scene = enc
    else:  # no_crs_size
        prof = {}
        data = np.concatenate([raw, raw[:1]], axis=0)
        bad_path_words = ("sizes differ",)
    mask_p = write_raster(c.dir / "mask.tif", np.ascontiguousarray(data), nodata=-1 if case["holes"] else None, **prof)
    size = case["size"]
    args = [scene_p, mask_p, "-o", c.out, "--scheme", "gid5", "--tile-size", size, "--max-unknown", 1.0, "-q"]
    result = run_tile(*args, "--split-mode", case["split_mode"])
    if orientation == "degenerate":
        assert_one_line_error(result, c.out, scene_p, "degenerate geotransform")
        return
    if bad_path_words:
        assert_one_line_error(result, c.out, mask_p, *bad_path_words)
        return
    exp = Expect(scene, on_scene, 0, scheme, size, size, "drop", 1.0, transform=scene_t)
    assert_tile_set(result, c.out, "scene", exp)


@st.composite
def pixel_format_cases(draw: st.DrawFn, mask_bands: int) -> dict[str, Any]:
    bands, dtype = draw(st.integers(1, 4)), draw(st.sampled_from(INT_DTYPES + FLOAT_DTYPES))
    differ = draw(st.sampled_from(["nothing", "nothing", "bands", "dtype"]))
    other_bands = draw(st.integers(1, 4).filter(lambda b: b != bands)) if differ == "bands" else bands
    other_dtype = (
        draw(st.sampled_from(INT_DTYPES + FLOAT_DTYPES).filter(lambda d: d != dtype)) if differ == "dtype" else dtype
    )
    return {
        "bands": (bands, other_bands),
        "dtypes": (dtype, other_dtype),
        "mask_bands": mask_bands,
        "mask_dtype": draw(st.sampled_from(["uint8", "uint8", "uint8", "uint16", "int16", "float32"])),
        "mask_kind": draw(st.sampled_from(["auto", "auto", "index", "color"])),
        "foreign_colour": draw(st.booleans()),
        "workers": draw(st.sampled_from([1, 1, 1, 2])),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


@pytest.mark.parametrize("mask_bands", [1, 2, 3, 4, 5])
@corpus(6)
@given(data=st.data())
def test_band_counts_and_pixel_formats(tmp_path: Path, mask_bands: int, data: Any) -> None:
    """Two pairs whose scenes differ in band count or dtype, masks with 1-6 bands (index, colour-coded, neither),
    colour masks with colours outside the palette or of the wrong dtype, forced mask kinds, 1 or 2 workers."""
    case = data.draw(pixel_format_cases(mask_bands))
    c = Case(tmp_path)
    scheme = get_scheme("gid5")
    rng = np.random.default_rng(case["seed"])
    h = w = 8
    geo = {"crs": CRS_UTM, "transform": ORIGIN}
    scenes_d, masks_d = c.dir / "scenes", c.dir / "masks"
    scenes_d.mkdir()
    masks_d.mkdir()
    raw = rng.integers(0, 5, (h, w)).astype(np.uint8)
    palette = np.array([cl.color for cl in scheme.classes], np.uint8)
    mb, kind, mdt = case["mask_bands"], case["mask_kind"], case["mask_dtype"]
    if mb in (3, 4):
        rgb = palette[raw].transpose(2, 0, 1)
        if case["foreign_colour"]:
            rgb[:, 1, 1] = (1, 2, 3)
        mask = np.concatenate([rgb, np.full((mb - 3, h, w), 255, np.uint8)]) if mb == 4 else rgb
    else:
        mask = np.stack([raw] * mb)
    mask = mask.astype(mdt)
    scene_ps = []
    for stem, bands, dt in zip(("a", "b"), case["bands"], case["dtypes"]):
        scene = rng.integers(0, 100, (bands, h, w)).astype(dt)
        scene_ps.append(write_raster(scenes_d / f"{stem}.tif", scene, **geo))
        write_raster(masks_d / f"{stem}.tif", mask, **geo)
    args = [scenes_d, masks_d, "-o", c.out, "--scheme", "gid5", "--tile-size", 4, "--max-unknown", 1.0, "-q"]
    result = run_tile(*args, "--mask-kind", kind, "--workers", case["workers"])
    effective = kind if kind != "auto" else ("color" if mb >= 3 else "index")
    first_mask = masks_d / "a.tif"
    if effective == "index" and mb != 1:
        assert_one_line_error(result, c.out, first_mask, "must have 1 band")
    elif effective == "color" and mb not in (3, 4):
        assert_one_line_error(result, c.out, first_mask, "3 or 4 bands")
    elif effective == "color" and mdt != "uint8":
        assert_one_line_error(result, c.out, first_mask, "must be uint8")
    elif case["bands"][0] != case["bands"][1] or case["dtypes"][0] != case["dtypes"][1]:
        assert_one_line_error(result, c.out, scene_ps[1], "one tile set needs one pixel format")
    elif effective == "color" and case["foreign_colour"]:
        assert_one_line_error(result, c.out, first_mask, "colours not in class scheme")
    else:
        internal = expected_mask(raw, scheme, None)[0]
        scene_a = rasterio.open(scene_ps[0]).read()
        exp = Expect(scene_a, internal, 0, scheme, 4, 4, "drop", 1.0)
        assert_no_crash(result)
        assert result.exit_code == 0, result.output
        ts = TileSet.open(c.out)
        assert len(ts.index) == 8 and set(ts.index.tile_id.str[0]) == {"a", "b"}
        for _, row in ts.index.iterrows():
            assert np.array_equal(ts.read_mask(row), exp.tile_mask(int(row.row_off), int(row.col_off)))
        outcome("tile set")


@corpus(12)
@given(
    h=st.integers(4, 20),
    w=st.integers(4, 20),
    role=st.sampled_from(["scene", "mask"]),
    dtype=st.sampled_from(["uint8", "int16", "float32"]),
    strip=st.integers(0, 9),
    size=st.integers(1, 4),
    workers=st.sampled_from([1, 2]),
)
def test_corrupt_block_anywhere(
    tmp_path: Path, h: int, w: int, role: str, dtype: str, strip: int, size: int, workers: int
) -> None:
    """One compressed strip of the scene or the mask overwritten with garbage, wherever it lies (found when the
    file is opened, in pass 1 or while tiles are already written, in this process or a worker): one line naming
    the file, and whatever was written is removed."""
    c = Case(tmp_path)
    geo = {"crs": CRS_UTM, "transform": ORIGIN, "compress": "deflate", "blockysize": 2}
    rng = np.random.default_rng(h * 100 + w)
    scene_p = write_raster(c.dir / "scene.tif", rng.integers(0, 100, (2, h, w)).astype(dtype), **geo)
    mask_p = write_raster(c.dir / "mask.tif", rng.integers(0, 5, (h, w)).astype(dtype), **geo)
    bad = scene_p if role == "scene" else mask_p
    with tifffile.TiffFile(bad) as tf:
        offsets, counts = tf.pages[0].dataoffsets, tf.pages[0].databytecounts
    k = strip % len(offsets)
    with open(bad, "r+b") as f:
        f.seek(offsets[k])
        f.write(b"\xff" * counts[k])
    args = [scene_p, mask_p, "-o", c.out, "--scheme", "gid5", "--tile-size", size, "--edge", "pad", "-q"]
    result = run_tile(*args, "--max-unknown", 1.0, "--workers", workers)
    assert_one_line_error(result, c.out, bad, "cannot read")


def test_corrupt_block_in_a_worker_with_dask_loaded(tmp_path: Path) -> None:
    """Regression (CI, stop 21): once Dask is imported, tblib pickles a worker's error with its cause, and
    rasterio's ``CPLE_*`` cause cannot be unpickled; the parent saw a broken process pool, not the one-line error.
    The failing case as hypothesis found it, with Dask loaded whatever ran before."""
    import distributed  # noqa: F401  (installs tblib's exception pickling, as in the test session)

    c = Case(tmp_path)
    geo = {"crs": CRS_UTM, "transform": ORIGIN, "compress": "deflate", "blockysize": 2}
    rng = np.random.default_rng(704)
    scene_p = write_raster(c.dir / "scene.tif", rng.integers(0, 100, (2, 7, 4)).astype("uint8"), **geo)
    mask_p = write_raster(c.dir / "mask.tif", rng.integers(0, 5, (7, 4)).astype("uint8"), **geo)
    with tifffile.TiffFile(scene_p) as tf:
        offsets, counts = tf.pages[0].dataoffsets, tf.pages[0].databytecounts
    with open(scene_p, "r+b") as f:
        f.seek(offsets[2])
        f.write(b"\xff" * counts[2])
    args = [scene_p, mask_p, "-o", c.out, "--scheme", "gid5", "--tile-size", 1, "--edge", "pad", "-q"]
    result = run_tile(*args, "--max-unknown", 1.0, "--workers", 2)
    assert_one_line_error(result, c.out, scene_p, "cannot read")


def tiff_with_size(width: int, height: int) -> bytes:
    """A hand-made little-endian baseline TIFF declaring ``width`` x ``height`` 8-bit pixels in one strip (GDAL
    cannot write zero-size rasters)."""
    data = bytes(width * height)
    entries = [
        (256, 3, 1, width),
        (257, 3, 1, height),
        (258, 3, 1, 8),
        (259, 3, 1, 1),
        (262, 3, 1, 1),
        (273, 4, 1, -1),
        (277, 3, 1, 1),
        (278, 3, 1, max(height, 1)),
        (279, 4, 1, len(data)),
    ]
    data_off = 8 + 2 + len(entries) * 12 + 4
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, typ, cnt, val in entries:
        val = data_off if tag == 273 else val
        out += struct.pack("<HHIHH", tag, typ, cnt, val, 0) if typ == 3 else struct.pack("<HHII", tag, typ, cnt, val)
    return out + struct.pack("<I", 0) + data


@corpus(12)
@given(
    w=st.integers(0, 3),
    h=st.integers(0, 3),
    role=st.sampled_from(["scene", "mask"]),
    size=st.integers(1, 4),
    edge=st.sampled_from(["drop", "pad"]),
)
def test_zero_size_and_one_pixel_rasters(tmp_path: Path, w: int, h: int, role: str, size: int, edge: str) -> None:
    """Rasters of 0-3 pixels a side (zero-size ones hand-made) as scene or mask."""
    c = Case(tmp_path)
    tiny = c.dir / "tiny.tif"
    tiny.write_bytes(tiff_with_size(w, h))
    other = write_raster(c.dir / "other.tif", np.ones((max(h, 1), max(w, 1)), np.uint8))
    scene_p, mask_p = (tiny, other) if role == "scene" else (other, tiny)
    args = [scene_p, mask_p, "-o", c.out, "--scheme", "gid5", "--tile-size", size, "--edge", edge]
    result = run_tile(*args, "--max-unknown", 1.0, "-q")
    sw, sh = (w, h) if role == "scene" else (max(w, 1), max(h, 1))
    if (w == 0 or h == 0) and role == "scene":
        assert_one_line_error(result, c.out, tiny, "cannot read")
    elif edge == "drop" and (size > sw or size > sh):  # checked before the mask is opened
        assert_one_line_error(result, c.out, scene_p, "larger than the scene")
    elif w == 0 or h == 0:
        assert_one_line_error(result, c.out, tiny, "cannot read")
    else:
        # the hand-made file holds zeros, the other ones (gid5: raw value k is class k)
        scene = np.full((1, h, w), 0 if role == "scene" else 1, np.uint8)
        mask = np.full((h, w), 1 if role == "scene" else 0, np.uint8)
        exp = Expect(scene, mask, 0, get_scheme("gid5"), size, size, edge, 1.0, georeferenced=False)
        assert_tile_set(result, c.out, scene_p.stem, exp)


@corpus(15)
@given(
    size=st.one_of(st.integers(2**15, 2**22), st.integers(1, 3)),
    stride=st.one_of(st.none(), st.integers(1, 2**40)),
    max_tiles=st.sampled_from([0, 1, 10, 100, 10**6]),
    max_pixels=st.sampled_from([0, 50, 255, 256, 2**32]),
    bands=st.integers(1, 4),
)
def test_limits_answer_at_once(
    tmp_path: Path, size: int, stride: int | None, max_tiles: int, max_pixels: int, bands: int
) -> None:
    """Tile sizes far beyond the scene with --edge pad (up to 4M px a side), strides up to 2**40, and the
    --max-tiles / --max-pixels limits: a one-line error naming the scene within seconds, or a tile set."""
    c = Case(tmp_path)
    h, w = 16, 16
    scene = np.arange(bands * h * w, dtype=np.uint16).reshape(bands, h, w)
    geo = {"crs": CRS_UTM, "transform": ORIGIN}
    scene_p = write_raster(c.dir / "scene.tif", scene, **geo)
    mask_p = write_raster(c.dir / "mask.tif", np.ones((h, w), np.uint8), **geo)
    args = [scene_p, mask_p, "-o", c.out, "--scheme", "gid5", "--tile-size", size, "--edge", "pad", "-q"]
    args += ["--max-unknown", 1.0, "--max-tiles", max_tiles, "--max-pixels", max_pixels]
    if stride is not None:
        args += ["--stride", stride]
    t0 = time.perf_counter()
    result = run_tile(*args)
    elapsed = time.perf_counter() - t0
    step = stride or size
    n_tiles = len(offsets(h, size, step, "pad")) * len(offsets(w, size, step, "pad"))
    if max_pixels and h * w > max_pixels:
        assert_one_line_error(result, c.out, scene_p, "declares 16x16 = 256 pixels", "--max-pixels")
    elif size * size * (bands * 2 + 1) > 2**30:
        assert_one_line_error(result, c.out, scene_p, f"one {size}x{size} tile", "--tile-size")
    elif max_tiles and n_tiles > max_tiles:
        assert_one_line_error(result, c.out, scene_p, f"{n_tiles:,} candidate tiles", "--max-tiles")
    else:
        exp = Expect(scene, np.zeros((h, w), np.uint8) + 1, 0, get_scheme("gid5"), size, step, "pad", 1.0)
        assert_tile_set(result, c.out, "scene", exp)
    assert elapsed < 30 or result.exit_code == 0, f"{elapsed:.1f} s to refuse a case"


def test_negative_limits_and_seed_are_one_line_errors(tmp_path: Path) -> None:
    scene_p = write_raster(tmp_path / "s.tif", np.ones((1, 4, 4), np.uint8))
    mask_p = write_raster(tmp_path / "m.tif", np.ones((4, 4), np.uint8))
    for flag, words in (("--max-pixels", "--max-pixels must be >= 0"), ("--max-tiles", "--max-tiles must be >= 0")):
        r = run_tile(scene_p, mask_p, "-o", tmp_path / "o", "--scheme", "gid5", "--tile-size", 2, flag, -1)
        assert_one_line_error(r, tmp_path / "o", None, words)
    r = run_tile(scene_p, mask_p, "-o", tmp_path / "o", "--scheme", "gid5", "--tile-size", 2, "--seed", -3)
    assert_one_line_error(r, tmp_path / "o", None, "--seed must be >= 0")


# --------------------------------------------------------------------------- real processes
def run_process(args: list[str], cwd: Path, timeout: float) -> tuple[int, str, float, float]:
    """Run the installed entry point ``rsaug.cli.main:cli`` in a child process; returns (exit code, stderr,
    seconds, peak RSS in MB of that child alone). Killed after ``timeout`` seconds.

    The peak is the child's own ``VmHWM`` (written by the child at exit): ``ru_maxrss`` from ``os.wait4`` is not
    the child's alone on Linux, since a forked child keeps the parent's peak across ``execve`` (a pytest process
    that has run the whole suite is several GB)."""
    hwm = cwd / "vmhwm.txt"
    code = (
        "import atexit\n"
        "def _hwm():\n"
        "    with open('/proc/self/status') as f:\n"
        "        kb = next(ln.split()[1] for ln in f if ln.startswith('VmHWM'))\n"
        f"    open({str(hwm)!r}, 'w').write(kb)\n"
        "atexit.register(_hwm)\n"
        "from rsaug.cli.main import cli; cli(prog_name='rsaug')"
    )
    err_p = cwd / "stderr.txt"
    with open(err_p, "w") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", code, *args], stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise AssertionError(f"rsaug tile still running after {timeout} s: {err_p.read_text()[-500:]}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    peak_mb = int(hwm.read_text()) / 1024 if hwm.is_file() else usage.ru_maxrss / 1024
    return proc.returncode, err_p.read_text(), elapsed, peak_mb


def sparse_raster(path: Path, size: int, count: int, block: int, tiled: bool = True) -> Path:
    """A deflate GeoTIFF declaring ``size`` x ``size`` pixels with no block written (SPARSE_OK): a few kB."""
    layout = {"tiled": True, "blockxsize": block, "blockysize": block} if tiled else {"blockysize": block}
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype="uint8",
        crs=CRS_UTM,
        transform=ORIGIN,
        compress="deflate",
        sparse_ok=True,
        BIGTIFF="YES",
        **layout,
    ):
        pass
    return path


RSS_BOUND_MB = 1500  # peak resident memory of one rsaug tile process on these inputs
RSS_OVER_IDLE_MB = 400  # ... and above what the command takes to start (torch and GDAL alone take ~700 MB)


def test_huge_declared_dimensions_in_tiny_files(tmp_path: Path) -> None:
    """A 200000 x 200000 scene and mask in files of a few kB: refused at once (one line naming the scene and
    its declared size, --max-pixels), never read; a small scene with such a mask around it is tiled in bounded
    time and memory (only the windows under the scene are read). Peak memory of each run stays below
    ``RSS_BOUND_MB`` and within ``RSS_OVER_IDLE_MB`` of the command's own start-up (``rsaug --help``)."""
    *_, idle_rss = run_process(["--help"], tmp_path, 120)
    bound = min(RSS_BOUND_MB, idle_rss + RSS_OVER_IDLE_MB)
    huge_scene = sparse_raster(tmp_path / "huge_scene.tif", 200_000, 3, 4096)
    huge_mask = sparse_raster(tmp_path / "huge_mask.tif", 200_000, 1, 4096)
    assert huge_scene.stat().st_size < 200_000
    out = tmp_path / "out"
    rc, err, secs, rss = run_process(
        ["tile", str(huge_scene), str(huge_mask), "-o", str(out), "--scheme", "gid5", "-q"], tmp_path, 90
    )
    lines = shown_lines(err)
    assert rc == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"Error: {huge_scene}: scene declares 200000x200000 = 40,000,000,000 pixels"), lines[0]
    assert "--max-pixels" in lines[0] and "Traceback" not in err
    assert not out.exists()
    assert rss < bound, f"{rss:.0f} MB (start-up alone {idle_rss:.0f} MB)"
    assert secs < 60, f"{secs:.1f} s"

    small = tmp_path / "small.tif"
    write_raster(small, np.ones((3, 64, 64), np.uint8), crs=CRS_UTM, transform=ORIGIN)
    rc, err, secs, rss = run_process(
        ["tile", str(small), str(huge_mask), "-o", str(out), "--scheme", "gid5", "--tile-size", "32", "-q"],
        tmp_path,
        120,
    )
    assert rc == 0, err
    assert rss < bound, f"{rss:.0f} MB (start-up alone {idle_rss:.0f} MB)"
    assert secs < 60, f"{secs:.1f} s"
    ts = TileSet.open(out)
    assert len(ts.index) == 4
    assert all((ts.read_mask(row) == 0).all() for _, row in ts.index.iterrows())  # unwritten blocks read as 0


def test_giant_blocks_and_strips_answer_at_once(tmp_path: Path) -> None:
    """One 40000 x 40000 block (1.6 GB to decode for any pixel): refused before GDAL decodes it; a 60000-row
    strip with no data: GDAL reads it line by line, and the missing data is a one-line error."""
    mask = sparse_raster(tmp_path / "mask.tif", 50_000, 1, 1024)
    for name, size, tiled, words in (("one_block.tif", 40_000, True, "blocks"), ("one_strip.tif", 60_000, False, "")):
        big = sparse_raster(tmp_path / name, size, 1, size, tiled=tiled)
        t0 = time.perf_counter()
        small = write_raster(tmp_path / "s.tif", np.ones((1, 8, 8), np.uint8), crs=CRS_UTM, transform=ORIGIN)
        for scene, bad in ((big, big), (small, big)):  # as the scene, then as the mask of a small scene
            out = tmp_path / f"out_{name}"
            r = run_tile(scene, mask if scene == big else big, "-o", out, "--scheme", "gid5", "-q", "--tile-size", 4)
            assert_one_line_error(r, out, bad, words)
        assert time.perf_counter() - t0 < 30


def test_tiny_tiles_on_a_huge_declared_scene_answer_at_once(tmp_path: Path) -> None:
    """60000 x 60000 pixels (under the default --max-pixels) cut into 16-pixel tiles: 14 million candidate tiles
    are refused (--max-tiles) before the tile grid is built; a lower --max-pixels refuses the scene itself."""
    scene = sparse_raster(tmp_path / "scene.tif", 60_000, 1, 1024)
    mask = sparse_raster(tmp_path / "mask.tif", 60_000, 1, 1024)
    t0 = time.perf_counter()
    r = run_tile(scene, mask, "-o", tmp_path / "o", "--scheme", "gid5", "--tile-size", 16, "-q")
    assert_one_line_error(r, tmp_path / "o", scene, "14,062,500 candidate tiles", "--max-tiles (1,000,000)")
    r = run_tile(scene, mask, "-o", tmp_path / "o", "--scheme", "gid5", "--tile-size", 16, "--max-pixels", 10**9)
    assert_one_line_error(r, tmp_path / "o", scene, "declares 60000x60000 = 3,600,000,000 pixels")
    assert time.perf_counter() - t0 < 30


def test_bad_mask_with_worker_processes_in_a_real_process(tmp_path: Path) -> None:
    """A value outside the scheme found by a worker process (--workers 2): one line naming the mask, exit 2 (the
    error used to break the process pool: the error class could not be unpickled, a traceback and exit 1)."""
    geo = {"crs": CRS_UTM, "transform": ORIGIN}
    scene_p = write_raster(tmp_path / "s.tif", np.ones((2, 32, 32), np.uint8), **geo)
    raw = np.ones((32, 32), np.int16)
    raw[20, 3] = -7
    mask_p = write_raster(tmp_path / "m.tif", raw, **geo)
    out = tmp_path / "out"
    args = ["tile", str(scene_p), str(mask_p), "-o", str(out), "--scheme", "gid5", "--tile-size", "4"]
    rc, err, _, _ = run_process([*args, "--workers", "2", "-q"], tmp_path, 120)
    lines = shown_lines(err)
    assert rc == 2 and len(lines) == 1, err
    assert lines[0] == f"Error: {mask_p}: mask values outside class scheme 'gid5': -7 (1 px)"
    assert not out.exists()
