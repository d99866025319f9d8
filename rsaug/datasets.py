"""Deprecated import path kept for one release: use :mod:`rsaug.integrations` (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import warnings

from rsaug.integrations import *  # noqa: F403

warnings.warn(
    "rsaug.datasets moved to rsaug.integrations; this alias will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)
