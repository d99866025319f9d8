"""A full disk, a read-only file system or a refused write never leaves a half-written file under its final name
and reaches the user as one line ``Error: <path>: <reason>`` (exit 2), never a traceback (issue 13).

The tests that need a real full or read-only file system mount a small tmpfs inside ``tmp_path`` (root with
``CAP_SYS_ADMIN``; skipped elsewhere). The tests at the end inject the errors and run everywhere.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import numpy as np
import pytest
import rasterio
import torch
from click.testing import CliRunner
from rasterio.windows import Window

import rsaug.core.files as files
from rsaug.cli.common import BadInput, guarded
from rsaug.cli.main import cli
from rsaug.core.files import TMP_PREFIX, atomic_path, write_json
from rsaug.gan.checkpoint import save_checkpoint
from rsaug.io.tileset import TileSet, write_index, write_tile
from rsaug.tiling import tile_scenes
from tests.conftest import GEOREF_PAIR

SCENE, LABEL = GEOREF_PAIR / "image.tif", GEOREF_PAIR / "label.tif"
MAIN = "from rsaug.cli.main import cli; cli(prog_name='rsaug')"
N_TILES = 64  # 512 px at 64 px per tile
# the georeferenced pair as 64-px tiles needs ~1.1 MB on a tmpfs (pages of 4 KiB): this stops half-way
SMALL_KB = 400

pytestmark = [
    pytest.mark.filterwarnings("ignore::rsaug.tiling.options.TilingWarning"),
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
]


# ------------------------------------------------------------------------------------------------ fixtures
def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, timeout=30)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[..., Path]]:
    """``tmpfs(name, size_kb, read_only=False)`` mounts a size-limited tmpfs at ``tmp_path/name`` (unmounted at
    teardown); the test is skipped where mounting is not permitted."""
    if os.name != "posix" or shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("needs the mount and umount commands")
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root (CAP_SYS_ADMIN); not root here")
    mounted: list[Path] = []

    def mount(name: str, size_kb: int, read_only: bool = False) -> Path:
        d = tmp_path / name
        d.mkdir()
        p = _mount("-t", "tmpfs", "-o", f"size={size_kb}k" + (",ro" if read_only else ""), "tmpfs", str(d))
        if p.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (no CAP_SYS_ADMIN?): {' '.join(p.stderr.split())[:200]}")
        mounted.append(d)
        return d

    yield mount
    for d in reversed(mounted):
        if subprocess.run(["umount", str(d)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _remount(d: Path, options: str) -> None:
    p = _mount("-o", f"remount,{options}", str(d))
    assert p.returncode == 0, p.stderr


def _fill(d: Path, leave: int = 0) -> Path:
    """Fill the file system of ``d`` until about ``leave`` bytes are free (0: until a write fails)."""
    filler = d / "filler"
    st = os.statvfs(d)
    todo = st.f_bavail * st.f_frsize - leave if leave else None
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while todo is None or todo > 0:
            n = os.write(fd, bytes(min(todo or 1 << 16, 1 << 16)))
            if todo is not None:
                todo -= n
    except OSError as exc:
        assert exc.errno == errno.ENOSPC and leave == 0, exc
    finally:
        os.close(fd)
    return filler


@pytest.fixture(scope="module")
def road_scheme(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The class scheme of the georeferenced pair: 0 background, 1 road, 2 building."""
    p = tmp_path_factory.mktemp("scheme") / "roads.json"
    classes = [("background", [0, 0, 0]), ("road", [255, 255, 0]), ("building", [255, 0, 0])]
    p.write_text(
        json.dumps(
            {
                "name": "roads",
                "classes": [{"name": n, "value": i, "color": c} for i, (n, c) in enumerate(classes)],
                "unknown_values": [],
                "unknown_color": [255, 255, 255],
            }
        )
    )
    return p


def _rsaug(*args: object) -> subprocess.CompletedProcess[str]:
    """``rsaug ARGS`` in a real process (stderr holds everything C libraries print too)."""
    return subprocess.run(
        [sys.executable, "-c", MAIN, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=Path.cwd()
    )


def _tile_args(out: Path, scheme: Path, *extra: object) -> list[object]:
    return ["tile", SCENE, LABEL, "-o", out, "--tile-size", 64, "--scheme", scheme, "--max-unknown", 1, "-q", *extra]


def _in_process(*args: object) -> subprocess.CompletedProcess[str]:
    """``rsaug ARGS`` in this process (faster; stderr holds what Python prints)."""
    argv = [str(a) for a in args]
    res = CliRunner().invoke(cli, argv)
    return subprocess.CompletedProcess(argv, res.exit_code, res.stdout, res.stderr)


def _one_line_error(p: subprocess.CompletedProcess[str], under: Path, reason: str) -> str:
    """Exit 2 and exactly one line ``Error: <path under ``under``>: <reason>`` on stderr, nothing else."""
    assert p.returncode == 2, p.stderr
    lines = [ln.split("\r")[-1] for ln in p.stderr.splitlines()]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1, p.stderr
    assert "Traceback" not in p.stderr + p.stdout
    m = re.fullmatch(r"Error: (.+): " + re.escape(reason), lines[0])
    assert m is not None, lines[0]
    assert Path(m.group(1)).is_relative_to(under), lines[0]
    assert TMP_PREFIX not in lines[0]  # the path the user knows, not the temporary name
    return m.group(1)


def _leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith(TMP_PREFIX) or p.name.endswith(".aux.xml")]


def _check_tiles(root: Path) -> int:
    """Every tile file under ``root`` opens, reads completely and holds its window of the source; returns the
    number of complete image + mask pairs."""
    with rasterio.open(SCENE) as s, rasterio.open(LABEL) as m:
        pairs = 0
        for img in sorted((root / "images").glob("*.tif")):
            r, c = map(int, re.fullmatch(r"image_r(\d+)_c(\d+)", img.stem).groups())  # type: ignore[union-attr]
            win = Window(c, r, 64, 64)
            with rasterio.open(img) as t:
                assert np.array_equal(t.read(), s.read(window=win)), img
            mask = root / "masks" / img.name
            if mask.exists():
                with rasterio.open(mask) as t:
                    assert np.array_equal(t.read(1), m.read(1, window=win)), mask
                pairs += 1
        for mask in (root / "masks").glob("*.tif"):
            with rasterio.open(mask) as t:
                assert t.read(1).shape == (64, 64), mask
    return pairs


def _snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {
        str(p.relative_to(root)): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


# ------------------------------------------------------------------------------------------------ real mounts
def test_tile_fills_the_disk_then_resumes(tmp_path: Path, tmpfs: Callable[..., Path], road_scheme: Path) -> None:
    """``rsaug tile`` into a file system that fills up half-way: one line naming the tile and the reason, exit 2,
    every file present is complete, no temporaries; with space again ``--resume`` completes the tile set."""
    disk = tmpfs("disk", SMALL_KB)
    out = disk / "tiles"
    where = _one_line_error(_rsaug(*_tile_args(out, road_scheme)), out, "no space left on device")
    assert Path(where).parent in (out / "images", out / "masks")
    assert _leftovers(disk) == []
    assert not (out / "index.gpkg").exists() and not (out / "tileset.json").exists()
    done = _check_tiles(out)
    assert 0 < done < N_TILES  # it stopped half-way, as planned

    _remount(disk, "size=4m")
    summary = tmp_path / "summary.json"
    p = _rsaug(*_tile_args(out, road_scheme, "--resume", "--summary-json", summary))
    assert p.returncode == 0, p.stderr
    assert json.loads(summary.read_text())["skipped_existing"] == done
    ts = TileSet.open(out)
    assert len(ts.index) == N_TILES
    assert _check_tiles(out) == N_TILES
    assert _leftovers(disk) == []


def test_read_only_output(tmp_path: Path, tmpfs: Callable[..., Path], road_scheme: Path) -> None:
    """A read-only file system: a new tile set and an ``--overwrite`` of an existing one both end in one line
    naming the output and ``read-only file system``, exit 2; the existing tile set is untouched."""
    empty = tmpfs("empty", 256, read_only=True)
    _one_line_error(_in_process(*_tile_args(empty / "new", road_scheme)), empty / "new", "read-only file system")
    assert list(empty.iterdir()) == []

    disk = tmpfs("disk", 2048)
    out = disk / "tiles"
    tile_scenes([(SCENE, LABEL)], out, tile_size=64, scheme=str(road_scheme), max_unknown=1.0)
    before = _snapshot(out)
    _remount(disk, "ro")
    for extra in (["--overwrite"], ["--resume"]):
        _one_line_error(_in_process(*_tile_args(out, road_scheme, *extra)), out, "read-only file system")
        assert _snapshot(out) == before
    assert len(TileSet.open(out).index) == N_TILES


def test_checkpoint_on_full_disk_keeps_the_last_one(tmp_path: Path, tmpfs: Callable[..., Path]) -> None:
    """A checkpoint that does not fit: ``OSError(ENOSPC)`` naming the new file (``torch.save`` itself raises a
    ``RuntimeError``), the older ``last.ckpt`` still loads, no partial file; the CLI wrapper prints one line."""
    ckpt_dir = tmpfs("disk", 512) / "checkpoints"
    ckpt_dir.mkdir()
    old = {"w": torch.arange(1000, dtype=torch.float32), "step": torch.tensor(1)}
    last = save_checkpoint(old, ckpt_dir, step=1, keep=0)
    big = {"w": torch.randn(256, 1024)}  # 1 MiB: more than the whole file system
    with pytest.raises(OSError) as info:
        save_checkpoint(big, ckpt_dir, step=2, keep=0)
    assert info.value.errno == errno.ENOSPC
    assert info.value.filename == str(ckpt_dir / "step_000002.ckpt")
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt", "step_000001.ckpt"]
    with open(last, "rb") as f:
        back = torch.load(f, weights_only=True)
    assert set(back) == set(old) and all(torch.equal(back[k], old[k]) for k in old)

    with pytest.raises(BadInput) as cli_info:
        guarded(lambda: save_checkpoint(big, ckpt_dir, step=3, keep=0))()
    assert cli_info.value.exit_code == 2
    assert cli_info.value.format_message() == f"{ckpt_dir / 'step_000003.ckpt'}: no space left on device"
    assert _leftovers(ckpt_dir) == []


def test_report_and_index_on_full_disk_keep_the_previous_file(tmpfs: Callable[..., Path], road_scheme: Path) -> None:
    """A JSON report and a GeoPackage index written onto a full disk: ``OSError(ENOSPC)`` naming the file, the
    previous file unchanged, no temporaries (GDAL and SQLite side files included)."""
    disk = tmpfs("disk", 2048)
    tile_scenes([(SCENE, LABEL)], disk / "t", tile_size=64, scheme=str(road_scheme))
    ts = TileSet.open(disk / "t")
    report = disk / "report.json"
    write_json(report, {"run": 1, "values": list(range(10))})
    before = {p: p.read_bytes() for p in (report, ts.root / "index.gpkg")}
    _fill(disk)
    with pytest.raises(OSError) as info:
        write_json(report, {"run": 2, "values": list(range(100_000))})
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(report))
    with pytest.raises(OSError) as info:
        write_index(ts.root, ts.index)
    assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(ts.root / "index.gpkg"))
    assert {p: p.read_bytes() for p in before} == before
    assert json.loads(report.read_text())["run"] == 1
    assert _leftovers(disk) == []
    assert not list(disk.rglob("*-journal")) and not list(disk.rglob("*-wal"))


@pytest.mark.parametrize("spare", [-24 * 1024, 24 * 1024])
@pytest.mark.parametrize("level", [1, 6])  # ISA-L (Python writes the file) and GDAL (libdeflate)
def test_tile_on_nearly_full_disk_is_whole_or_absent(tmpfs: Callable[..., Path], level: int, spare: int) -> None:
    """A tile written with a little less (or more) room than it needs is absent with ``OSError(ENOSPC)`` (or
    whole). GDAL writes the last strips and the directory when the file is closed and rasterio does not report
    that failure: written onto the disk by GDAL, such a tile used to be renamed into place truncated."""
    disk = tmpfs("disk", 512)
    with rasterio.open(SCENE) as s:
        arr = s.read(window=Window(128, 128, 256, 256))
    write_tile(disk / "probe.tif", arr, compress_level=level)
    need = (disk / "probe.tif").stat().st_size
    (disk / "probe.tif").unlink()
    _fill(disk, leave=need + spare)
    dst = disk / "tile.tif"
    if spare < 0:
        with pytest.raises(OSError) as info:
            write_tile(dst, arr, compress_level=level)
        assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(dst))
        assert not dst.exists()
    else:
        write_tile(dst, arr, compress_level=level)
        with rasterio.open(dst) as t:
            assert np.array_equal(t.read(), arr)
    assert _leftovers(disk) == []


@pytest.mark.parametrize("spare", [-24 * 1024, 24 * 1024])
def test_gdal_writer_with_space_check(tmpfs: Callable[..., Path], spare: int) -> None:
    """A raster GDAL writes onto the disk itself (as a synthesized scene is) in ``atomic_path(check_space=True)``:
    with too little room the close fails without an error from rasterio, and the check refuses the truncated
    file (``ENOSPC``, nothing renamed); with room the file is renamed whole."""
    disk = tmpfs("disk", 512)
    with rasterio.open(SCENE) as s:
        arr = s.read(window=Window(128, 128, 256, 256))
        profile = {**s.profile, "width": 256, "height": 256, "compress": "deflate", "zlevel": 6, "predictor": 2}
        profile["transform"] = s.window_transform(Window(128, 128, 256, 256))

    def write(dst: Path) -> None:
        with atomic_path(dst, check_space=True) as tmp, rasterio.open(tmp, "w", **profile) as d:
            d.write(arr)

    write(disk / "probe.tif")
    need = (disk / "probe.tif").stat().st_size
    (disk / "probe.tif").unlink()
    _fill(disk, leave=need + spare)
    dst = disk / "scene.tif"
    if spare < 0:
        with pytest.raises(OSError) as info:
            write(dst)
        assert (info.value.errno, info.value.filename) == (errno.ENOSPC, str(dst))
        assert not dst.exists()
    else:
        write(dst)
        with rasterio.open(dst) as t:
            assert np.array_equal(t.read(), arr)
    assert _leftovers(disk) == []


# ------------------------------------------------------------------------------------------------ injected errors
WORDS = [
    (errno.ENOSPC, "no space left on device"),
    (errno.EDQUOT, "disk quota exceeded"),
    (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"),
    (errno.EPERM, "permission denied"),
]


@pytest.mark.parametrize(("code", "words"), WORDS)
def test_injected_write_error_through_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    """A write that stops half-way with a disk error (injected: runs everywhere): the previous file stays, the
    temporary is gone, and a guarded click command prints one line naming the file, exit 2."""
    report = tmp_path / "out" / "report.json"
    write_json(report, {"run": 1})
    before = report.read_bytes()
    real_write_text = Path.write_text

    def half_then_fail(self: Path, data: str, *args: object, **kwargs: object) -> int:
        real_write_text(self, data[: len(data) // 2])  # part of the file reached the disk
        raise OSError(code, os.strerror(code))  # as a failing write() reports it: no file name

    monkeypatch.setattr(Path, "write_text", half_then_fail)

    @click.command()
    @guarded
    def command() -> None:
        write_json(report, {"run": 2, "values": list(range(1000))})

    res = CliRunner().invoke(command, [])
    assert res.exit_code == 2, res.output
    assert res.stderr.strip().splitlines() == [f"Error: {report}: {words}"]
    assert res.exception is not None and "Traceback" not in res.output
    assert report.read_bytes() == before
    assert sorted(p.name for p in report.parent.iterdir()) == ["report.json"]


@pytest.mark.parametrize(("code", "words"), WORDS[:3])
def test_hidden_disk_error_is_recognised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, code: int, words: str
) -> None:
    """A writer that hides the disk's error (``torch.save`` to a path raises ``RuntimeError``, GDAL a
    ``RasterioIOError``) on a disk where one more block cannot be written (injected): ``OSError`` with the
    disk's errno naming the destination, chained to the writer's error; the CLI prints it as one line."""
    real_open = open

    def full_disk_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if "w" in mode and str(file).endswith(".probe"):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(files, "open", full_disk_open, raising=False)
    dst = tmp_path / "step_000002.ckpt"
    dst.write_bytes(b"older")
    with pytest.raises(OSError) as info, atomic_path(dst) as tmp:
        tmp.write_bytes(b"partial")
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")
    assert (info.value.errno, info.value.filename) == (code, str(dst))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert dst.read_bytes() == b"older" and sorted(p.name for p in tmp_path.iterdir()) == [dst.name]

    def fails() -> None:
        with atomic_path(dst) as tmp:
            tmp.write_bytes(b"partial")
            raise rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")

    with pytest.raises(BadInput) as cli_info:
        guarded(fails)()
    assert (cli_info.value.exit_code, cli_info.value.format_message()) == (2, f"{dst}: {words}")


def test_other_failures_are_left_alone(tmp_path: Path) -> None:
    """A failure that is not the disk's (the disk has room) is re-raised unchanged, the probe leaves nothing;
    the CLI wrapper lets unrelated OS errors through (they are bugs to see, not user errors to word)."""
    dst = tmp_path / "a.json"
    with pytest.raises(ValueError, match="not the disk"), atomic_path(dst) as tmp:
        tmp.write_text("partial")
        raise ValueError("not the disk")
    assert list(tmp_path.iterdir()) == []

    def eio() -> None:
        raise OSError(errno.EIO, os.strerror(errno.EIO), str(dst))

    with pytest.raises(OSError) as info:
        guarded(eio)()
    assert info.value.errno == errno.EIO


def test_write_error_of_a_temporary_names_the_destination(tmp_path: Path) -> None:
    """An error naming the temporary file (a failed rename of it, say) is reported on the destination."""
    dst = tmp_path / "sub" / "tile.tif"
    with pytest.raises(OSError) as info, atomic_path(dst) as tmp:
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(tmp), str(dst))
    assert (info.value.errno, info.value.filename, info.value.filename2) == (errno.EROFS, str(dst), None)
