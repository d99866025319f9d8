"""A real SIGTERM during ``rsaug benchmark-augmentation``: finished runs are kept, the interrupted one is not
recorded, the exit is clean, and running the command again gives the results of an uninterrupted benchmark."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

MAIN = "from rsaug.cli.main import cli; cli(prog_name='rsaug')"
TINY = [
    "--arms", "real,classic", "--seeds", "2", "--iterations", "40", "--crop", "64", "--batch-size", "4",
    "--val-every", "0", "--select", "last", "--threads", "1", "-q",
]  # fmt: skip


def _bench(tiles: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", MAIN, "benchmark-augmentation", str(tiles), "-o", str(out), *TINY],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _runs(out: Path) -> dict[str, dict]:
    return {str(p.relative_to(out)): json.loads(p.read_text()) for p in sorted((out / "runs").rglob("*.json"))}


def test_sigterm_keeps_finished_runs_and_rerun_matches(gid15_tileset: Path, tmp_path: Path) -> None:
    part, full = tmp_path / "part", tmp_path / "full"
    p = _bench(gid15_tileset, part)
    deadline = time.time() + 600
    while p.poll() is None and time.time() < deadline and not ((part / "runs").is_dir() and _runs(part)):
        time.sleep(0.1)
    assert p.poll() is None, p.communicate()
    time.sleep(1.0)  # inside the second run's training
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert lines[0].startswith(f"Error: {part}: stopped by SIGTERM with 1 of 4 runs finished"), lines[0]
    assert "run the same command again" in lines[0]
    kept = _runs(part)
    assert len(kept) == 1
    assert not (part / "report.html").exists()

    r = _bench(gid15_tileset, part)
    _, err = r.communicate(timeout=900)
    assert r.returncode == 0, err
    u = _bench(gid15_tileset, full)
    _, err = u.communicate(timeout=900)
    assert u.returncode == 0, err
    a, b = _runs(full), _runs(part)
    assert a.keys() == b.keys() and len(a) == 4
    for name in a:
        assert a[name]["scores"] == b[name]["scores"], name
    assert b[next(iter(kept))] == kept[next(iter(kept))]  # the finished run was not redone
