"""``rsaug tile`` through click's CliRunner: a good run, and every bad-input case of issue 2."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import rasterio
from click.testing import CliRunner

from rsaug.cli.tile import command as tile_command
from rsaug.io.tileset import TileSet
from tests.conftest import CHESAPEAKE, GEOREF_PAIR, GID15
from tests.fixtures_tiles import assert_same_tile_file, chesapeake_pair

pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]

STEM = "lake_001"
IMG = GID15 / "images" / f"{STEM}.tif"
LAB = GID15 / "labels_index" / f"{STEM}.tif"
COL = GID15 / "labels_color" / f"{STEM}_15label.png"


def run(*args: object) -> object:
    # the subcommand itself (as registered by rsaug.cli.main), so sibling subcommands cannot affect these tests
    return CliRunner().invoke(tile_command, [*map(str, args)], catch_exceptions=False, prog_name="rsaug tile")


def assert_bad_input(result: object, path: object, *words: str) -> None:
    """Exit 2, exactly one line ``Error: <path>: ...`` naming the file, no traceback."""
    assert result.exit_code == 2, result.output
    # a progress bar may have been drawn and cleared with carriage returns: keep what a terminal shows
    lines = [ln.split("\r")[-1] for ln in result.stderr.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    if path is not None:
        assert str(path) in lines[0]
    for w in words:
        assert w in lines[0], lines[0]


def test_cli_good_run_directories_and_summary(tmp_path: Path) -> None:
    scenes, masks = tmp_path / "scenes", tmp_path / "masks"
    scenes.mkdir()
    masks.mkdir()
    for s in ("lake_001", "pond_001", "river_001"):
        shutil.copy(GID15 / "images" / f"{s}.tif", scenes)
        shutil.copy(GID15 / "labels_color" / f"{s}_15label.png", masks)
    out, summ = tmp_path / "out", tmp_path / "summary.json"
    r = run(scenes, masks, "--mask-suffix", "_15label", "-o", out, "--tile-size", 112, "--summary-json", summ)
    assert r.exit_code == 0, r.output
    assert "kept: " in r.stdout and "splits: train" in r.stdout and "class pixel shares" in r.stdout
    assert "not georeferenced" in r.stderr
    s = json.loads(summ.read_text())
    assert s["candidate_tiles"] == 12 and s["kept"] + s["dropped"]["unknown_fraction"] == 12
    assert sum(s["splits"].values()) == s["kept"] == len(list((out / "images").iterdir()))
    assert sorted(p.name for p in (out / "images").iterdir())[0] == "lake_001_r0_c0.tif"
    # quiet: nothing on stdout; re-run refused, then allowed with --overwrite
    assert_bad_input(run(scenes, masks, "--mask-suffix", "_15label", "-o", out), out, "not empty")
    r = run(scenes, masks, "--mask-suffix", "_15label", "-o", out, "--tile-size", 112, "--overwrite", "-q")
    assert r.exit_code == 0 and r.stdout == ""


def test_cli_pairs_csv(tmp_path: Path) -> None:
    csv = tmp_path / "pairs.csv"
    scene, mask = chesapeake_pair()
    csv.write_text(f"scene,mask\n{scene},{mask}\n")
    r = run("--pairs", csv, "-o", tmp_path / "o", "--tile-size", 128, "--scheme", "chesapeake", "-q")
    assert r.exit_code == 0, r.output
    assert len(list((tmp_path / "o" / "masks").iterdir())) == 4
    bad = tmp_path / "bad.csv"
    bad.write_text("scene,mask\nonly_one_column\n")
    assert_bad_input(run("--pairs", bad, "-o", tmp_path / "o2"), bad, "two columns")
    assert not (tmp_path / "o2").exists()


def test_cli_help_lists_defaults() -> None:
    r = CliRunner().invoke(tile_command, ["--help"], prog_name="rsaug tile")
    assert r.exit_code == 0
    for opt in (
        "--tile-size",
        "--stride",
        "--max-unknown",
        "--scheme",
        "--split",
        "--seed",
        "--reserve",
        "--split-mode",
        "--edge",
        "--compress",
        "--compress-level",
        "--vector-fill",
        "--workers",
        "--overwrite",
        "--resume",
        "--quiet",
        "--summary-json",
    ):
        assert opt in r.output
    assert "[default: 256]" in r.output and "[default: 0.8]" in r.output and "[default: 4:1:1]" in r.output


def _bad_cases(tmp: Path) -> list[tuple[str, list[object], object, tuple[str, ...]]]:
    """(name, args, path that must be named, words) of every bad-input case."""
    corrupt = tmp / "corrupt.tif"
    corrupt.write_bytes(b"II*\x00" + b"\x13garbage" * 100)
    truncated = tmp / "truncated.tif"
    data = IMG.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    empty_dir = tmp / "empty_dir"
    empty_dir.mkdir()
    far = tmp / "far_label.tif"
    with rasterio.open(GEOREF_PAIR / "label.tif") as src:
        prof = {**src.profile, "transform": src.transform * rasterio.Affine.translation(100000, 0)}
        arr = src.read()
    with rasterio.open(far, "w", **prof) as d:
        d.write(arr)
    existing = tmp / "existing"
    existing.mkdir()
    (existing / "keep.txt").write_text("user data")
    scheme = tmp / "roads.json"
    scheme.write_text(
        json.dumps(
            {
                "name": "roads",
                "classes": [
                    {"name": "background", "value": 0, "color": [0, 0, 0]},
                    {"name": "road", "value": 1, "color": [9, 9, 9]},
                    {"name": "building", "value": 2, "color": [200, 0, 0]},
                ],
                "unknown_color": [255, 255, 255],
            }
        )
    )
    import geopandas as gpd
    from shapely.geometry import box

    with rasterio.open(GEOREF_PAIR / "image.tif") as src:
        b, crs = src.bounds, src.crs
    vec = tmp / "bad_classes.geojson"
    gpd.GeoDataFrame({"class": ["road", "lava"]}, geometry=[box(*b), box(*b)], crs=crs).to_file(vec)
    return [
        ("missing scene", [tmp / "nope.tif", LAB], tmp / "nope.tif", ("not found",)),
        ("missing mask", [IMG, tmp / "nope_mask.tif", "--tile-size", 224], tmp / "nope_mask.tif", ("not found",)),
        ("corrupt scene", [corrupt, LAB], corrupt, ("cannot read",)),
        ("truncated scene", [truncated, LAB], truncated, ("cannot read",)),
        ("corrupt mask", [IMG, corrupt, "--tile-size", 224], corrupt, ("cannot read",)),
        ("unreadable (directory) mask", [IMG, empty_dir], empty_dir, ("both be files or both be directories",)),
        (
            "values outside scheme",
            [IMG, LAB, "--scheme", "gid5", "--tile-size", 224],
            LAB,
            ("outside class scheme 'gid5'", "px)"),
        ),
        ("unknown colours", [IMG, COL, "--scheme", "gid5", "--tile-size", 224], COL, ("colours not in class scheme",)),
        ("no overlap", [GEOREF_PAIR / "image.tif", far, "--scheme", scheme], far, ("does not overlap",)),
        ("tile larger than scene", [IMG, LAB, "--tile-size", 512], IMG, ("larger than the scene",)),
        ("invalid split", [IMG, LAB, "--tile-size", 224, "--split", "4:1:x"], None, ("invalid split spec",)),
        ("zero split", [IMG, LAB, "--tile-size", 224, "--split", "0:0:0"], None, ("invalid split spec",)),
        ("existing output", [IMG, LAB, "--tile-size", 224], existing, ("not empty",)),
        ("overwrite non-tile-set", [IMG, LAB, "--tile-size", 224, "--overwrite"], existing, ("refusing",)),
        ("resume without run", [IMG, LAB, "--tile-size", 224, "--resume"], existing, ("cannot resume",)),
        ("unknown scheme", [IMG, LAB, "--scheme", "nonsense"], None, ("unknown class scheme",)),
        ("vector class names", [GEOREF_PAIR / "image.tif", vec, "--scheme", scheme], vec, ("'lava' (1 features)",)),
        ("missing pairs csv", ["--pairs", tmp / "none.csv"], tmp / "none.csv", ("not found",)),
        (
            "unknown vector fill class",
            [IMG, LAB, "--tile-size", 224, "--vector-fill", "lava"],
            None,
            ("class 'lava' is not in scheme",),
        ),
        ("compression level", [IMG, LAB, "--tile-size", 224, "--compress-level", 0], None, ("--compress-level",)),
        (
            "mask size mismatch",
            [IMG, GEOREF_PAIR / "label.tif", "--scheme", scheme, "--tile-size", 64],
            GEOREF_PAIR / "label.tif",
            ("sizes differ",),
        ),
    ]


def test_cli_every_bad_input(tmp_path: Path) -> None:
    for name, args, path, words in _bad_cases(tmp_path):
        out = (
            tmp_path / "existing"
            if "existing" in name or "overwrite" in name or "resume" in name
            else tmp_path / f"out_{name.replace(' ', '_')}"
        )
        r = run(*args, "-o", out)
        try:
            assert_bad_input(r, path, *words)
        except AssertionError as exc:
            raise AssertionError(f"case {name!r}: {exc}") from None
        if out.name == "existing":
            assert sorted(p.name for p in out.iterdir()) == ["keep.txt"], name
        else:
            assert not out.exists(), f"case {name!r} left output"


def test_cli_bad_mask_in_later_pair_leaves_no_output(tmp_path: Path) -> None:
    scenes, masks = tmp_path / "s", tmp_path / "m"
    scenes.mkdir()
    masks.mkdir()
    for s in ("lake_001", "pond_001"):
        shutil.copy(GID15 / "images" / f"{s}.tif", scenes)
        shutil.copy(GID15 / "labels_index" / f"{s}.tif", masks)
    with rasterio.open(masks / "pond_001.tif", "r+") as d:  # corrupt one value of the second mask
        a = d.read(1)
        a[5, 7] = 99
        d.write(a, 1)
    r = run(scenes, masks, "-o", tmp_path / "o", "--tile-size", 224)
    assert_bad_input(r, masks / "pond_001.tif", "99 (1 px)")
    assert not (tmp_path / "o").exists()


def test_cli_resume_after_sigkill_equals_uninterrupted(tmp_path: Path) -> None:
    """Kill a real ``rsaug tile`` process mid-run (SIGKILL), resume it, compare with an uninterrupted run."""
    import signal
    import subprocess
    import sys
    import time

    import numpy as np

    scene, mask = chesapeake_pair()
    main = "from rsaug.cli.tile import command; command(prog_name='rsaug tile')"
    args = [sys.executable, "-c", main, str(scene), str(mask), "--scheme", "chesapeake", "--tile-size", "16", "-q"]
    full = tmp_path / "full"
    assert subprocess.run([*args, "-o", str(full)], capture_output=True).returncode == 0
    n_full = len(list((full / "images").iterdir()))
    out = tmp_path / "killed"
    proc = subprocess.Popen([*args, "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if (out / "images").is_dir() and len(list((out / "images").iterdir())) > 30:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_early = not (out / "index.gpkg").exists()
    r = run(scene, mask, "--scheme", "chesapeake", "--tile-size", 16, "-q", "-o", out)
    assert_bad_input(r, out, "not empty")
    r = run(scene, mask, "--scheme", "chesapeake", "--tile-size", 16, "-q", "-o", out, "--resume")
    assert r.exit_code == 0, r.output
    assert killed_early, "the run finished before it could be killed; the test did not test resume"
    names = sorted(p.relative_to(full) for p in full.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())  # no temporaries left
    assert len(names) == 2 * n_full + 3
    for rel in names:
        if rel.suffix == ".tif":
            assert_same_tile_file(full / rel, out / rel)
        elif rel.name == "tileset.json":
            assert (full / rel).read_bytes() == (out / rel).read_bytes(), rel
    a, b = TileSet.open(full).index, TileSet.open(out).index
    assert a.drop(columns="geometry").equals(b.drop(columns="geometry"))
    assert np.allclose(np.array([g.bounds for g in a.geometry]), np.array([g.bounds for g in b.geometry]))


def test_cli_scene_corrupt_in_the_middle_leaves_no_output(tmp_path: Path) -> None:
    """A scene whose header and first/middle/last rows are fine but one strip is garbage fails while the tiles are
    written: the error names the scene and the partly written output is removed."""
    import tifffile

    scene, mask = chesapeake_pair()
    bad = tmp_path / "naip_bad.tif"
    shutil.copy(scene, bad)
    bad.chmod(0o644)
    with tifffile.TiffFile(bad) as tf:
        page = tf.pages[0]
        offsets, counts = page.dataoffsets, page.databytecounts
    with open(bad, "r+b") as f:  # strip 20 of 38 holds rows 140-146
        f.seek(offsets[20])
        f.write(bytes([0xFF]) * counts[20])
    r = run(bad, mask, "--scheme", "chesapeake", "--tile-size", 64, "-o", tmp_path / "o", "-q")
    assert_bad_input(r, bad, "cannot read scene raster")
    assert not (tmp_path / "o").exists()


def test_cli_one_directory_with_scene_and_mask_suffixes(tmp_path: Path) -> None:
    """Chesapeake patches: <key>_naip-new.tif and <key>_lc.tif in one directory, paired by key."""
    patches = CHESAPEAKE / "patches"
    out = tmp_path / "o"
    r = run(
        patches,
        patches,
        "--scene-suffix",
        "_naip-new",
        "--mask-suffix",
        "_lc",
        "--scheme",
        "chesapeake",
        "--tile-size",
        128,
        "-o",
        out,
        "-q",
        "--summary-json",
        tmp_path / "s.json",
    )
    assert r.exit_code == 0, r.output
    s = json.loads((tmp_path / "s.json").read_text())
    n = len(list(patches.glob("*_naip-new.tif")))
    assert s["scenes"] == n and s["candidate_tiles"] == 4 * n
    desc = json.loads((out / "tileset.json").read_text())
    assert all(src["mask"].endswith("_lc.tif") and src["scene"].endswith("_naip-new.tif") for src in desc["sources"])
    assert_bad_input(run(patches, patches, "-o", tmp_path / "o2"), patches, "same directory")


def test_cli_compression_level_reaches_gdal_and_keeps_pixels(tmp_path: Path) -> None:
    """Level 1 (default) and level 9 tiles hold identical pixels; the level changes the encoded bytes."""
    outs = {}
    for level in (1, 9):
        out = tmp_path / f"z{level}"
        r = run(IMG, LAB, "--tile-size", 224, "--compress-level", level, "-o", out, "--quiet")
        assert r.exit_code == 0, r.output
        outs[level] = out
    (img1,) = sorted((outs[1] / "images").glob("*.tif"))
    img9 = outs[9] / "images" / img1.name
    with rasterio.open(img1) as a, rasterio.open(img9) as b:
        assert a.profile["compress"] == b.profile["compress"] == "deflate"
        assert (a.read() == b.read()).all()
    with rasterio.open(IMG) as src, rasterio.open(img1) as a:
        assert (a.read() == src.read(window=((0, 224), (0, 224)))).all()
    assert img1.read_bytes() != img9.read_bytes()


def test_cli_unreadable_file(tmp_path: Path) -> None:
    """A scene without read permission: one-line error naming it, exit 2, no output. As root (who may read
    anything) the command runs without the capabilities that bypass file permissions (``setpriv``)."""
    import os
    import subprocess
    import sys

    scene, mask, out = tmp_path / "scene.tif", tmp_path / "mask.tif", tmp_path / "out"
    shutil.copy(IMG, scene)
    shutil.copy(LAB, mask)
    os.chmod(scene, 0)
    args = [str(scene), str(mask), "-o", str(out), "--tile-size", "224"]
    if os.geteuid() != 0:
        assert_bad_input(run(*args), scene, "not readable")
    else:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip(
                "running as root and util-linux setpriv is not installed: cannot drop file-permission capabilities"
            )
        drop = [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]
        probe = subprocess.run(
            [*drop, sys.executable, "-c", f"open({str(scene)!r}).close()"], capture_output=True, text=True
        )
        if probe.returncode == 0 or "Permission denied" not in probe.stderr:
            pytest.skip(f"cannot drop file-permission capabilities here: {probe.stderr.strip()[-200:]}")
        code = "from rsaug.cli.tile import command; command(prog_name='rsaug tile')"
        p = subprocess.run([*drop, sys.executable, "-c", code, *args], capture_output=True, text=True)
        assert p.returncode == 2, p.stderr
        lines = [ln for ln in p.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1, p.stderr
        assert lines[0].startswith(f"Error: {scene}: ") and "not readable" in lines[0], lines[0]
        assert "Traceback" not in p.stderr + p.stdout
    assert not out.exists()
