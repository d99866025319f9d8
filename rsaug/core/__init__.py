"""Foundations every stage uses: errors, atomic file output, output-directory locks, device/seed runtime, class
schemes, progress.

May import: nothing else from rsaug (the bottom layer).
"""

from __future__ import annotations

from rsaug.core.classes import IGNORE, ClassInfo, ClassScheme, get_scheme
from rsaug.core.errors import InputError, RsaugError, RunStopped, option
from rsaug.core.files import (
    TMP_PREFIX,
    atomic_path,
    clear_directory,
    clear_outputs,
    holds_outputs,
    json_roundtrip,
    prepare_output_dir,
    read_json,
    remove_temporaries,
    strict_json,
    write_json,
)
from rsaug.core.locks import LOCK_FILE, OutputLocked, output_lock
from rsaug.core.progress import SILENT, Reporter, reporter_or_silent
from rsaug.core.runtime import quiet, seed_everything, select_device

__all__ = [
    "IGNORE",
    "LOCK_FILE",
    "SILENT",
    "TMP_PREFIX",
    "ClassInfo",
    "ClassScheme",
    "InputError",
    "OutputLocked",
    "Reporter",
    "RsaugError",
    "RunStopped",
    "atomic_path",
    "clear_directory",
    "clear_outputs",
    "get_scheme",
    "holds_outputs",
    "json_roundtrip",
    "option",
    "output_lock",
    "prepare_output_dir",
    "quiet",
    "read_json",
    "remove_temporaries",
    "reporter_or_silent",
    "seed_everything",
    "select_device",
    "strict_json",
    "write_json",
]
