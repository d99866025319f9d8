"""Input discovery of a tiling run: scene/mask pairs from two paths (:func:`find_pairs`) or a CSV
(:func:`read_pairs_csv`).
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

from rsaug.core.errors import InputError, option

#: Suffixes of the raster files :func:`find_pairs` takes as scenes.
RASTER_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")


def _raster_files(directory: Path) -> list[Path]:
    """Raster files (by suffix) directly in ``directory``, sorted."""
    return sorted(p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in RASTER_SUFFIXES)


def find_pairs(
    scene: str | os.PathLike[str], mask: str | os.PathLike[str], mask_suffix: str = "", scene_suffix: str = ""
) -> list[tuple[Path, Path]]:
    """Resolve SCENE and MASK arguments into scene/mask pairs.

    Files are used as one pair. Directories are matched by stem: a scene ``<key><scene_suffix>.<ext>`` (only
    files whose stem ends with ``scene_suffix`` are scenes) is paired with the file of the mask directory whose
    stem is ``<key><mask_suffix>``, whatever its extension (vector files included). GID: ``mask_suffix="_15label"``;
    Chesapeake (one directory): ``scene_suffix="_naip-new", mask_suffix="_lc"``.

    Raises:
        InputError: Missing paths, a file paired with a directory, or scenes without a mask.
    """
    s, m = Path(scene), Path(mask)
    for p, what in ((s, "scene"), (m, "mask")):
        if not p.exists():
            raise InputError(p, f"{what} not found")
    if s.is_file() and m.is_file():
        return [(s, m)]
    if s.is_dir() != m.is_dir():
        kind = ("directory", "file") if m.is_dir() else ("file", "directory")
        raise InputError(
            m,
            f"mask is a {kind[0]} but scene {s} is a {kind[1]}; SCENE and MASK must both be "
            "files or both be directories",
        )
    scenes = [p for p in _raster_files(s) if p.stem.endswith(scene_suffix)]
    if s.resolve() == m.resolve() and mask_suffix == scene_suffix:
        raise InputError(
            m, f"SCENE and MASK are the same directory: give {option('scene_suffix')} and {option('mask_suffix')}"
        )
    if not scenes:
        raise InputError(s, f"no raster files (.tif, .png, ...) named '*{scene_suffix}.*' in scene directory")
    by_stem: dict[str, Path] = {}
    for p in sorted(m.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            by_stem.setdefault(p.stem, p)
    pairs, missing = [], []
    for sc in scenes:
        key = sc.stem[: len(sc.stem) - len(scene_suffix)]
        mk = by_stem.get(key + mask_suffix)
        (missing.append(sc.name) if mk is None else pairs.append((sc, mk)))
    if missing:
        raise InputError(m, f"no mask '<stem>{mask_suffix}.*' for {len(missing)} scene(s), e.g. {missing[0]}")
    return pairs


def read_pairs_csv(path: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Read scene/mask pairs from a CSV (columns ``scene,mask``, header optional; relative to the CSV).

    Raises:
        InputError: If the CSV is missing, malformed or empty.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(p, "pairs CSV not found")
    try:
        rows = [r for r in csv.reader(p.read_text().splitlines()) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(p, f"cannot read pairs CSV: {exc}") from None
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["scene", "mask"]:
        rows = rows[1:]
    if not rows:
        raise InputError(p, "pairs CSV lists no pairs")
    pairs = []
    for i, r in enumerate(rows, 1):
        if len(r) < 2:
            raise InputError(p, f"row {i} needs two columns scene,mask")
        sc, mk = (Path(c.strip()) for c in r[:2])
        pairs.append((sc if sc.is_absolute() else p.parent / sc, mk if mk.is_absolute() else p.parent / mk))
    return pairs
