"""Deprecated import path kept for one release: use :mod:`rsaug.io.tileset` (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import warnings

from rsaug.io.tileset import *  # noqa: F403

warnings.warn(
    "rsaug.tileset moved to rsaug.io.tileset; this alias will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)
