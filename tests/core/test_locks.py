"""``rsaug.core.locks.output_lock``: one writer per output directory, across real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rsaug.core import locks
from rsaug.core.errors import InputError
from rsaug.core.files import clear_directory, clear_outputs, holds_outputs, prepare_output_dir
from rsaug.core.locks import LOCK_FILE, OutputLocked, output_lock
from tests.conftest import ROOT

#: A child process that takes the lock of every directory in argv[2:] (kind argv[1]), says so, and waits.
HOLDER = """
import contextlib, sys, time
from rsaug.core.locks import output_lock
with contextlib.ExitStack() as stack:
    for path in sys.argv[2:]:
        stack.enter_context(output_lock(path, sys.argv[1]))
    print("locked", flush=True)
    time.sleep(600)
"""

#: A child process that tries to lock argv[1] and reports the outcome.
CONTENDER = """
import sys
from rsaug.core.locks import OutputLocked, output_lock
try:
    with output_lock(sys.argv[1], "tile set"):
        print("acquired")
except OutputLocked as exc:
    print(exc.message)
    sys.exit(2)
"""


def _python(code: str, *args: object) -> list[str]:
    return [sys.executable, "-c", code, *map(str, args)]


def _holder_pid(lock: Path) -> int | None:
    try:
        return int(json.loads(lock.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


Holder = Callable[..., "subprocess.Popen[str]"]


@pytest.fixture
def holder() -> Iterator[Holder]:
    """Start a child process holding the locks of some directories; returns a starter ``(what, *dirs) -> Popen``.
    Every child is killed at the end of the test."""
    procs: list[subprocess.Popen[str]] = []

    def start(what: str, *dirs: Path) -> subprocess.Popen[str]:
        proc = subprocess.Popen(_python(HOLDER, what, *dirs), cwd=ROOT, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked", "the holder process did not take its locks"
        return proc

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait()


def _snapshot(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every file under ``directory`` with its bytes and modification time (ns)."""
    return {
        str(p.relative_to(directory)): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_second_writer_in_another_process_is_refused_and_touches_nothing(tmp_path: Path) -> None:
    out = tmp_path / "a" / "out"
    with output_lock(out, "tile set") as locked:
        assert locked == out and out.is_dir()
        lock = out / LOCK_FILE
        info = json.loads(lock.read_text())
        assert info["pid"] == os.getpid() and info["host"] and info["command"]
        (out / "tile.tif").write_bytes(b"x")
        before = _snapshot(out)
        res = subprocess.run(_python(CONTENDER, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2, res.stdout + res.stderr
        message = res.stdout.strip()
        assert "\n" not in message
        assert message.startswith(f"{out}: another rsaug process (pid {os.getpid()}: "), message
        assert "is writing this tile set" in message
        assert _snapshot(out) == before  # the loser neither created nor modified anything
        # a second lock of the same directory in this process conflicts too (flock is per open file)
        with pytest.raises(OutputLocked, match=f"this process \\(pid {os.getpid()}"), output_lock(out, "tile set"):
            pass
        assert _snapshot(out) == before
    # released and the lock file removed: the output holds only what the block wrote; a new writer may start
    assert sorted(p.name for p in out.iterdir()) == ["tile.tif"]
    res = subprocess.run(_python(CONTENDER, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and res.stdout.strip() == "acquired", res.stdout + res.stderr
    assert sorted(p.name for p in out.iterdir()) == ["tile.tif"]


def test_lock_is_released_when_the_holder_is_killed(tmp_path: Path, holder: Holder) -> None:
    out = tmp_path / "out"
    proc = holder("training run", out)
    assert _holder_pid(out / LOCK_FILE) == proc.pid
    with pytest.raises(OutputLocked) as err, output_lock(out, "training run"):
        pass
    assert f"pid {proc.pid}: " in err.value.message and "is writing this training run" in err.value.message
    assert err.value.holder["pid"] == proc.pid
    assert err.value.exit_code == 2 and isinstance(err.value, InputError)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    # the killed holder left its lock file, but no lock: the directory counts as new and can be locked at once
    assert [p.name for p in out.iterdir()] == [LOCK_FILE]
    assert prepare_output_dir(out, overwrite=False, resume=False, markers=("x",), resume_marker="x", what="t") == "new"
    with output_lock(out, "training run"):
        assert _holder_pid(out / LOCK_FILE) == os.getpid()
    assert list(out.iterdir()) == []


def test_failed_block_in_a_fresh_directory_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "new"
    with pytest.raises(InputError, match="bad mask"), output_lock(out, "tile set"):
        assert (out / LOCK_FILE).is_file()
        raise InputError(tmp_path / "mask.tif", "bad mask")
    assert not out.exists()
    # a directory that existed before stays (empty), and one the block wrote into keeps what it wrote
    out.mkdir()
    with pytest.raises(KeyboardInterrupt), output_lock(out, "tile set"):
        raise KeyboardInterrupt
    assert out.is_dir() and list(out.iterdir()) == []
    fresh = tmp_path / "fresh"
    with pytest.raises(InputError), output_lock(fresh, "tile set"):
        (fresh / "config.json").write_text("{}")
        raise InputError(None, "late failure")
    assert [p.name for p in fresh.iterdir()] == ["config.json"]


def test_a_file_is_not_an_output_directory(tmp_path: Path) -> None:
    f = tmp_path / "out.tif"
    f.write_bytes(b"data")
    with pytest.raises(InputError, match="not a directory"), output_lock(f, "tile set"):
        pass
    assert f.read_bytes() == b"data" and sorted(p.name for p in tmp_path.iterdir()) == ["out.tif"]


def test_lock_file_is_no_output(tmp_path: Path) -> None:
    out = tmp_path / "out"
    kw: dict[str, Any] = {"markers": ("tileset.json",), "resume_marker": "tile-config.json", "what": "tile set"}
    with output_lock(out, "tile set"):
        assert not holds_outputs(out)
        assert prepare_output_dir(out, overwrite=False, resume=False, **kw) == "new"
        assert prepare_output_dir(out, overwrite=False, resume=True, **kw) == "new"
        (out / "images").mkdir()
        (out / "images" / "a.tif").write_bytes(b"x")
        (out / "tileset.json").write_text("{}")
        assert holds_outputs(out)
        with pytest.raises(InputError, match="not empty"):
            prepare_output_dir(out, overwrite=False, resume=False, **kw)
        assert prepare_output_dir(out, overwrite=True, resume=False, **kw) == "overwrite"
        clear_outputs(out, ["images", LOCK_FILE])
        assert sorted(p.name for p in out.iterdir()) == [LOCK_FILE, "tileset.json"]
        clear_directory(out)
        assert [p.name for p in out.iterdir()] == [LOCK_FILE]
        assert _holder_pid(out / LOCK_FILE) == os.getpid()


def test_lock_taken_on_a_removed_file_is_retaken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unlink race: the previous holder removes the lock file between our open and our flock; we must not
    keep the lock of the orphaned file (a third process would lock a new file at the path)."""
    out = tmp_path / "out"
    out.mkdir()
    real_flock = locks.fcntl.flock
    calls: list[int] = []

    def flock_after_unlink(fd: int, op: int) -> None:
        if not calls:
            (out / LOCK_FILE).unlink()  # what a finishing holder does
        calls.append(fd)
        real_flock(fd, op)

    monkeypatch.setattr(locks.fcntl, "flock", flock_after_unlink)
    with output_lock(out, "tile set"):
        monkeypatch.setattr(locks.fcntl, "flock", real_flock)
        assert len(calls) == 2  # locked the orphan, noticed, started again
        assert _holder_pid(out / LOCK_FILE) == os.getpid()
        res = subprocess.run(_python(CONTENDER, out), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and f"pid {os.getpid()}" in res.stdout, res.stdout + res.stderr


def test_secondary_ranks_of_a_distributed_run_do_not_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "run"
    with output_lock(out, "training run", distributed=True):
        monkeypatch.setenv("LOCAL_RANK", "1")
        with output_lock(out, "training run", distributed=True):  # rank 1: rank 0 (this block) holds the lock
            assert _holder_pid(out / LOCK_FILE) == os.getpid()
        with pytest.raises(OutputLocked), output_lock(out, "tile set"):  # not distributed: the rank does not matter
            pass
        monkeypatch.setenv("LOCAL_RANK", "0")
        with pytest.raises(OutputLocked), output_lock(out, "training run", distributed=True):
            pass


def test_cli_commands_refuse_a_directory_another_process_writes(tmp_path: Path, holder: Holder) -> None:
    """train, evaluate, filter, benchmark-augmentation and demo on a directory a child process holds: exit 2, one
    line naming the directory and the holder, the directory untouched (the lock comes before any library work)."""
    from rsaug.cli import benchmark, demo, evaluate, filter, train

    tiles = tmp_path / "tiles"
    tiles.mkdir()
    dirs = {name: tmp_path / name for name in ("run", "eval", "filtered", "bench", "demo")}
    proc = holder("run", *dirs.values())
    cases = [
        (train.command, [str(tiles), "-o", str(dirs["run"]), "--steps", "1"], dirs["run"]),
        (evaluate.command, [str(tmp_path / "c.ckpt"), "--tiles", str(tiles), "-o", str(dirs["eval"])], dirs["eval"]),
        (
            filter.command,
            [str(tmp_path / "syn"), "-o", str(dirs["filtered"]), "--real", str(tiles), "--align", "mean-std"],
            dirs["filtered"],
        ),
        (benchmark.command, [str(tiles), "-o", str(dirs["bench"]), "--arms", "real"], dirs["bench"]),
        (demo.command, ["-o", str(dirs["demo"]), "--overwrite"], dirs["demo"]),
    ]
    for command, args, out in cases:
        before = _snapshot(out)
        r = CliRunner().invoke(command, args, catch_exceptions=False)
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert r.exit_code == 2, (command.name, r.output)
        assert len(lines) == 1, r.stderr
        assert lines[0].startswith(f"Error: {out}: another rsaug process (pid {proc.pid}: "), lines[0]
        assert _snapshot(out) == before and [p.name for p in out.iterdir()] == [LOCK_FILE]
