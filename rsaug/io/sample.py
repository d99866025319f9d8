"""Paths of the small real sample and the bundled generator shipped inside the package (used by ``rsaug demo``)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def sample_root() -> Path:
    """Directory holding the bundled sample (see its README.md for provenance and licences)."""
    return Path(str(resources.files("rsaug") / "data"))


def gid15_sample() -> tuple[Path, Path]:
    """(images directory, colour-label directory) of the 45 bundled GID-15 tiles."""
    root = sample_root() / "gid15"
    return root / "images", root / "labels_color"


def gid15_generator() -> Path:
    """The bundled CSEBGAN generator for the ``gid15`` scheme (an ``rsaug export-generator`` file: float16 EMA
    weights with its data card, also as ``<file>.json``). It was trained on shared GID-15 tiles disjoint from the
    45 bundled ones (the sample's README.md gives the command, data and scores)."""
    return sample_root() / "generators" / "gid15-csebgan-cpu-long.ckpt"


def chesapeake_sample() -> tuple[Path, Path]:
    """(NAIP scene, land-cover mask) of the bundled georeferenced Chesapeake tile."""
    root = sample_root() / "chesapeake"
    return root / "m_3907833_nw_17_1_naip-new.tif", root / "m_3907833_nw_17_1_lc.tif"
