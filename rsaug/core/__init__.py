"""Foundations every stage uses: errors, atomic file output, device/seed runtime, class schemes, progress.

May import: nothing else from rsaug (the bottom layer).
"""

from __future__ import annotations

from rsaug.core.classes import (
    ClassInfo,
    ClassScheme,
    get_scheme,
)
from rsaug.core.errors import (
    InputError,
)
from rsaug.core.files import (
    TMP_PREFIX,
    atomic_path,
    read_json,
    remove_temporaries,
    strict_json,
    write_json,
)
from rsaug.core.runtime import (
    seed_everything,
    select_device,
)

__all__ = [
    "TMP_PREFIX",
    "ClassInfo",
    "ClassScheme",
    "InputError",
    "atomic_path",
    "get_scheme",
    "read_json",
    "remove_temporaries",
    "seed_everything",
    "select_device",
    "strict_json",
    "write_json",
]
