"""Atomic file output: write to a temporary name in the same directory, then rename.

Every artefact rsaug writes (tiles, indexes, JSON descriptions, checkpoints, reports) goes through these
helpers, so a killed process never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rsaug.core.errors import InputError, RsaugError, option
from rsaug.core.locks import LOCK_FILE

TMP_PREFIX = ".rsaug-tmp-"

WRITE_ERRORS: dict[int, str] = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
}
"""The ``errno`` of a failed write that the user fixes outside rsaug (free space, quota, mount, permissions),
and how a one-line message words it (the CLI prints ``<path>: <words>``)."""

_PROBE_BYTES = 4096


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, check_space: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    If the block (or the rename) fails, the temporary file and GDAL's ``.aux.xml`` beside it are deleted and
    ``path`` is left as it was. A failure for lack of space, quota or write permission is raised as an
    :class:`OSError` with that ``errno`` (one of :data:`WRITE_ERRORS`) and ``filename`` ``path``, also when the
    writer hid it (``torch.save`` to a path raises a ``RuntimeError``, GDAL a ``RasterioIOError``): after any
    other failure one block is written beside ``path`` before the partial file is deleted, and if that fails
    with one of :data:`WRITE_ERRORS` (a writer that filled the disk leaves it full), that error is raised,
    chained to the writer's. (SQLite frees its journal when a write fails, so a GeoPackage is built in memory
    and written as bytes: :func:`rsaug.io.tileset.write_index`.)

    Args:
        path: Final destination.
        check_space: After the block, also write one block beside ``path`` and refuse to rename (``ENOSPC``)
            if the disk is full: for writers that do not report a write failing when the file is closed (GDAL
            through rasterio flushes its last blocks and the file's directory then, and a failure there raises
            nothing, leaving a truncated file). A file that fills the disk to the last block is refused too.

    Yields:
        A temporary path in the same directory (same suffix, so drivers are chosen correctly).

    Raises:
        OSError: With an ``errno`` of :data:`WRITE_ERRORS` and ``filename`` ``path`` when the file could not be
            written for lack of space or permission.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and thread (no two writers share a destination), so no mkstemp round trip is needed;
    # drivers (GDAL, GPKG) create the file themselves
    tmp_path = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}")
    aux = Path(str(tmp_path) + ".aux.xml")
    try:
        yield tmp_path
        if check_space and (full := _write_probe(path)) is not None:
            raise full
        os.replace(tmp_path, path)
    except BaseException as exc:
        hidden = _write_failure(exc, path, (tmp_path, aux))  # before the partial file frees its space
        with contextlib.suppress(OSError):  # the original error matters, not a failed clean-up
            tmp_path.unlink(missing_ok=True)
        if hidden is not None:
            raise hidden from exc
        raise
    finally:
        with contextlib.suppress(OSError):
            if aux.exists():
                aux.unlink()


def _write_failure(exc: BaseException, path: Path, temporaries: tuple[Path, ...]) -> OSError | None:
    """The error to raise instead of ``exc``, a failed write of ``path`` through ``temporaries[0]`` (``None``:
    re-raise ``exc``).

    An :class:`OSError` of :data:`WRITE_ERRORS` that names no file or a temporary one is made to name ``path``
    (in place; a new error if it also names a second file). After any other failure (not an
    :class:`~rsaug.core.errors.RsaugError`), :func:`_write_probe` decides.
    """
    if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
        named = None if exc.filename is None else os.fsdecode(exc.filename)
        if named is None or named in {os.fspath(t) for t in temporaries}:
            if exc.filename2 is not None:  # os.replace(tmp, path): name ``path`` alone
                return OSError(exc.errno, exc.strerror, os.fspath(path))
            exc.filename = os.fspath(path)
        return None
    if not isinstance(exc, Exception) or isinstance(exc, RsaugError):
        return None
    return _write_probe(path)


def _write_probe(path: Path) -> OSError | None:
    """Write one block beside ``path``: ``None`` if that works (or fails otherwise), else an :class:`OSError`
    with the probe's ``errno`` of :data:`WRITE_ERRORS` and ``filename`` ``path``."""
    probe = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}.probe")  # never a temporary's name
    try:
        with open(probe, "wb") as f:
            f.write(bytes(_PROBE_BYTES))
    except OSError as err:
        if err.errno in WRITE_ERRORS:
            return OSError(err.errno, os.strerror(err.errno), os.fspath(path))
    finally:
        with contextlib.suppress(OSError):
            probe.unlink(missing_ok=True)
    return None


def write_json(path: str | os.PathLike[str], data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def remove_temporaries(directory: str | os.PathLike[str]) -> int:
    """Delete leftovers of killed runs (files starting with the temporary prefix) under ``directory``.

    Returns:
        Number of files removed.
    """
    n = 0
    for p in Path(directory).rglob(f"{TMP_PREFIX}*"):
        if p.is_file():
            p.unlink(missing_ok=True)  # (a straggling writer may have renamed it meanwhile)
            n += 1
    return n


def strict_json(obj: Any) -> Any:
    """Return ``obj`` with NumPy scalars/arrays as Python values and NaN / inf replaced by ``None``.

    Use it before :func:`write_json` when the data may hold non-finite numbers, so the file is strict JSON.
    """
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "tolist") and not isinstance(obj, (str, bytes)):  # numpy scalars and arrays
        return strict_json(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def clear_outputs(out: str | os.PathLike[str], names: Sequence[str]) -> None:
    """Delete the files and folders ``names`` (relative to ``out``) that an earlier run wrote, and nothing else
    (for ``overwrite``, after :func:`prepare_output_dir` has checked that ``out`` is an rsaug output). The lock
    file of :func:`rsaug.core.locks.output_lock` is never deleted."""
    for name in names:
        p = Path(out) / name
        if p.name == LOCK_FILE and p.parent == Path(out):
            continue
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def clear_directory(out: str | os.PathLike[str]) -> None:
    """Delete everything inside the directory ``out`` except the lock file of
    :func:`rsaug.core.locks.output_lock` (``out`` itself stays, so the lock its writer holds stays valid)."""
    for child in Path(out).iterdir():
        if child.name == LOCK_FILE:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def holds_outputs(out: str | os.PathLike[str]) -> bool:
    """``out`` is a directory holding anything but the lock file of :func:`rsaug.core.locks.output_lock`."""
    out = Path(out)
    return out.is_dir() and any(p.name != LOCK_FILE for p in out.iterdir())


def json_roundtrip(obj: Any) -> Any:
    """``obj`` as it reads back from a JSON file written by :func:`write_json` (tuples become lists, paths and
    NumPy values plain values), for comparing a configuration with a saved one."""
    return json.loads(json.dumps(obj, default=_json_default))


def prepare_output_dir(
    out: str | os.PathLike[str], *, overwrite: bool, resume: bool, markers: Sequence[str], resume_marker: str, what: str
) -> str:
    """Check the output directory of a run; returns ``new``, ``resume`` or ``overwrite``.

    The one rule for every command that writes a directory: an empty or missing directory is ``new`` (the lock
    file of :func:`rsaug.core.locks.output_lock` does not count); a non-empty one needs ``resume`` (and then the
    file ``resume_marker`` an earlier run wrote) or ``overwrite`` (and then one of ``markers``, so rsaug never
    replaces a directory it did not write).

    Args:
        out: The output directory.
        overwrite: The caller may replace an earlier output.
        resume: The caller continues an earlier run.
        markers: Files (relative to ``out``) that prove an earlier rsaug output.
        resume_marker: File an earlier run of this command leaves for resuming.
        what: The kind of output in messages (``tile set``, ``synthesis run``...).

    Raises:
        InputError: If it is a file, non-empty without ``overwrite``/``resume``, has no ``resume_marker`` on
            resume, or is not an rsaug output on overwrite.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a directory")
    if not holds_outputs(out):
        return "new"
    if resume:
        if not (out / resume_marker).is_file():
            raise InputError(out, f"cannot resume: no {resume_marker} from an earlier {what}")
        return "resume"
    if overwrite:
        if not any((out / m).exists() for m in markers):
            raise InputError(out, f"output directory is not empty and not an rsaug {what}; refusing to overwrite it")
        return "overwrite"
    raise InputError(
        out,
        f"output directory is not empty; use {option('overwrite')} to replace it or "
        f"{option('resume')} to continue an interrupted run",
    )
