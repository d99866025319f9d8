"""Atomic file output: write to a temporary name in the same directory, then rename.

Every artefact rsaug writes (tiles, indexes, JSON descriptions, checkpoints, reports) goes through these
helpers, so a killed process never leaves a half-written file under its final name.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rsaug.core.errors import InputError, option

TMP_PREFIX = ".rsaug-tmp-"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    Args:
        path: Final destination.

    Yields:
        A temporary path in the same directory (same suffix, so drivers are chosen correctly).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # unique per process and thread (no two writers share a destination), so no mkstemp round trip is needed;
    # drivers (GDAL, GPKG) create the file themselves
    tmp_path = path.with_name(f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{path.name}")
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    finally:
        aux = Path(str(tmp_path) + ".aux.xml")
        if aux.exists():
            aux.unlink()


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
            p.unlink()
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
    (for ``overwrite``, after :func:`prepare_output_dir` has checked that ``out`` is an rsaug output)."""
    for name in names:
        p = Path(out) / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def json_roundtrip(obj: Any) -> Any:
    """``obj`` as it reads back from a JSON file written by :func:`write_json` (tuples become lists, paths and
    NumPy values plain values), for comparing a configuration with a saved one."""
    return json.loads(json.dumps(obj, default=_json_default))


def prepare_output_dir(
    out: str | os.PathLike[str], *, overwrite: bool, resume: bool, markers: Sequence[str], resume_marker: str, what: str
) -> str:
    """Check the output directory of a run; returns ``new``, ``resume`` or ``overwrite``.

    The one rule for every command that writes a directory: an empty or missing directory is ``new``; a
    non-empty one needs ``resume`` (and then the file ``resume_marker`` an earlier run wrote) or ``overwrite``
    (and then one of ``markers``, so rsaug never replaces a directory it did not write).

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
    if not out.exists() or not any(out.iterdir()):
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
