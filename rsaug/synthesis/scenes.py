"""Whole-scene synthesis: one large mask raster -> one seamless synthetic GeoTIFF on the mask's grid.

:func:`synthesize_scene` covers the mask with overlapping windows (:func:`window_starts`), generates every
window with the same class noise, and blends them with cosine feathering weights (:func:`feather_weights`).
With ``cog=True`` the scene is written as a cloud-optimized GeoTIFF (:func:`write_cog`, rio-cogeo).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from rsaug.core.errors import InputError, option
from rsaug.core.files import TMP_PREFIX, atomic_path, write_json
from rsaug.core.progress import Reporter, reporter_or_silent
from rsaug.core.runtime import quiet
from rsaug.gan.inference import Generator
from rsaug.synthesis.tilesets import TAG_PREFIX, sample_noise


@dataclass
class SceneConfig:
    """Options of whole-scene synthesis (saved as ``<output>.json`` next to the GeoTIFF).

    Attributes:
        mask: Mask raster path.
        checkpoint: Checkpoint path.
        checkpoint_sha256: SHA-256 of the checkpoint.
        window: Generator window size in pixels.
        overlap: Overlap of neighbouring windows in pixels (blended with cosine feathering weights).
        seed: Seed of the class noise (one draw, shared by every window).
        mask_values: ``scheme`` (raw values of the checkpoint's class scheme, like ``rsaug tile`` input) or
            ``internal`` (0..K-1, 255 = unknown, like rsaug's mask tiles).
        batch_size: Windows per forward pass.
        cog: The output is a cloud-optimized GeoTIFF (:func:`write_cog`).
    """

    mask: str
    checkpoint: str
    checkpoint_sha256: str
    window: int = 256
    overlap: int = 64
    seed: int = 0
    mask_values: str = "scheme"
    batch_size: int = 4
    cog: bool = False


COG_BLOCK_LARGE = 2048
"""Scenes whose shorter side has at least this many pixels get 512-px COG blocks; smaller ones 256-px blocks."""


def cog_blocksize(width: int, height: int) -> int:
    """Internal tile size of a COG scene: 512 px for large scenes (:data:`COG_BLOCK_LARGE`), else 256 px."""
    return 512 if min(width, height) >= COG_BLOCK_LARGE else 256


def write_cog(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
    """Copy a GeoTIFF to a cloud-optimized GeoTIFF with rio-cogeo: deflate with the predictor, internal tiles of
    :func:`cog_blocksize`, overviews (average resampling) down to about one block, the dataset tags kept.

    Pixels are copied exactly (nearest resampling on the same grid; a source with an alpha band or a mask would
    be masked, so write ``src`` without them). ``dst`` is written in place: pass a temporary name
    (:func:`rsaug.core.files.atomic_path`).
    """
    from rio_cogeo.cogeo import cog_translate  # heavy (morecantile, pydantic); only for --cog
    from rio_cogeo.profiles import cog_profiles

    with quiet(NotGeoreferencedWarning), rasterio.open(src) as ds:
        block = cog_blocksize(ds.width, ds.height)
        integer = np.issubdtype(np.dtype(ds.dtypes[0]), np.integer)
    profile = dict(cog_profiles.get("deflate"))
    profile.update(blockxsize=block, blockysize=block, predictor=2 if integer else 3, BIGTIFF="IF_SAFER")
    cog_translate(
        os.fspath(src),
        os.fspath(dst),
        profile,
        overview_resampling="average",
        in_memory=False,
        quiet=True,
        use_cog_driver=False,
    )


def window_starts(n: int, window: int, overlap: int) -> list[int]:
    """Start offsets of windows of ``window`` px with at least ``overlap`` px overlap covering ``0..n``.

    The last window is aligned to the end; a dimension shorter than the window gets one window.
    """
    if n <= window:
        return [0]
    step = window - overlap
    starts = list(range(0, n - window, step))
    starts.append(n - window)
    return sorted(set(starts))


def feather_weights(length: int, before: int, after: int) -> np.ndarray:
    """1-D blending weights of a window: a cosine ramp up over the ``before`` px shared with the previous
    window, 1 in the middle, a cosine ramp down over the ``after`` px shared with the next window.

    The ramps of two neighbours over the same ``L`` shared pixels are ``sin^2`` and ``cos^2`` of the same
    angle, so they sum to exactly 1: the blend is a partition of unity and seams are invisible.
    """
    w = np.ones(length, dtype=np.float64)
    if before > 0:
        i = np.arange(before)
        w[:before] = np.sin(0.5 * np.pi * (i + 0.5) / before) ** 2
    if after > 0:
        i = np.arange(after)
        w[length - after :] *= np.cos(0.5 * np.pi * (i + 0.5) / after) ** 2
    return w


def _axis_weights(starts: list[int], size: int, n: int) -> list[np.ndarray]:
    """Feathering weights of every window along one axis (``starts`` from :func:`window_starts`)."""
    out = []
    for j, s in enumerate(starts):
        length = min(size, n)
        before = (starts[j - 1] + length - s) if j > 0 else 0
        after = (s + length - starts[j + 1]) if j + 1 < len(starts) else 0
        out.append(feather_weights(length, max(before, 0), max(after, 0)))
    return out


def synthesize_scene(
    mask: str | os.PathLike[str],
    generator: Generator,
    out: str | os.PathLike[str],
    *,
    checkpoint: str | os.PathLike[str] | None = None,
    window: int | None = None,
    overlap: int | None = None,
    seed: int = 0,
    mask_values: str = "scheme",
    batch_size: int = 4,
    overwrite: bool = False,
    cog: bool = False,
    reporter: Reporter | None = None,
) -> Path:
    """Generate one seamless synthetic scene for a large mask raster, on the mask's grid.

    The mask is covered by overlapping windows (``window`` px, ``overlap`` px shared); every window is generated
    with the *same* noise (one draw per class, shared by all windows, so a class looks alike everywhere), and the
    windows are blended with cosine feathering weights (:func:`feather_weights`). Rows are processed top to
    bottom and written as soon as no later window touches them (windowed writes; memory grows with the scene
    width, not its height). The output GeoTIFF has the mask's CRS, transform, width and height, the
    generator's band count and source dtype, and provenance tags.

    Args:
        mask: Mask raster (GeoTIFF or any raster rasterio reads).
        generator: A loaded generator.
        out: Output GeoTIFF path (written atomically).
        checkpoint: Checkpoint path (provenance, messages).
        window: Window size (default: the generator's training crop size if known, else 256).
        overlap: Overlap in px (default: a quarter of the window).
        seed: Noise seed.
        mask_values: ``scheme`` (raw values of the checkpoint's scheme) or ``internal``.
        batch_size: Windows per forward pass.
        overwrite: Replace an existing output file.
        cog: Write a cloud-optimized GeoTIFF (:func:`write_cog`: deflate, internal tiles, overviews) instead of
            the plain tiled GeoTIFF. Needs a georeferenced mask (a CRS). In both, a 4th band is not alpha.
        reporter: Progress bar (``None``: silent).

    Returns:
        The output path.

    Raises:
        InputError: Missing/unreadable mask, values outside the scheme, bad window/overlap, existing output,
            ``cog`` with a mask without CRS (all checked before anything is generated or written).
    """
    mask = Path(mask)
    out = Path(out)
    scheme = generator.scheme
    if mask_values not in ("scheme", "internal"):
        raise InputError(None, f"{option('mask_values')} must be 'scheme' or 'internal', got {mask_values!r}")
    if out.exists() and not overwrite:
        raise InputError(out, f"output file exists; use {option('overwrite')} to replace it")
    if out.suffix.lower() not in (".tif", ".tiff"):
        raise InputError(out, "whole-scene output must be a GeoTIFF (.tif)")
    if window is None:
        cfg = getattr(generator, "config", None)
        window = int(getattr(cfg, "crop_size", 0) or getattr(cfg, "size", 0) or 256)
    if overlap is None:
        overlap = window // 4
    if window < 16 or not 0 <= overlap < window:
        raise InputError(None, f"need window >= 16 and 0 <= overlap < window (got window {window}, overlap {overlap})")
    if batch_size < 1:
        raise InputError(None, f"{option('batch_size')} must be at least 1, got {batch_size}")
    try:
        with quiet(NotGeoreferencedWarning):
            src = rasterio.open(mask)
    except RasterioIOError as exc:
        raise InputError(mask, "file not found" if not mask.exists() else f"cannot read raster: {exc}") from None

    with src:
        if cog and src.crs is None:
            raise InputError(mask, f"{option('cog')} needs a georeferenced mask; this one has no CRS")
        H, W = src.height, src.width
        ys = window_starts(H, window, overlap)
        xs = window_starts(W, window, overlap)
        wy = _axis_weights(ys, window, H)
        wx = _axis_weights(xs, window, W)
        wh, ww = min(window, H), min(window, W)

        def read_mask(r0: int, r1: int) -> np.ndarray:
            raw = src.read(1, window=Window(0, r0, W, r1 - r0))
            if mask_values == "scheme":
                return scheme.encode(raw, mask)
            scheme.validate_internal(raw, mask)
            return raw.astype(np.uint8)

        # validate the whole mask before creating any output (strip by strip)
        for r0 in range(0, H, 1024):
            read_mask(r0, min(H, r0 + 1024))

        noise = sample_noise(generator, seed)
        sha = str(generator.checkpoint_sha256)
        scfg = SceneConfig(
            mask=str(mask.resolve()),
            checkpoint=str(checkpoint or ""),
            checkpoint_sha256=sha,
            window=window,
            overlap=overlap,
            seed=seed,
            mask_values=mask_values,
            batch_size=batch_size,
            cog=cog,
        )
        profile = {
            "driver": "GTiff",
            "width": W,
            "height": H,
            "count": int(generator.out_bands),
            "dtype": str(getattr(generator, "dtype", "uint8")),
            "compress": "deflate",
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "BIGTIFF": "IF_SAFER",
        }
        if src.crs is not None:
            profile["crs"] = src.crs
            profile["transform"] = src.transform
        elif not src.transform.is_identity:
            profile["transform"] = src.transform
        tags = {
            f"{TAG_PREFIX}SYNTHETIC": "true",
            f"{TAG_PREFIX}CHECKPOINT_SHA256": sha,
            f"{TAG_PREFIX}SEED": str(seed),
            f"{TAG_PREFIX}SOURCE_MASK": str(mask.resolve()),
            f"{TAG_PREFIX}WINDOW": str(window),
            f"{TAG_PREFIX}OVERLAP": str(overlap),
        }
        C = int(generator.out_bands)
        bar = reporter_or_silent(reporter).bar(total=len(ys) * len(xs), desc="scene", unit="window")
        if C > 3:  # GDAL marks the 4th band of a 4-band uint8 file as alpha: a NIR band would mask pixels
            profile["alpha"] = "UNSPECIFIED"
        with bar, atomic_path(out, check_space=True) as tmp, _cog_scratch(out, cog) as scratch:
            target = tmp if scratch is None else scratch  # with cog: blend into the scratch file, then copy as a COG
            with quiet(NotGeoreferencedWarning), rasterio.open(target, "w", **profile) as dst, torch.inference_mode():
                acc0 = 0  # first scene row held in the accumulator
                acc = np.zeros((C, 0, W), np.float32)
                wsum = np.zeros((0, W), np.float32)
                for j, y0 in enumerate(ys):
                    y1 = y0 + wh
                    grow = y1 - (acc0 + acc.shape[1])
                    if grow > 0:
                        acc = np.concatenate([acc, np.zeros((C, grow, W), np.float32)], axis=1)
                        wsum = np.concatenate([wsum, np.zeros((grow, W), np.float32)], axis=0)
                    strip = read_mask(y0, y1)
                    for b0 in range(0, len(xs), batch_size):
                        bx = xs[b0 : b0 + batch_size]
                        labels = torch.from_numpy(np.stack([strip[:, x : x + ww] for x in bx]).astype(np.int64))
                        fake = generator.generate(labels, noise=_repeat_noise(noise, len(bx)))
                        img = fake.detach().float().cpu().numpy()
                        for k, x in enumerate(bx):
                            wgt = np.outer(wy[j], wx[b0 + k]).astype(np.float32)
                            acc[:, y0 - acc0 : y1 - acc0, x : x + ww] += img[k] * wgt
                            wsum[y0 - acc0 : y1 - acc0, x : x + ww] += wgt
                        bar.update(len(bx))
                    final = ys[j + 1] if j + 1 < len(ys) else H  # rows no later window touches
                    n_final = final - acc0
                    if n_final > 0:
                        blended = acc[:, :n_final] / np.maximum(wsum[:n_final], 1e-12)
                        arr = generator.to_raster(torch.from_numpy(blended[None].astype(np.float32)))[0]
                        dst.write(np.asarray(arr), window=Window(0, acc0, W, n_final))
                        acc = acc[:, n_final:]
                        wsum = wsum[n_final:]
                        acc0 = final
                dst.update_tags(**tags)
            if scratch is not None:
                write_cog(scratch, tmp)
    write_json(out.with_suffix(".json"), asdict(scfg))
    return out


@contextlib.contextmanager
def _cog_scratch(out: Path, cog: bool) -> Iterator[Path | None]:
    """The scratch GeoTIFF next to ``out`` that a COG scene is blended into before :func:`write_cog` copies it
    (``None`` without ``cog``); deleted when the block ends, whatever happens."""
    if not cog:
        yield None
        return
    scratch = out.with_name(f"{TMP_PREFIX}{os.getpid()}-{threading.get_ident()}-src-{out.name}")
    try:
        yield scratch
    finally:
        scratch.unlink(missing_ok=True)
        Path(f"{scratch}.aux.xml").unlink(missing_ok=True)


def _repeat_noise(noise: torch.Tensor | None, n: int) -> torch.Tensor | None:
    """One noise (batch 1 or B) repeated for a batch of ``n`` windows."""
    if noise is None:
        return None
    return (
        noise.expand(n, *noise.shape[1:]).contiguous()
        if noise.shape[0] == 1
        else noise.repeat(n, *([1] * (noise.ndim - 1)))
    )
