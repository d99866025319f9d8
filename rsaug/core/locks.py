"""One writer per output directory: an OS-level lock file that every command writing a directory holds.

:func:`output_lock` takes an exclusive, non-blocking ``flock`` on ``<dir>/.rsaug.lock`` (:data:`LOCK_FILE`) for
the duration of a run, so two rsaug processes started on the same output directory cannot both write it: the
second one fails at once with :class:`OutputLocked` (exit code 2) naming the process that holds the lock, and
touches nothing. The kernel drops the lock when the holder dies (even with SIGKILL), so a killed run never
leaves a stale lock: the lock file it leaves behind is simply taken over by the next run (``--resume``).

The lock file itself is not an output: :func:`rsaug.core.files.prepare_output_dir` treats a directory holding
only it as empty, and :func:`rsaug.core.files.clear_outputs` / :func:`rsaug.core.files.clear_directory` never
delete it. It is removed when the holder leaves the block (while still holding the lock; a process that opened
the old file in the meantime notices that the path no longer names the inode it locked and starts again), so a
finished output holds no trace of it. POSIX only (``fcntl``); works across hosts where the file system supports
``flock`` (local file systems, NFSv4).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from rsaug.core.errors import InputError

#: Name of the lock file inside a locked output directory.
LOCK_FILE = ".rsaug.lock"

#: Environment variables holding the rank of a process of a distributed run (Lightning, torchrun, SLURM).
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


class OutputLocked(InputError):
    """Another process is writing the output directory (exit code 2; nothing was written).

    Attributes:
        holder: What the lock file says about the holder (``pid``, ``host``, ``command``; empty if unreadable).
    """

    def __init__(self, path: str | os.PathLike[str], problem: str, holder: dict[str, object]) -> None:
        super().__init__(path, problem)
        self.holder = holder


def secondary_rank() -> bool:
    """True in a process of a distributed run other than its global rank 0 (``RANK``, ``LOCAL_RANK``,
    ``NODE_RANK`` or ``SLURM_PROCID`` set and non-zero): the rank-0 process holds the run directory's lock."""
    for name in _RANK_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value and value != "0":
            return True
    return False


def command_line() -> str:
    """This process's command line as shown in the lock file (program name without its directory)."""
    argv = list(sys.argv) or ["python"]
    argv[0] = os.path.basename(argv[0]) or argv[0]
    return shlex.join(argv)


@contextlib.contextmanager
def output_lock(path: str | os.PathLike[str], what: str, *, distributed: bool = False) -> Iterator[Path]:
    """Hold the exclusive writer lock of the output directory ``path`` while the block runs.

    Creates ``path`` if it is missing, then locks ``path/.rsaug.lock`` (``flock(LOCK_EX | LOCK_NB)``) and
    writes this process's pid, host name and command line into it. If the block raises and this call created
    the directory, and the directory holds nothing but the lock file, the directory is removed again (bad
    input leaves nothing behind). On leaving the block the lock file is removed and the lock released.

    A process that finds the lock held neither creates nor modifies anything: it only opens the existing
    lock file and reads who holds it.

    Args:
        path: The output directory.
        what: The kind of output in messages (``tile set``, ``training run``...).
        distributed: The command may run as one process of a distributed run; processes other than rank 0
            (see :func:`secondary_rank`) do not lock (rank 0 holds the lock for the whole run).

    Yields:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        OutputLocked: If another process (or another block of this process) holds the lock.
        InputError: If ``path`` exists and is not a directory.
    """
    out = Path(path)
    if distributed and secondary_rank():
        yield out
        return
    fd, created = _acquire(out, what)
    lock = out / LOCK_FILE
    try:
        _write_holder(fd, lock)
        yield out
    except BaseException:
        _remove_lock_file(fd, lock)
        if created:
            with contextlib.suppress(OSError):  # not empty (it wrote something) or gone: leave it
                out.rmdir()
        raise
    else:
        _remove_lock_file(fd, lock)
    finally:
        os.close(fd)  # releases the lock


def _acquire(out: Path, what: str) -> tuple[int, bool]:
    """Open and lock ``out/LOCK_FILE``; returns the descriptor and whether ``out`` was created here."""
    lock = out / LOCK_FILE
    created = False
    while True:
        if out.exists() and not out.is_dir():
            raise InputError(out, "output path exists and is not a directory")
        try:
            out.mkdir(parents=True)
            created = True
        except FileExistsError:
            pass
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except FileNotFoundError:  # the directory was removed meanwhile (a failed holder cleaning up)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = _read_holder(fd)
            os.close(fd)
            raise OutputLocked(out, _locked_problem(holder, what), holder) from None
        # the holder before us may have removed the file between our open and our lock: then we locked an
        # orphaned inode, and whoever opens the path now would lock another one; start again
        if _same_file(lock, fd):
            return fd, created
        os.close(fd)


def _write_holder(fd: int, lock: Path) -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": command_line()}
    data = (json.dumps(info) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError as exc:  # e.g. a full disk: name the file in the one-line error
        raise OSError(exc.errno, exc.strerror, str(lock)) from None


def _read_holder(fd: int) -> dict[str, object]:
    """What the lock file says about its holder (read through ``fd``; retried briefly, since the holder may be
    between truncating the file and writing it)."""
    for attempt in range(5):
        try:
            info = json.loads(os.pread(fd, 1 << 16, 0).decode("utf-8", "replace"))
            if isinstance(info, dict) and "pid" in info:
                return info
        except (OSError, ValueError):
            pass
        if attempt < 4:
            time.sleep(0.02)
    return {}


def _locked_problem(holder: dict[str, object], what: str) -> str:
    pid, host, cmd = holder.get("pid"), holder.get("host"), holder.get("command")
    if pid == os.getpid() and host == socket.gethostname():
        return f"this process (pid {pid}: {cmd}) is already writing this {what}"
    if pid is None:
        who = "another rsaug process (pid unknown)"
    else:
        where = f" on {host}" if host and host != socket.gethostname() else ""
        who = f"another rsaug process (pid {pid}{where}: {cmd})"
    return f"{who} is writing this {what}; wait for it to finish or choose another output directory"


def _remove_lock_file(fd: int, lock: Path) -> None:
    """Remove ``lock`` if it is still the file locked through ``fd`` (a library call may have cleared the
    directory; never remove a lock file that another process has created since)."""
    with contextlib.suppress(OSError):
        if _same_file(lock, fd):
            lock.unlink()


def _same_file(path: Path, fd: int) -> bool:
    """``path`` names the file open as ``fd``."""
    try:
        a, b = os.stat(path), os.fstat(fd)
    except FileNotFoundError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
