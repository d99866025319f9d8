"""Two real ``rsaug tile`` processes on one output directory (issue 13): exactly one writes it, the other is
refused with a one-line error, and the directory holds one complete, consistent tile set."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import rasterio

from rsaug.core.locks import LOCK_FILE
from rsaug.io.tileset import TileSet
from tests.conftest import ROOT
from tests.fixtures_tiles import chesapeake_pair

pytestmark = [
    pytest.mark.filterwarnings("ignore::PendingDeprecationWarning"),
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
]

_ENTRY_POINT = Path(sys.executable).with_name("rsaug")


def _tile_command(out: Path, tile_size: int) -> list[str]:
    """``rsaug tile`` on the georeferenced Chesapeake scene (260 x 260 px, EPSG:26917) through the installed
    entry point (or ``python -c`` where the virtual environment has none)."""
    scene, mask = chesapeake_pair()
    exe = (
        [str(_ENTRY_POINT)]
        if _ENTRY_POINT.exists()
        else [sys.executable, "-c", "from rsaug.cli.main import cli; cli()"]
    )
    args = ["tile", str(scene), str(mask), "--scheme", "chesapeake", "-q", "-o", str(out)]
    return [*exe, *args, "--tile-size", str(tile_size)]


def _start(out: Path, tile_size: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _tile_command(out, tile_size), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _lock_pid(out: Path) -> int | None:
    try:
        return int(json.loads((out / LOCK_FILE).read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def _error_line(stderr: str) -> str:
    lines = [ln.split("\r")[-1] for ln in stderr.split("\n")]
    lines = [ln for ln in lines if ln.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("Error: ") and "Traceback" not in stderr
    return lines[0]


def _assert_one_consistent_tile_set(out: Path, tile_size: int) -> None:
    """Every tile of the index exists with the recorded size; no file that the index does not name."""
    desc = json.loads((out / "tileset.json").read_text())
    assert desc["tile_size"] == tile_size
    ts = TileSet.open(out)
    expected_count = (260 // tile_size) ** 2  # partial edge tiles are dropped
    dropped = desc["summary"]["dropped"]["unknown_fraction"] + desc["summary"]["dropped"]["split_buffer"]
    assert len(ts.index) == expected_count - dropped > 0
    images = {f"{t}.tif" for t in ts.index.tile_id}
    assert {p.name for p in (out / "images").iterdir()} == images
    assert {p.name for p in (out / "masks").iterdir()} == images
    for name in images:
        for sub in ("images", "masks"):
            with rasterio.open(out / sub / name) as src:
                assert (src.width, src.height) == (tile_size, tile_size), (sub, name)
                assert src.crs is not None and src.crs.to_epsg() == 26917
    # nothing else: no lock file, no temporaries, no leftovers of the other run
    top = ["images", "index.gpkg", "masks", "tile-config.json", "tileset.json"]
    assert sorted(p.name for p in out.iterdir()) == top


def test_second_tile_run_on_a_locked_directory_is_refused(tmp_path: Path) -> None:
    """Deterministic: the first run is frozen (SIGSTOP) while it holds the lock, the second runs to its end."""
    out = tmp_path / "tiles"
    first = _start(out, 32)
    try:
        deadline = time.time() + 120
        while _lock_pid(out) != first.pid:
            assert first.poll() is None, f"the first run ended before taking the lock: {first.communicate()}"
            assert time.time() < deadline, "the first run did not take the lock within 120 s"
            time.sleep(0.005)
        first.send_signal(signal.SIGSTOP)
        assert _lock_pid(out) == first.pid, "the first run finished before it could be paused; nothing was tested"
        before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
        second = subprocess.run(_tile_command(out, 64), cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert second.returncode == 2, second.stderr
        line = _error_line(second.stderr)
        assert line.startswith(f"Error: {out}: another rsaug process (pid {first.pid}: rsaug tile "), line
        assert "--tile-size 32" in line and "is writing this tile set" in line
        assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before  # the refused run touched nothing
    finally:
        first.send_signal(signal.SIGCONT)
    _, stderr = first.communicate(timeout=300)
    assert first.returncode == 0, stderr
    _assert_one_consistent_tile_set(out, 32)


def test_two_tile_runs_started_together_leave_one_tile_set(tmp_path: Path) -> None:
    """Both started at once (the issue's reproduction): one exits 0, the other 2 (refused by the lock, or by the
    finished output it finds); the directory holds the winner's tile set only."""
    out = tmp_path / "tiles"
    procs = {size: _start(out, size) for size in (32, 64)}
    results = {size: (p.communicate(timeout=300), p.returncode) for size, p in procs.items()}
    codes = sorted(rc for _, rc in results.values())
    assert codes == [0, 2], {size: (rc, err) for size, ((_, err), rc) in results.items()}
    winner = next(size for size, (_, rc) in results.items() if rc == 0)
    loser = next(size for size, (_, rc) in results.items() if rc == 2)
    line = _error_line(results[loser][0][1])
    assert line.startswith(f"Error: {out}: "), line
    assert f"pid {procs[winner].pid}: " in line or "output directory is not empty" in line, line
    _assert_one_consistent_tile_set(out, winner)
