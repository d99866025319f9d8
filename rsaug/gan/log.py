"""A training run's ``log.csv``: one row of values per step under a fixed header, cut back on resume."""

from __future__ import annotations

import csv
import os
from pathlib import Path
from typing import Any

from rsaug.core.files import atomic_path


class CsvLog:
    """Append-only CSV of per-step values with a fixed header (rows beyond a resumed step are dropped).

    Args:
        path: The CSV file.
        columns: The header; values of other keys are ignored.
        resume_step: Keep the existing rows up to this step (``None``: start a new file).
    """

    def __init__(self, path: Path, columns: list[str], resume_step: int | None) -> None:
        self.path = path
        self.columns = columns
        if resume_step is not None and path.is_file():
            with path.open(newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                wr = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
                wr.writeheader()
                wr.writerows(rows)
        else:
            with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
                csv.DictWriter(f, fieldnames=columns).writeheader()
        self._file = path.open("a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=columns, extrasaction="ignore")

    def write(self, row: dict[str, Any]) -> None:
        """Append one row (missing columns stay empty)."""
        self._writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
        self._file.flush()

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def read_log(path: str | os.PathLike[str]) -> list[dict[str, float]]:
    """Read a run's ``log.csv`` as a list of ``{column: float}`` (empty cells omitted)."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(f)]


__all__ = ["CsvLog", "read_log"]
