"""Atomic file output: write to a temporary name in the same directory, then rename.

Every artefact rsaug writes (tiles, indexes, JSON descriptions, checkpoints, reports) goes through these
helpers, so a killed process never leaves a half-written file under its final name.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
