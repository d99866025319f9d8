"""Deprecated import path kept for one release: use :mod:`rsaug.gan` (see docs/ARCHITECTURE.md)."""

from __future__ import annotations

import warnings

from rsaug.gan import Generator, build_models, load_generator  # noqa: F401

warnings.warn(
    "rsaug.generation moved to rsaug.gan; this alias will be removed in the next release",
    DeprecationWarning,
    stacklevel=2,
)
