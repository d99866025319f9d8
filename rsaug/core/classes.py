"""Land-cover class schemes and the single internal mask convention.

Every mask rsaug writes uses the **internal convention**: class ``k`` of a scheme is stored as value ``k``
(``0 .. K-1``, in the scheme's order) and unknown / unlabeled / no-data pixels are stored as
:data:`IGNORE` (255), which is also the GeoTIFF nodata value. Source masks come in many conventions; a
:class:`ClassScheme` says which raw value (and which colour) each class has in the *source* files, and
converts them with :meth:`ClassScheme.encode` / :meth:`ClassScheme.decode_colors`.

Built-in schemes (see :data:`BUILTIN_SCHEMES`):

* ``gid15``: GID-15 as distributed in the shared tiles (0..14 = classes, 15 = unlabeled).
* ``gid15-official``: the official GID-15 index convention (0 = background/unlabeled, 1..15 = classes).
* ``gid5``: GID-5 (0..4 = classes, 5 = unlabeled).
* ``chesapeake``: Chesapeake Land Cover 7-class (1..6 = classes, 15 and 0 = no data).
* ``loveda``: LoveDA (1..7 = classes, 0 = no data).

Colour-coded labels (e.g. GID's ``*_15label.png``) are decoded exactly with the scheme's palette; any colour
that is not in the palette is an error listing the colours found.

A user scheme is a JSON file::

    {"name": "roads", "classes": [{"name": "background", "value": 0, "color": [0, 0, 0]},
                                  {"name": "road", "value": 1, "color": [255, 255, 0]}],
     "unknown_values": [255], "unknown_color": [255, 255, 255]}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from rsaug.core.errors import InputError

IGNORE: int = 255
"""Internal value of unknown / unlabeled / no-data pixels in every mask rsaug writes (also GeoTIFF nodata)."""

Color = tuple[int, int, int]


@dataclass(frozen=True)
class ClassInfo:
    """One land-cover class.

    Attributes:
        name: Class name (unique within the scheme).
        value: Raw value of the class in *source* index masks.
        color: RGB colour used in colour-coded labels and in the colormap of written masks.
    """

    name: str
    value: int
    color: Color


@dataclass(frozen=True)
class ClassScheme:
    """A set of classes plus the raw values / colours that mean "unknown".

    Attributes:
        name: Scheme name (``gid15``, ``chesapeake`` or a user name).
        classes: The classes, in internal order (internal value = position).
        unknown_values: Raw values that mean unknown / no data in source index masks.
        unknown_color: Colour of unknown pixels in colour-coded labels and written colormaps.
        unknown_name: Display name of the unknown label.
    """

    name: str
    classes: tuple[ClassInfo, ...]
    unknown_values: tuple[int, ...] = ()
    unknown_color: Color = (0, 0, 0)
    unknown_name: str = "unlabeled"

    def __post_init__(self) -> None:
        names = [c.name for c in self.classes]
        if not self.classes:
            raise ValueError(f"class scheme {self.name!r} has no classes")
        if len(self.classes) >= IGNORE:
            raise ValueError(f"class scheme {self.name!r} has {len(self.classes)} classes; at most 254 allowed")
        if len(set(names)) != len(names):
            raise ValueError(f"class scheme {self.name!r} has duplicate class names")
        values = [c.value for c in self.classes]
        if len(set(values)) != len(values) or set(values) & set(self.unknown_values):
            raise ValueError(f"class scheme {self.name!r} has duplicate raw values")
        if any(v < 0 for v in values + list(self.unknown_values)):
            raise ValueError(f"class scheme {self.name!r} has negative raw values")
        colors = [tuple(c.color) for c in self.classes] + [tuple(self.unknown_color)]
        if len(set(colors)) != len(colors):
            raise ValueError(f"class scheme {self.name!r} has duplicate colours")

    # ------------------------------------------------------------------ basic properties
    @property
    def num_classes(self) -> int:
        """Number of real classes K (unknown not counted)."""
        return len(self.classes)

    @property
    def names(self) -> list[str]:
        """Class names in internal order."""
        return [c.name for c in self.classes]

    def index_of(self, name: str) -> int:
        """Internal index of the class called ``name``.

        Raises:
            InputError: If no class has that name (the message lists the valid names).
        """
        for i, c in enumerate(self.classes):
            if c.name == name:
                return i
        raise InputError(None, f"class {name!r} is not in scheme {self.name!r}; classes: {', '.join(self.names)}")

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GeoTIFF colormap for internal masks (class k -> its colour, 255 -> unknown colour)."""
        cmap = {i: (*c.color, 255) for i, c in enumerate(self.classes)}
        cmap[IGNORE] = (*self.unknown_color, 255)
        return cmap

    def palette(self) -> np.ndarray:
        """A (256, 3) uint8 array mapping internal values to colours (for previews)."""
        pal = np.zeros((256, 3), dtype=np.uint8)
        for i, c in enumerate(self.classes):
            pal[i] = c.color
        pal[IGNORE] = self.unknown_color
        return pal

    # ------------------------------------------------------------------ conversion
    def encode(self, raw: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
        """Convert a raw index mask in the scheme's source convention to the internal convention.

        Args:
            raw: Integer array of raw values.
            path: File the values came from (for the error message).

        Returns:
            uint8 array, 0..K-1 for classes and :data:`IGNORE` for unknown.

        Raises:
            InputError: If values outside the scheme occur (lists each value and its pixel count).
        """
        raw = np.asarray(raw)
        if not np.issubdtype(raw.dtype, np.integer):
            if np.all(np.isfinite(raw)) and np.all(raw == np.round(raw)):
                raw = raw.astype(np.int64)
            else:
                raise InputError(path, "mask has non-integer values")
        lo = int(raw.min()) if raw.size else 0
        hi = int(raw.max()) if raw.size else 0
        if lo < 0 or hi > 65535:
            lut_size = None
        else:
            lut_size = max(hi + 1, 256)
        if lut_size is None:
            bad_vals, counts = np.unique(raw[(raw < 0) | (raw > 65535)], return_counts=True)
            raise InputError(path, f"mask values outside class scheme {self.name!r}: " + _fmt_counts(bad_vals, counts))
        lut = np.full(lut_size, -1, dtype=np.int16)
        for i, c in enumerate(self.classes):
            if c.value < lut_size:
                lut[c.value] = i
        for v in self.unknown_values:
            if v < lut_size:
                lut[v] = IGNORE
        out = lut[raw]
        bad = out < 0
        if bad.any():
            bad_vals, counts = np.unique(raw[bad], return_counts=True)
            raise InputError(
                path,
                f"mask values outside class scheme {self.name!r} "
                f"(valid: {sorted([c.value for c in self.classes] + list(self.unknown_values))}): "
                + _fmt_counts(bad_vals, counts),
            )
        return out.astype(np.uint8)

    def decode_colors(self, rgb: np.ndarray, path: str | os.PathLike[str] | None = None) -> np.ndarray:
        """Convert a colour-coded label (3, H, W) or (H, W, 3) to the internal convention, exactly.

        Raises:
            InputError: If a colour is not in the scheme's palette (lists the colours and pixel counts).
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or (3 not in (rgb.shape[0], rgb.shape[-1]) and 4 not in (rgb.shape[0], rgb.shape[-1])):
            raise InputError(path, f"colour label must have 3 bands, got shape {rgb.shape}")
        if rgb.shape[0] in (3, 4) and rgb.shape[-1] not in (3, 4):
            rgb = np.moveaxis(rgb, 0, -1)
        rgb = rgb[..., :3].astype(np.int64)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        table = {((r << 16) | (g << 8) | b): i for i, (r, g, b) in enumerate(c.color for c in self.classes)}
        table[(self.unknown_color[0] << 16) | (self.unknown_color[1] << 8) | self.unknown_color[2]] = IGNORE
        uniq, inv = np.unique(key.ravel(), return_inverse=True)
        unknown = [u for u in uniq.tolist() if u not in table]
        if unknown:
            counts = np.bincount(inv, minlength=len(uniq))
            idx = {u: i for i, u in enumerate(uniq.tolist())}
            desc = ", ".join(f"({u >> 16},{(u >> 8) & 255},{u & 255})x{int(counts[idx[u]])}" for u in unknown[:10])
            more = f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            raise InputError(path, f"colours not in class scheme {self.name!r}: {desc}{more}")
        mapped = np.array([table[u] for u in uniq.tolist()], dtype=np.uint8)
        return mapped[inv].reshape(key.shape)

    def validate_internal(self, mask: np.ndarray, path: str | os.PathLike[str] | None = None) -> None:
        """Check that an internal mask only holds 0..K-1 and :data:`IGNORE`.

        Raises:
            InputError: Listing any other values and their counts.
        """
        mask = np.asarray(mask)
        bad = (mask >= self.num_classes) & (mask != IGNORE)
        if bad.any():
            vals, counts = np.unique(mask[bad], return_counts=True)
            raise InputError(
                path,
                f"mask values outside class scheme {self.name!r} (0..{self.num_classes - 1}, {IGNORE}): "
                + _fmt_counts(vals, counts),
            )

    def class_counts(self, mask: np.ndarray) -> np.ndarray:
        """Pixel count per class (length K) of an internal mask; unknown pixels are not counted."""
        counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=256)
        return counts[: self.num_classes].astype(np.int64)

    # ------------------------------------------------------------------ serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description (the format of user scheme files)."""
        return {
            "name": self.name,
            "classes": [{"name": c.name, "value": c.value, "color": list(c.color)} for c in self.classes],
            "unknown_values": list(self.unknown_values),
            "unknown_color": list(self.unknown_color),
            "unknown_name": self.unknown_name,
            "internal_ignore_value": IGNORE,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> ClassScheme:
        """Build a scheme from :meth:`to_dict` output or a user JSON file's content.

        Raises:
            InputError: If the description is malformed.
        """
        try:
            classes = tuple(ClassInfo(str(c["name"]), int(c["value"]), _color(c["color"])) for c in data["classes"])
            return cls(
                name=str(data.get("name", "custom")),
                classes=classes,
                unknown_values=tuple(int(v) for v in data.get("unknown_values", ())),
                unknown_color=_color(data.get("unknown_color", (0, 0, 0))),
                unknown_name=str(data.get("unknown_name", "unlabeled")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(path, f"invalid class scheme: {exc}") from None

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ClassScheme:
        """Load a user scheme from a JSON file."""
        try:
            data = json.loads(Path(path).read_text())
        except FileNotFoundError:
            raise InputError(path, "class scheme file not found") from None
        except (OSError, json.JSONDecodeError) as exc:
            raise InputError(path, f"cannot read class scheme JSON: {exc}") from None
        return cls.from_dict(data, path)

    def same_classes(self, other: ClassScheme) -> bool:
        """True when both schemes have the same class names in the same order."""
        return self.names == other.names


def _color(c: Any) -> Color:
    r, g, b = (int(x) for x in c)
    for x in (r, g, b):
        if not 0 <= x <= 255:
            raise ValueError(f"colour component {x} outside 0..255")
    return (r, g, b)


def _fmt_counts(values: np.ndarray, counts: np.ndarray) -> str:
    items = [f"{int(v)} ({int(n)} px)" for v, n in zip(values.tolist(), counts.tolist())]
    if len(items) > 12:
        items = [*items[:12], f"... {len(items) - 12} more"]
    return ", ".join(items)


def _scheme(
    name: str,
    entries: list[tuple[str, Color]],
    first_value: int,
    unknown_values: tuple[int, ...],
    unknown_color: Color = (0, 0, 0),
) -> ClassScheme:
    return ClassScheme(
        name=name,
        classes=tuple(ClassInfo(n, first_value + i, col) for i, (n, col) in enumerate(entries)),
        unknown_values=unknown_values,
        unknown_color=unknown_color,
    )


_GID15 = [
    ("industrial_land", (200, 0, 0)),
    ("urban_residential", (250, 0, 150)),
    ("rural_residential", (200, 150, 150)),
    ("traffic_land", (250, 150, 150)),
    ("paddy_field", (0, 200, 0)),
    ("irrigated_land", (150, 250, 0)),
    ("dry_cropland", (150, 200, 150)),
    ("garden_plot", (200, 0, 200)),
    ("arbor_woodland", (150, 0, 250)),
    ("shrub_land", (150, 150, 250)),
    ("natural_grassland", (250, 200, 0)),
    ("artificial_grassland", (200, 200, 0)),
    ("river", (0, 0, 200)),
    ("lake", (0, 150, 200)),
    ("pond", (0, 200, 250)),
]
_GID5 = [
    ("built_up", (255, 0, 0)),
    ("farmland", (0, 255, 0)),
    ("forest", (0, 255, 255)),
    ("meadow", (255, 255, 0)),
    ("water", (0, 0, 255)),
]
_CHESAPEAKE = [
    ("water", (0, 197, 255)),
    ("tree_canopy", (38, 115, 0)),
    ("low_vegetation", (163, 255, 115)),
    ("barren", (255, 170, 0)),
    ("impervious_other", (156, 156, 156)),
    ("impervious_road", (80, 80, 80)),
]
_LOVEDA = [
    ("background", (255, 255, 255)),
    ("building", (255, 0, 0)),
    ("road", (255, 255, 0)),
    ("water", (0, 0, 255)),
    ("barren", (159, 129, 183)),
    ("forest", (0, 255, 0)),
    ("agriculture", (255, 195, 128)),
]

BUILTIN_SCHEMES: dict[str, ClassScheme] = {
    "gid15": _scheme("gid15", _GID15, 0, (15,)),
    "gid15-official": _scheme("gid15-official", _GID15, 1, (0,)),
    "gid5": _scheme("gid5", _GID5, 0, (5,)),
    "chesapeake": _scheme("chesapeake", _CHESAPEAKE, 1, (15, 0)),
    "loveda": _scheme("loveda", _LOVEDA, 1, (0,)),
}


def get_scheme(name_or_path: str | os.PathLike[str]) -> ClassScheme:
    """Return a built-in scheme by name, or load a user scheme from a JSON file.

    Raises:
        InputError: If it is neither a built-in name nor a readable scheme file.
    """
    key = os.fspath(name_or_path)
    if key in BUILTIN_SCHEMES:
        return BUILTIN_SCHEMES[key]
    if key.endswith(".json") or os.path.exists(key):
        return ClassScheme.from_json(key)
    raise InputError(None, f"unknown class scheme {key!r}; built-in: {', '.join(BUILTIN_SCHEMES)}, or a JSON file")
