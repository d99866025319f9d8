"""STAC catalogs of tile sets and synthetic scenes (``rsaug stac``, ``--stac DIR`` of ``rsaug tile`` and
``rsaug synthesize``).

:func:`write_stac_collection` writes a self-contained STAC Collection (pystac, ``CatalogType.SELF_CONTAINED``,
relative links) describing an rsaug tile set, one Item per tile::

    DIR/
      collection.json
      <tile_id>/<tile_id>.json     # one Item per tile

Every Item has two assets, ``image`` (role ``data``) and ``mask`` (roles ``labels``, ``labels-raster``), whose
hrefs point at the tile GeoTIFFs *relative to the Item file*, so the catalog keeps working when DIR and the tile
set are copied or moved together (keep their relative position, e.g. ``DIR = TILES/stac``). DIR may be any
directory except the tile-set directory itself, a directory above it, or anything inside its ``images/`` or
``masks/`` folders; the tile set's own subfolder ``TILES/stac`` is the recommended place.

What an Item holds:

* geometry and bbox in WGS84 (EPSG:4326): the tile's pixel grid outline transformed from the tile CRS (edges
  densified); ``None`` for tile sets without georeferencing, as the STAC spec allows;
* projection extension: ``proj:code`` (``EPSG:xxxx``) when the CRS has an authority code, else ``proj:wkt2``;
  ``proj:transform`` and ``proj:shape`` (non-georeferenced tiles: ``proj:code`` null, ``proj:shape`` only);
* raster extension: ``raster:bands`` (data type, nodata) of both assets;
* file extension: ``file:checksum`` (multihash SHA2-256: ``"1220"`` + hex digest) and ``file:size``;
* label extension (``label:type`` ``raster``, ``label:properties`` null, ``label:classes`` = the internal class
  values 0..K-1, ``label:tasks`` ``segmentation``) and, on the mask asset, the classification extension
  (``classification:classes``: value, name, title, colour hint, and the unknown value 255 as ``nodata``);
* rsaug fields (prefix ``rsaug:``): ``tile_id``, ``split``, ``unknown_fraction``, ``class_pixels`` (pixel count
  per class name), ``window`` (offsets in the source scene), ``source_image``/``source_mask``, ``synthetic``;
  synthetic tiles add ``source_tile``, ``sample``, ``seed``, ``checkpoint_sha256``, ``vary_class``, ``align``,
  ``filter_removed`` (those the index has) and ``recipe`` (generator, plan, radiometric alignment and filtering
  from ``tileset.json``). The Collection holds ``rsaug:tileset`` (scheme, bands, dtype, CRS, split counts) and
  the same ``rsaug:recipe``.

``datetime``: STAC requires one; a tile set records no acquisition time, so every Item carries the tile set's
creation time: the ``created`` field of ``tileset.json`` if present, else the modification time of
``tileset.json`` (written last, so the moment the set was completed), in UTC. The Collection's temporal extent
spans the Item datetimes; its spatial extent is the union of the Item bboxes (the global placeholder
``[-180, -90, 180, 90]`` for non-georeferenced sets).

:func:`write_scene_stac` does the same for one whole synthetic scene (``rsaug synthesize --scene-mask``): one
Item with the scene GeoTIFF as ``image`` (a COG media type if it was written with ``--cog``), the source mask as
``mask`` (when it still exists; relative href) and the provenance from the scene's JSON and tags.

Writes are all-or-nothing as far as the file system allows: the catalog is built in a temporary sibling of DIR
and then renamed into place (a missing or empty DIR in one rename; a DIR holding a writer's lock file or an
earlier catalog replaced with ``overwrite`` entry by entry, ``collection.json`` last), so a failure leaves no
half-written catalog.

Reading a catalog (``odc-stac`` is not an rsaug dependency)::

    import pystac, odc.stac
    items = list(pystac.Collection.from_file("TILES/stac/collection.json").get_items(recursive=True))
    one = odc.stac.load(items[:1])   # image.1 .. image.N and mask, on the tile's own grid

This module is kept out of :mod:`rsaug.io`'s namespace so that command-line start-up does not import pystac.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import threading
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pystac
import rasterio
from pystac.extensions.classification import Classification, ClassificationExtension
from pystac.extensions.file import FileExtension
from pystac.extensions.label import LabelClasses, LabelExtension, LabelType
from pystac.extensions.projection import ProjectionExtension
from pystac.extensions.raster import DataType, NoDataStrings, RasterBand, RasterExtension
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.warp import transform_geom

from rsaug import __version__
from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.core.errors import InputError, option
from rsaug.core.files import TMP_PREFIX, holds_outputs, read_json
from rsaug.core.locks import LOCK_FILE
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import quiet
from rsaug.io.tileset import DESCRIPTION_FILE, TileSet, count_column

COLLECTION_FILE = "collection.json"
"""File name of the Collection at the root of a catalog directory."""

PREFIX = "rsaug:"
"""Prefix of the rsaug-specific fields of Items and Collections."""

GLOBAL_BBOX = [-180.0, -90.0, 180.0, 90.0]
"""Spatial extent of a Collection whose Items have no geometry (non-georeferenced tile sets)."""

_EDGE_PIXELS = 256  # one footprint point per this many pixels of an edge (edges bend when reprojected), ...
_EDGE_POINTS = 16  # ... at most this many per edge
_HASH_CHUNK = 1 << 20


def check_stac_output(
    out: str | os.PathLike[str], *, tiles: str | os.PathLike[str] | None = None, overwrite: bool = False
) -> Path:
    """Check where a STAC catalog may be written, before anything is written (nothing is created here).

    Args:
        out: The catalog directory.
        tiles: The tile-set directory the catalog describes (it need not exist yet): ``out`` must not be it, a
            directory above it, or inside its ``images/`` or ``masks/`` folders.
        overwrite: An existing catalog in ``out`` may be replaced.

    Returns:
        ``out`` as an absolute path.

    Raises:
        InputError: If ``out`` is a file, lies where it must not, or is a non-empty directory that is not an
            earlier catalog (or is one and ``overwrite`` is false).
    """
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise InputError(out, "output path exists and is not a directory")
    if tiles is not None:
        root = Path(os.path.abspath(tiles)).resolve()
        real = out.resolve()
        for sub in ("images", "masks"):
            folder = root / sub
            if real == folder or folder in real.parents:
                raise InputError(
                    out,
                    f"a STAC catalog must not be written inside the tile set's {sub}/ folder ({folder}); "
                    f"use e.g. {root / 'stac'}",
                )
        if real == root or real in root.parents:
            raise InputError(
                out,
                f"a STAC catalog must not be written into the tile-set directory {root} or a directory above it; "
                f"use a subfolder such as {root / 'stac'}",
            )
    if holds_outputs(out):
        if not (out / COLLECTION_FILE).is_file():
            raise InputError(out, f"output directory is not empty and not a STAC catalog (no {COLLECTION_FILE})")
        if not overwrite:
            raise InputError(out, f"a STAC catalog exists here; use {option('overwrite')} to replace it")
    return out


def write_stac_collection(
    tileset: TileSet | str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    collection_id: str | None = None,
    title: str | None = None,
    reporter: Reporter | None = None,
) -> Path:
    """Write a self-contained STAC Collection with one Item per tile of a tile set (see the module docstring).

    Args:
        tileset: The tile set (or its directory).
        out: Catalog directory (absent or empty, unless ``overwrite``; see :func:`check_stac_output`).
        overwrite: Replace an earlier catalog in ``out``.
        collection_id: Collection id (default: the tile-set directory name).
        title: Collection title (default: a one-line description of the tile set).
        reporter: Progress bar (``None``: silent).

    Returns:
        The path of ``collection.json``.

    Raises:
        InputError: Bad output directory, unreadable tile set or tile.
    """
    ts = tileset if isinstance(tileset, TileSet) else TileSet.open(tileset)
    out = check_stac_output(out, tiles=ts.root, overwrite=overwrite)
    when = _creation_time(ts.description, ts.root / DESCRIPTION_FILE)
    recipe = _recipe(ts.description)
    kind = "synthetic tile set" if ts.synthetic else "tile set"
    bar = reporter_or_silent(reporter).bar(total=len(ts.index), desc="stac", unit="item")
    items = []
    for _, row in ts.index.iterrows():
        items.append(_tile_item(ts, row, when, recipe))
        bar.update(1)
    bar.close()
    name = Path(os.path.abspath(ts.root)).name
    info = {
        "scheme": ts.scheme.name,
        "classes": ts.scheme.names,
        "tile_size": ts.description.get("tile_size"),
        "bands": ts.bands,
        "dtype": ts.dtype,
        "crs": ts.description.get("crs"),
        "georeferenced": ts.georeferenced,
        "synthetic": ts.synthetic,
        "split_counts": ts.description.get("split_counts"),
        "format_version": ts.description.get("format_version"),
        "rsaug_version": ts.description.get("rsaug_version"),
    }
    extra: dict[str, Any] = {f"{PREFIX}tileset": info}
    if recipe is not None:
        extra[f"{PREFIX}recipe"] = recipe
    collection = _collection(
        collection_id or name,
        title or f"rsaug {kind} {name} ({ts.scheme.name}, {len(items)} tiles)",
        f"{len(items)} {ts.bands}-band {ts.dtype} image tiles with {ts.scheme.name} masks of an rsaug {kind}; "
        f"classes: {', '.join(ts.scheme.names)}.",
        items,
        extra,
    )
    collection.summaries = pystac.Summaries({f"{PREFIX}split": sorted({str(s) for s in ts.index["split"]})})
    return _save(collection, out)


def write_scene_stac(
    scene: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    scheme: ClassScheme | None = None,
    overwrite: bool = False,
    collection_id: str | None = None,
) -> Path:
    """Write a STAC Collection with one Item for a whole synthetic scene (``synthesize_scene`` output).

    The Item's ``image`` asset is the scene GeoTIFF; its provenance (checkpoint SHA-256, seed, window, overlap,
    source mask) comes from the scene's ``<scene>.json`` and its ``RSAUG_*`` tags. The source mask becomes the
    ``mask`` asset (relative href) when it still exists; with ``scheme`` it gets the label and classification
    fields (raw scheme values or internal values, as the scene's ``mask_values`` says). ``datetime``: the
    ``created`` field of the JSON if present, else the modification time of the scene GeoTIFF (UTC).

    Args:
        scene: The synthetic scene GeoTIFF.
        out: Catalog directory (absent or empty, unless ``overwrite``).
        scheme: Class scheme of the generator (names the mask's classes).
        overwrite: Replace an earlier catalog in ``out``.
        collection_id: Collection id (default: the scene's file stem).

    Returns:
        The path of ``collection.json``.

    Raises:
        InputError: Missing or unreadable scene, bad output directory.
    """
    scene = Path(os.path.abspath(scene))
    if not scene.is_file():
        raise InputError(scene, "file not found")
    out = check_stac_output(out, overwrite=overwrite)
    cfg_path = scene.with_suffix(".json")
    cfg: dict[str, Any] = {}
    if cfg_path.is_file():
        try:
            cfg = dict(read_json(cfg_path))
        except (OSError, ValueError) as exc:
            raise InputError(cfg_path, f"cannot read the scene description: {exc}") from None
    grid = _grid(scene)
    tags = grid.pop("tags")
    when = _creation_time(cfg, scene)
    props: dict[str, Any] = {
        f"{PREFIX}synthetic": tags.get("RSAUG_SYNTHETIC", "").lower() == "true",
        f"{PREFIX}checkpoint_sha256": cfg.get("checkpoint_sha256") or tags.get("RSAUG_CHECKPOINT_SHA256"),
        f"{PREFIX}checkpoint": cfg.get("checkpoint") or None,
        f"{PREFIX}seed": _int_or_none(cfg.get("seed", tags.get("RSAUG_SEED"))),
        f"{PREFIX}window": _int_or_none(cfg.get("window", tags.get("RSAUG_WINDOW"))),
        f"{PREFIX}overlap": _int_or_none(cfg.get("overlap", tags.get("RSAUG_OVERLAP"))),
        f"{PREFIX}source_mask": cfg.get("mask") or tags.get("RSAUG_SOURCE_MASK"),
        f"{PREFIX}mask_values": cfg.get("mask_values"),
        f"{PREFIX}cog": bool(cfg.get("cog", False)),
    }
    props = {k: v for k, v in props.items() if v is not None}
    item = _item(scene.stem, grid, when, props)
    media = pystac.MediaType.COG if props[f"{PREFIX}cog"] else pystac.MediaType.GEOTIFF
    _add_asset(item, "image", scene, grid, ["data"], media, "synthetic scene")
    mask = Path(str(props.get(f"{PREFIX}source_mask") or ""))
    if mask.name and mask.is_file():
        mask_grid = _grid(mask)
        mask_grid.pop("tags")
        internal = cfg.get("mask_values") == "internal"
        asset = _add_asset(item, "mask", mask, mask_grid, ["labels", "labels-raster"], None, "source mask")
        if scheme is not None:
            _label(item, asset, scheme, internal=internal, description="the mask the scene was generated for")
    collection = _collection(
        collection_id or scene.stem,
        f"rsaug synthetic scene {scene.name}",
        f"A whole synthetic scene generated by rsaug for the mask {mask.name or '(unknown)'}.",
        [item],
        {f"{PREFIX}scene": {"config": cfg, "rsaug_version": __version__}},
    )
    return _save(collection, out)


# ---------------------------------------------------------------------------- items
def _tile_item(ts: TileSet, row: Any, when: datetime, recipe: dict[str, Any] | None) -> pystac.Item:
    """The Item of one tile (index row)."""
    image, mask = ts.image_path(row), ts.mask_path(row)
    grid = _grid(image)
    grid.pop("tags")
    props: dict[str, Any] = {
        f"{PREFIX}tile_id": str(row["tile_id"]),
        f"{PREFIX}split": str(row["split"]),
        f"{PREFIX}synthetic": bool(_plain(row.get("synthetic", False)) or ts.synthetic),
    }
    if "unknown_fraction" in row:
        props[f"{PREFIX}unknown_fraction"] = _plain(row["unknown_fraction"])
    props[f"{PREFIX}class_pixels"] = {
        n: _plain(row[count_column(n)]) for n in ts.scheme.names if count_column(n) in row
    }
    if all(k in row for k in ("col_off", "row_off", "width", "height")):
        props[f"{PREFIX}window"] = {k: _plain(row[k]) for k in ("col_off", "row_off", "width", "height")}
    for key in ("source_image", "source_mask"):
        if key in row and _plain(row[key]):
            props[f"{PREFIX}{key}"] = str(row[key])
    if props[f"{PREFIX}synthetic"]:
        for key in ("source_tile", "sample", "seed", "checkpoint_sha256", "vary_class", "align", "filter_removed"):
            value = _plain(row[key]) if key in row else None
            if value is not None and value != "":
                props[f"{PREFIX}{key}"] = value
        if recipe is not None:
            props[f"{PREFIX}recipe"] = recipe
    item = _item(str(row["tile_id"]), grid, when, props)
    _add_asset(item, "image", image, grid, ["data"], pystac.MediaType.GEOTIFF, "image tile")
    mask_grid = _grid(mask)
    mask_grid.pop("tags")
    asset = _add_asset(item, "mask", mask, mask_grid, ["labels", "labels-raster"], pystac.MediaType.GEOTIFF, "mask")
    desc = (
        "mask the synthetic image was generated for (copied from its source tile)"
        if props[f"{PREFIX}synthetic"]
        else "land-cover mask of the tile"
    )
    _label(item, asset, ts.scheme, internal=True, description=desc)
    return item


def _item(item_id: str, grid: dict[str, Any], when: datetime, props: dict[str, Any]) -> pystac.Item:
    """An Item with the footprint (WGS84) and projection fields of a raster grid."""
    geometry, bbox = _footprint(grid)
    item = pystac.Item(id=item_id, geometry=geometry, bbox=bbox, datetime=when, properties=dict(props))
    proj = ProjectionExtension.ext(item, add_if_missing=True)
    crs = grid["crs"]
    if crs is None:
        proj.apply(shape=[grid["height"], grid["width"]])
        item.properties["proj:code"] = None
    else:
        code, wkt2 = _crs_fields(crs)
        t = grid["transform"]
        proj.apply(
            code=code,
            wkt2=wkt2,
            shape=[grid["height"], grid["width"]],
            transform=[float(t.a), float(t.b), float(t.c), float(t.d), float(t.e), float(t.f)],
        )
        if code is None:
            item.properties["proj:code"] = None
    return item


def _add_asset(
    item: pystac.Item,
    key: str,
    path: Path,
    grid: dict[str, Any],
    roles: list[str],
    media_type: str | None,
    title: str,
) -> pystac.Asset:
    """Add a raster file as an asset (absolute href for now; made relative by :func:`_save`) with its file
    checksum and size and its raster bands."""
    asset = pystac.Asset(href=str(path.resolve()), media_type=media_type, roles=roles, title=title)
    item.add_asset(key, asset)
    digest, size = _sha256(path)
    fext = FileExtension.ext(asset, add_if_missing=True)
    fext.checksum = "1220" + digest
    fext.size = size
    bands = []
    for dtype, nodata in zip(grid["dtypes"], grid["nodatas"]):
        bands.append(RasterBand.create(data_type=_data_type(dtype), nodata=_nodata(nodata)))
    RasterExtension.ext(asset, add_if_missing=True).bands = bands
    return asset


def _label(item: pystac.Item, asset: pystac.Asset, scheme: ClassScheme, *, internal: bool, description: str) -> None:
    """Label extension on the Item, classification extension (class values, names, colours) on the mask."""
    values = list(range(scheme.num_classes)) if internal else [c.value for c in scheme.classes]
    unknown = [IGNORE] if internal else list(scheme.unknown_values)
    LabelExtension.ext(item, add_if_missing=True).apply(
        label_description=f"{description}; {scheme.name} classes (value: name): "
        + ", ".join(f"{v}: {c.name}" for v, c in zip(values, scheme.classes))
        + f"; {', '.join(map(str, unknown)) or 'no value'} = {scheme.unknown_name} (nodata)",
        label_type=LabelType.RASTER,
        label_properties=None,
        label_classes=[LabelClasses.create(classes=values, name=None)],
        label_tasks=["segmentation"],
    )
    item.properties["label:properties"] = None  # required (null for raster labels)
    classes = [
        Classification.create(value=v, name=_class_name(c.name), title=c.name, color_hint=_hex(c.color))
        for v, c in zip(values, scheme.classes)
    ]
    classes += [
        Classification.create(
            value=v,
            name=_class_name(scheme.unknown_name),
            title=scheme.unknown_name,
            description="unknown / no data",
            color_hint=_hex(scheme.unknown_color),
            nodata=True,
        )
        for v in unknown
    ]
    ClassificationExtension.ext(asset, add_if_missing=True).classes = classes


# ---------------------------------------------------------------------------- collection and saving
def _collection(
    collection_id: str, title: str, description: str, items: list[pystac.Item], extra: dict[str, Any]
) -> pystac.Collection:
    """A Collection of ``items`` with their spatial and temporal extent."""
    boxes = [it.bbox for it in items if it.bbox is not None]
    if boxes:
        arr = np.asarray(boxes, dtype=np.float64)
        spatial = [[float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]]
    else:
        spatial = [list(GLOBAL_BBOX)]
    times = [it.datetime for it in items if it.datetime is not None]
    temporal: list[list[datetime | None]] = [[min(times), max(times)]] if times else [[None, None]]
    collection = pystac.Collection(
        id=_safe_id(collection_id),
        description=description,
        extent=pystac.Extent(pystac.SpatialExtent(spatial), pystac.TemporalExtent(temporal)),
        title=title,
        license="other",
        extra_fields=extra,
        catalog_type=pystac.CatalogType.SELF_CONTAINED,
    )
    collection.add_items(items)
    return collection


def _save(collection: pystac.Collection, out: Path) -> Path:
    """Save ``collection`` as a self-contained catalog in ``out`` (built in a temporary sibling, then renamed).

    Asset hrefs are made relative to the final Item files; the temporary sibling has the same depth, so they
    hold there too.
    """
    collection.normalize_hrefs(str(out))
    collection.make_all_asset_hrefs_relative()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-{out.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED, dest_href=str(tmp))
        _install(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out / COLLECTION_FILE


def _install(tmp: Path, out: Path) -> None:
    """Move the catalog built in ``tmp`` to ``out``: one rename if ``out`` is missing or empty, else entry by
    entry (the earlier catalog moved aside first, the writer lock file kept, ``collection.json`` last)."""
    if not out.exists() or (out.is_dir() and not any(out.iterdir())):
        os.replace(tmp, out)
        return
    old = out.with_name(f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-old-{out.name}")
    shutil.rmtree(old, ignore_errors=True)
    old.mkdir()
    try:
        for child in list(out.iterdir()):
            if child.name != LOCK_FILE:
                os.replace(child, old / child.name)
        for child in sorted(tmp.iterdir(), key=lambda p: p.name == COLLECTION_FILE):
            os.replace(child, out / child.name)
    finally:
        shutil.rmtree(old, ignore_errors=True)


# ---------------------------------------------------------------------------- helpers
def _grid(path: Path) -> dict[str, Any]:
    """CRS, transform, size, band data types, nodata values and dataset tags of a raster."""
    try:
        with quiet(NotGeoreferencedWarning), rasterio.open(path) as src:
            return {
                "crs": src.crs,
                "transform": src.transform,
                "width": src.width,
                "height": src.height,
                "dtypes": list(src.dtypes),
                "nodatas": list(src.nodatavals),
                "tags": src.tags(),
            }
    except RasterioIOError as exc:
        if not Path(path).exists():
            raise InputError(path, "file not found") from None
        raise InputError(path, f"cannot read raster: {exc}") from None


def _footprint(grid: dict[str, Any]) -> tuple[dict[str, Any] | None, list[float] | None]:
    """GeoJSON polygon (counter-clockwise) and bbox in WGS84 of a raster grid's outline; ``(None, None)`` without
    a CRS."""
    crs = grid["crs"]
    if crs is None:
        return None, None
    t, w, h = grid["transform"], grid["width"], grid["height"]
    steps = np.linspace(0.0, 1.0, min(_EDGE_POINTS, max(1, max(w, h) // _EDGE_PIXELS)), endpoint=False)
    pixels = (
        [(s * w, 0.0) for s in steps]
        + [(w, s * h) for s in steps]
        + [(w - s * w, h) for s in steps]
        + [(0.0, h - s * h) for s in steps]
    )
    ring = [[float(v) for v in t * p] for p in pixels]
    ring.append(ring[0])
    geom = transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})
    geom = {"type": geom["type"], "coordinates": _lists(geom["coordinates"])}
    if geom["type"] == "Polygon":
        outer = geom["coordinates"][0]
        if _signed_area(outer) < 0:
            geom["coordinates"] = [outer[::-1], *geom["coordinates"][1:]]
    coords = np.asarray(list(_points(geom["coordinates"])), dtype=np.float64)
    bbox = [float(coords[:, 0].min()), float(coords[:, 1].min()), float(coords[:, 0].max()), float(coords[:, 1].max())]
    return geom, bbox


def _lists(coords: Any) -> Any:
    """Nested tuples of coordinates as nested lists (JSON-like)."""
    if isinstance(coords, (list, tuple)) and coords and isinstance(coords[0], (int, float)):
        return [float(c) for c in coords]
    return [_lists(c) for c in coords]


def _points(coords: Any) -> Iterable[list[float]]:
    """Every position of nested GeoJSON coordinates."""
    if coords and isinstance(coords[0], (int, float)):
        yield coords
        return
    for c in coords:
        yield from _points(c)


def _signed_area(ring: list[list[float]]) -> float:
    """Twice the signed area of a ring (positive = counter-clockwise)."""
    x = np.asarray([p[0] for p in ring])
    y = np.asarray([p[1] for p in ring])
    return float(np.sum(x[:-1] * y[1:] - x[1:] * y[:-1]))


def _crs_fields(crs: Any) -> tuple[str | None, str | None]:
    """``(proj:code, None)`` for a CRS with an exact authority code, else ``(None, proj:wkt2)``."""
    auth = None
    try:
        auth = crs.to_authority(confidence_threshold=100)
    except Exception:  # pyproj / rasterio raise several types for odd CRSs
        auth = None
    if auth:
        return f"{auth[0]}:{auth[1]}", None
    return None, crs.to_wkt(version="WKT2_2019")


def _creation_time(description: dict[str, Any], fallback: Path) -> datetime:
    """``created`` (ISO 8601) of a description, else the modification time of ``fallback``; UTC."""
    created = description.get("created")
    if isinstance(created, str):
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    return datetime.fromtimestamp(fallback.stat().st_mtime, tz=timezone.utc)


def _recipe(desc: dict[str, Any]) -> dict[str, Any] | None:
    """The compact provenance of a synthetic (or filtered) tile set from its description, or ``None``."""
    if not desc.get("synthetic"):
        return None
    syn = desc.get("synthesis") or {}
    plan = syn.get("plan") or {}
    recipe: dict[str, Any] = {
        "generator": {
            "model": syn.get("model"),
            "checkpoint": syn.get("checkpoint"),
            "checkpoint_sha256": syn.get("checkpoint_sha256"),
        },
        "plan": {k: plan.get(k) for k in ("mode", "factor", "samples_per_mask", "split", "seed", "vary_class")},
        "source_tileset": desc.get("source_tileset"),
    }
    align = desc.get("radiometric_alignment")
    if align:
        recipe["radiometric_alignment"] = {k: align.get(k) for k in ("method", "per_class", "source") if k in align}
    filt = desc.get("filtering")
    if filt:
        recipe["filtering"] = {
            k: filt.get(k) for k in ("segmenter", "segmenter_sha256", "segmenter_preset", "margin", "share_removed")
        }
    if desc.get("derived_from"):
        recipe["derived_from"] = desc["derived_from"]
    return recipe


def _sha256(path: Path) -> tuple[str, int]:
    """SHA-256 hex digest and size of a file."""
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _data_type(dtype: str) -> DataType | None:
    try:
        return DataType(dtype)
    except ValueError:
        return None


def _nodata(value: float | None) -> float | NoDataStrings | None:
    """A band's nodata value as JSON (integral values as int; NaN and infinities as the raster extension's strings)."""
    if value is None:
        return None
    if not np.isfinite(value):
        return NoDataStrings.NAN if value != value else (NoDataStrings.INF if value > 0 else NoDataStrings.NINF)
    return int(value) if float(value).is_integer() else float(value)


def _plain(value: Any) -> Any:
    """A pandas / NumPy value as a JSON value (NaN -> ``None``)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and value != value:
        return None
    return value


def _int_or_none(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _hex(color: tuple[int, int, int]) -> str:
    return "".join(f"{int(c):02X}" for c in color)


def _class_name(name: str) -> str:
    """A class name as the classification extension allows (letters, digits, ``-`` and ``_``)."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name) or "class"


def _safe_id(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z._-]+", "-", text).strip("-") or "rsaug"
