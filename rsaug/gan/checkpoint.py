"""The checkpoint file of a training run: its format, how it is written, found and read.

Loading never executes code from the file. A checkpoint is a ``torch.save`` zip of plain Python containers,
numbers, strings and tensors only, read with ``torch.load(weights_only=True, mmap=True)``: PyTorch's restricted
unpickler refuses every other Python object (a file planting ``os.system`` in a ``__reduce__`` gets a one-line
error and runs nothing), and tensors are memory-mapped rather than read into RAM. The only extra types admitted
are NumPy's array and dtype constructors (:data:`SAFE_NUMPY_GLOBALS`), which version-1 files need for the NumPy
RNG state; version 2 stores that state as plain integers. Files that still do not load safely (written by other
tools, or by hand) can be converted by a user who trusts them: :func:`convert_checkpoint` /
``rsaug convert-checkpoint --trust OLD NEW``.

A checkpoint is a ``torch.save`` dictionary tagged ``format = "rsaug-checkpoint"`` (:data:`CHECKPOINT_FORMAT`,
version :data:`CHECKPOINT_VERSION`) holding the step, the three configs, the class scheme, the normalisation,
the tile set's description, every network's and optimiser's state, the scheduler and RNG states and the log
columns (:func:`checkpoint_state` lists the keys). A run keeps ``RUN/checkpoints/step_XXXXXX.ckpt`` (the newest
few) and ``RUN/checkpoints/last.ckpt`` (a hard link to, or copy of, the newest) (:func:`save_checkpoint`).
:func:`load_checkpoint` reads one back, :func:`find_checkpoint` finds ``last.ckpt`` in a run directory.

A *generator file* (``kind = "generator"``, :func:`export_generator` / ``rsaug export-generator``) is the same
format cut down to what generation needs: the EMA generator weights (float16 by default), the configs, the
class scheme, the normalisation, the tile set's description and a ``data_card`` (plain values, also written as
``DST.json``) that says where the weights came from, what they were trained on and how they scored.
:func:`rsaug.gan.inference.load_generator` reads both kinds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rsaug import __version__
from rsaug.core.classes import ClassScheme
from rsaug.core.errors import InputError, option
from rsaug.core.files import atomic_path, json_roundtrip, strict_json, write_json
from rsaug.gan.config import LossConfig, ModelConfig, TrainConfig
from rsaug.gan.networks.generator import build_generator
from rsaug.gan.training_state import plain_rng_state
from rsaug.io.model_files import SAFE_NUMPY_GLOBALS, read_model_file
from rsaug.io.normalization import Normalization
from rsaug.io.tileset import TileSet

CHECKPOINT_FORMAT = "rsaug-checkpoint"
CHECKPOINT_VERSION = 2
"""2: RNG states as plain values (loads with ``weights_only=True`` and no extra globals); 1: NumPy RNG state as an
array (still loads, through :data:`SAFE_NUMPY_GLOBALS`)."""

GENERATOR_KIND = "generator"
"""``kind`` of a generator file written by :func:`export_generator` (training checkpoints have no ``kind``)."""

GENERATOR_KEYS = (
    "format",
    "version",
    "kind",
    "step",
    "model_config",
    "scheme",
    "normalization",
    "tileset",
    "train_config",
    "G_ema",
    "data_card",
)
"""The keys of a generator file, in file order."""

CARD_FORMAT = "rsaug-generator-card"
CARD_VERSION = 1


def file_sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes (the provenance of a checkpoint; also :func:`rsaug.gan.inference.file_sha256`)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _state_dict(obj: Any) -> dict[str, Any] | None:
    return None if obj is None else obj.state_dict()


def checkpoint_state(
    *,
    step: int,
    total_steps: int,
    train_config: TrainConfig,
    model_config: ModelConfig,
    loss_config: LossConfig,
    scheme: ClassScheme,
    normalization: Normalization,
    tiles: TileSet,
    G: nn.Module,
    G_ema: nn.Module,
    D: nn.Module | None,
    C: nn.Module | None,
    opt_G: torch.optim.Optimizer,
    opt_D: torch.optim.Optimizer | None,
    opt_C: torch.optim.Optimizer | None,
    schedulers: dict[str, Any],
    rng: dict[str, Any],
    log_columns: list[str],
    grad_scaler: Any = None,
    FD: nn.Module | None = None,
    opt_FD: torch.optim.Optimizer | None = None,
) -> dict[str, Any]:
    """The checkpoint dictionary of a training run at ``step`` (the file format; keys in file order).

    Args:
        step: Completed steps.
        total_steps: Steps of the whole run.
        train_config: Training options.
        model_config: Architecture.
        loss_config: Loss weights.
        scheme: Class scheme of the masks.
        normalization: Map between raster values and ``[-1, 1]``.
        tiles: The training tile set (its description and resolved path are stored).
        G: Generator.
        G_ema: Exponential moving average of the generator.
        D: Discriminator (``None`` without one).
        C: Conductor (``None`` without one).
        opt_G: Generator optimiser.
        opt_D: Discriminator optimiser (``None`` without a discriminator).
        opt_C: Conductor optimiser (``None`` unless the conductor is trained).
        schedulers: Learning-rate schedulers by network name (``G``, ``D``, ``C``, ``FD``).
        rng: RNG states (:func:`rsaug.gan.training_state.rng_state`).
        log_columns: Columns of the run's ``log.csv``.
        grad_scaler: Mixed-precision gradient scaler (``None`` in 32-bit training).
        FD: Pretrained-feature discriminator (``None`` without one): its state dict holds the trainable heads
            and the fixed channel-mixing buffers, never the frozen VGG weights.
        opt_FD: Its optimiser (``None`` without one).

    Returns:
        The dictionary :func:`save_checkpoint` writes.
    """
    return {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "rsaug_version": __version__,
        "step": step,
        "total_steps": total_steps,
        "train_config": train_config.to_dict(),
        "model_config": model_config.to_dict(),
        "loss_config": loss_config.to_dict(),
        "scheme": scheme.to_dict(),
        "normalization": normalization.to_dict(),
        "tileset": tiles.description,
        "tileset_path": str(tiles.root.resolve()),
        "G": G.state_dict(),
        "G_ema": G_ema.state_dict(),
        "D": _state_dict(D),
        "C": _state_dict(C),
        "FD": _state_dict(FD),
        "opt_G": opt_G.state_dict(),
        "opt_D": _state_dict(opt_D),
        "opt_C": _state_dict(opt_C),
        "opt_FD": _state_dict(opt_FD),
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "rng": plain_rng_state(rng),
        "log_columns": log_columns,
        "grad_scaler": _state_dict(grad_scaler),
    }


def save_checkpoint(state: dict[str, Any], ckpt_dir: Path, step: int, keep: int) -> Path:
    """Write ``state`` as ``ckpt_dir/step_XXXXXX.ckpt``, point ``last.ckpt`` at it and prune old step files.

    Both files are written atomically; ``last.ckpt`` is a hard link to the step file (a copy where links are
    not supported).

    Args:
        state: A checkpoint dictionary (:func:`checkpoint_state`).
        ckpt_dir: The run's ``checkpoints`` directory.
        step: The step in the file name.
        keep: Keep the newest this many ``step_*.ckpt`` files (0 = keep all).

    Returns:
        The path of ``last.ckpt``.
    """
    last = ckpt_dir / "last.ckpt"
    step_path = ckpt_dir / f"step_{step:06d}.ckpt"
    with atomic_path(step_path) as tmp:
        torch.save(state, tmp)
    with atomic_path(last) as tmp:
        try:
            os.link(step_path, tmp)
        except OSError:
            shutil.copyfile(step_path, tmp)
    if keep > 0:
        old = sorted(ckpt_dir.glob("step_*.ckpt"), key=lambda p: int(p.stem.split("_")[1]))[:-keep]
        for p in old:
            p.unlink()
    return last


def find_checkpoint(run: str | os.PathLike[str]) -> Path:
    """``RUN/checkpoints/last.ckpt`` of a run directory (or ``run`` itself if it is a file).

    Raises:
        InputError: If there is none.
    """
    p = Path(run)
    if p.is_file():
        return p
    last = p / "checkpoints" / "last.ckpt"
    if not last.is_file():
        raise InputError(p, "no checkpoint to resume from (checkpoints/last.ckpt missing)")
    return last


def _trust_hint(p: Path) -> str:
    return f"if you trust this file, convert it with `rsaug convert-checkpoint --trust {p} NEW.ckpt`"


def _read_safely(p: Path, map_location: Any, what: str) -> Any:
    """:func:`rsaug.io.model_files.read_model_file` with the hint to ``rsaug convert-checkpoint --trust``."""
    return read_model_file(p, what, map_location, trust_hint=_trust_hint(p))


def load_checkpoint(path: str | os.PathLike[str], map_location: Any = "cpu") -> dict[str, Any]:
    """Load an rsaug checkpoint dictionary without executing anything from the file.

    The file is read with ``torch.load(weights_only=True, mmap=True)`` (tensors memory-mapped, only plain types,
    tensors and :data:`SAFE_NUMPY_GLOBALS` admitted), so a hostile file can neither run code nor make rsaug read
    more than the file holds into memory.

    Raises:
        InputError: If the file is missing, unreadable, holds objects that could run code (the message names
            them and the opt-in conversion), or is not an rsaug checkpoint.
    """
    p = Path(path)
    ckpt = _read_safely(p, map_location, "checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(p, "not an rsaug checkpoint")
    version = ckpt.get("version", 1)  # generator-only files written by hand may omit it
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise InputError(
            p, f"checkpoint format version {version!r} is newer than this rsaug reads ({CHECKPOINT_VERSION})"
        )
    return ckpt


def load_state_dict_file(path: str | os.PathLike[str], key: str | None = None) -> Any:
    """A state dict from a file, read as safely as :func:`load_checkpoint`: an rsaug checkpoint's entry ``key``,
    or, for any other file, its whole content (a plain ``torch.save`` of a state dict).

    Raises:
        InputError: If the file is missing, unreadable or holds objects that could run code.
    """
    p = Path(path)
    obj = _read_safely(p, "cpu", "file")
    if key is not None and isinstance(obj, dict) and obj.get("format") == CHECKPOINT_FORMAT:
        return obj.get(key)
    return obj


def convert_checkpoint(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, trust: bool) -> Path:
    """Rewrite a checkpoint that does not load safely (an older or foreign-written rsaug checkpoint) in the
    current format, for a file the user trusts.

    This is the one place rsaug unpickles a file without restrictions, so it refuses to run unless ``trust`` is
    given explicitly. The result is checked to load through :func:`load_checkpoint`.

    Args:
        src: The trusted checkpoint.
        dst: Where to write the converted checkpoint (must not exist).
        trust: The user vouches for ``src`` (``--trust``).

    Returns:
        ``dst``.

    Raises:
        InputError: Without ``trust``, if ``src`` is missing or not an rsaug checkpoint, or ``dst`` exists.
    """
    s, d = Path(src), Path(dst)
    if not trust:
        raise InputError(
            s, f"converting unpickles the file without restrictions; pass {option('trust')} if you trust it"
        )
    if not s.is_file():
        raise InputError(s, "checkpoint not found")
    if d.exists():
        raise InputError(d, "output file already exists")
    try:
        ckpt = torch.load(s, map_location="cpu", weights_only=False)  # the user vouched for the file
    except Exception as exc:
        raise InputError(s, f"cannot read checkpoint: {type(exc).__name__}: {exc}") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CHECKPOINT_FORMAT:
        raise InputError(s, "not an rsaug checkpoint")
    if isinstance(ckpt.get("rng"), dict):
        ckpt["rng"] = plain_rng_state(ckpt["rng"])
    ckpt = _plain(ckpt)
    ckpt["version"] = CHECKPOINT_VERSION
    with atomic_path(d) as tmp:
        torch.save(ckpt, tmp)
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(tmp)
        if unsafe:
            raise InputError(
                s, f"cannot convert: the checkpoint holds objects outside the safe format ({', '.join(unsafe)})"
            )
    return d


def _plain(obj: Any) -> Any:
    """``obj`` with paths as strings and NumPy values as tensors / Python numbers (containers recursively);
    anything else is kept as is (and then refused by the safety check of :func:`convert_checkpoint`)."""
    if type(obj) in (dict, OrderedDict):
        return type(obj)((k, _plain(v)) for k, v in obj.items())
    if type(obj) in (list, tuple):
        return type(obj)(_plain(v) for v in obj)
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


# ---------------------------------------------------------------------------------------------- generator files
_FLOATS = (torch.float32, torch.float64, torch.bfloat16)
_FP16_MAX = float(torch.finfo(torch.float16).max)

_WIDTHS: dict[str, tuple[str, ...]] = {
    "csebgan": ("ngf", "num_upsampling", "embed_dim", "mlp_hidden"),
    "spade": ("ngf", "num_upsampling", "spade_hidden"),
    "vspade": ("ngf", "num_upsampling", "spade_hidden", "z_dim"),
    "clade": ("ngf", "num_upsampling"),
    "pix2pixhd": ("ngf", "p2p_downsampling", "p2p_blocks"),
}
"""The model-config fields that size each generator family (the data card's ``model.widths``)."""


def _source_file(src: str | os.PathLike[str]) -> Path:
    """The checkpoint file of ``src`` (a file, or a run directory's ``checkpoints/last.ckpt``)."""
    p = Path(src)
    if p.is_dir():
        if not (p / "checkpoints" / "last.ckpt").is_file():
            raise InputError(p, "not a checkpoint file nor a run directory with checkpoints/last.ckpt")
        return find_checkpoint(p)
    if not p.is_file():
        raise InputError(p, "checkpoint not found")
    return p


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def _export_weights(weights: Any, half: bool, path: Path) -> tuple[OrderedDict[str, torch.Tensor], list[str]]:
    """Compact copies of the tensors of ``weights`` (floating ones as float16 when ``half``; one whose values
    float16 cannot hold as float32) and the names of the tensors kept float32 although ``half``."""
    if not isinstance(weights, dict) or not weights:
        raise InputError(path, "the generator weights are not a state dict")
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    wide: list[str] = []
    for name, t in weights.items():
        if not isinstance(t, torch.Tensor):
            raise InputError(path, f"generator weight {name!r} is not a tensor ({type(t).__name__})")
        t = t.detach().cpu()
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            raise InputError(path, f"generator weight {name!r} holds NaN or infinite values (a diverged run?)")
        if half and t.dtype in _FLOATS:
            if t.numel() and float(t.abs().max()) > _FP16_MAX:
                wide.append(str(name))
                out[str(name)] = t.to(torch.float32)
            else:
                out[str(name)] = t.to(torch.float16)
        else:
            out[str(name)] = t.clone()  # its own compact storage (never a view into a larger one)
    return out, wide


def _check_shapes(weights: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse ``weights`` unless they have exactly the keys and shapes of the network's ``expected`` state."""
    missing = [k for k in expected if k not in weights]
    extra = [k for k in weights if k not in expected]
    wrong = [k for k in expected if k in weights and tuple(weights[k].shape) != tuple(expected[k].shape)]
    problems = [
        f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
        for what, keys in (("missing", missing), ("unexpected", extra), ("wrong shape of", wrong))
        if keys
    ]
    if problems:
        raise InputError(path, f"generator weights do not match the stored config: {'; '.join(problems)}")


def _dtype_name(weights: dict[str, torch.Tensor]) -> str:
    kinds = sorted({str(t.dtype).removeprefix("torch.") for t in weights.values() if t.is_floating_point()})
    if len(kinds) <= 1:
        return kinds[0] if kinds else "none"
    return "mixed (" + ", ".join(kinds) + ")"


def _as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a dict, else an empty one (optional entries of older or hand-written files)."""
    return value if isinstance(value, dict) else {}


def _pick(d: Any, *keys: str) -> dict[str, Any]:
    """The entries ``keys`` of the dict ``d`` that are present and not ``None``."""
    if not isinstance(d, dict):
        return {}
    return {k: d[k] for k in keys if d.get(k) is not None}


def _evaluation_scores(evaluation: str | os.PathLike[str], sha: str, src: Path, scheme: ClassScheme) -> dict[str, Any]:
    """The scores ``rsaug evaluate`` recorded for the checkpoint ``src`` (SHA-256 ``sha``) in ``evaluation``.

    An entry matches by its ``checkpoint_sha256``; one without a recorded hash matches by path, and a file that
    lists a single entry without a hash is taken as it is.

    Raises:
        InputError: If the file is missing or not an ``rsaug evaluate`` result, or no entry is this generator.
    """
    ev = Path(evaluation)
    if ev.is_dir():
        ev = ev / "evaluation.json"
    if not ev.is_file():
        raise InputError(ev, "evaluation file not found")
    try:
        data = json.loads(ev.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(ev, f"cannot read evaluation: {type(exc).__name__}: {exc}") from None
    entries = data.get("checkpoints") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("format") != "rsaug-evaluation" or not isinstance(entries, list):
        raise InputError(ev, "not an `rsaug evaluate` result (evaluation.json)")
    entries = [e for e in entries if isinstance(e, dict)]
    match = [e for e in entries if str(e.get("checkpoint_sha256") or "").lower() == sha]
    if not match:
        unhashed = [e for e in entries if not e.get("checkpoint_sha256")]
        match = [e for e in unhashed if e.get("checkpoint") and _same_file(Path(str(e["checkpoint"])), src)]
        if not match and len(entries) == 1 and unhashed:
            match = unhashed
    if not match:
        recorded = ", ".join(str(e.get("checkpoint_sha256") or e.get("checkpoint"))[:16] for e in entries) or "none"
        raise InputError(ev, f"scores other generators (sha256 {recorded}...), not {src.name} (sha256 {sha[:16]}...)")
    e = match[0]
    scores: dict[str, Any] = {
        "file": ev.name,
        "label": e.get("label"),
        "tileset": data.get("tileset"),
        "split": data.get("split"),
        "tiles": data.get("tiles"),
        "evaluated_by": data.get("rsaug_version"),
        "checkpoint_sha256": e.get("checkpoint_sha256"),
    }
    if e.get("fid") is not None:
        scores["fid"] = e["fid"]
    seg = e.get("segmentation")
    if isinstance(seg, dict):
        fidelity = _pick(seg, "miou", "fwiou", "accuracy", "mean_class_accuracy")
        names = seg.get("class_names") or scheme.names
        if isinstance(seg.get("per_class_iou"), list) and len(seg["per_class_iou"]) == len(names):
            fidelity["per_class_iou"] = dict(zip(map(str, names), seg["per_class_iou"]))
        ref = (data.get("reference") or {}).get("segmentation")
        if isinstance(ref, dict) and ref.get("miou") is not None:
            fidelity["real_miou"] = ref["miou"]
        segmenter = data.get("segmenter")
        if isinstance(segmenter, dict):
            fidelity["segmenter"] = _pick(segmenter, "source", "preset", "backbone", "iterations")
        scores["segmentation"] = fidelity
    if isinstance(e.get("diversity"), dict):
        scores["diversity"] = _pick(e["diversity"], "lpips", "std", "net", "masks", "samples_per_mask")
    if isinstance(e.get("class_diversity"), dict):
        scores["class_diversity"] = _pick(e["class_diversity"], "mcsd", "mocd", "net", "region")
    if isinstance(e.get("radiometry"), dict):
        scores["radiometry"] = _pick(e["radiometry"], "units", "target", "summary", "summary_line")
    return scores


def _data_card(
    state: dict[str, Any],
    *,
    src: Path,
    sha: str,
    cfg: ModelConfig,
    scheme: ClassScheme,
    parameters: int,
    weights_source: str,
    weights: dict[str, torch.Tensor],
    wide: list[str],
    notes: list[str],
    scores: dict[str, Any] | None,
) -> dict[str, Any]:
    desc = _as_dict(state.get("tileset"))
    summary = _as_dict(desc.get("summary"))
    sources = desc.get("sources")
    train = _as_dict(state.get("train_config"))
    old_card = _as_dict(state.get("data_card"))
    widths = _WIDTHS.get(cfg.model, ("ngf",)) + (
        ("clade_noise_dim",) if cfg.model == "clade" and cfg.clade_noise else ()
    )
    card: dict[str, Any] = {
        "format": CARD_FORMAT,
        "card_version": CARD_VERSION,
        "rsaug_version": __version__,
        "source": {
            "file": src.name,
            "sha256": sha,
            "bytes": src.stat().st_size,
            "kind": state.get("kind", "training checkpoint"),
            "checkpoint_version": state.get("version", 1),
            "written_by": state.get("rsaug_version", (old_card.get("source") or {}).get("written_by")),
            "exported_from": old_card.get("source"),
        },
        "model": {
            "family": cfg.model,
            "widths": {k: getattr(cfg, k) for k in widths},
            "parameters": parameters,
            "num_classes": cfg.num_classes,
            "out_bands": cfg.out_bands,
            "has_noise": cfg.has_noise,
            "size_multiple": cfg.size_multiple,
        },
        "training_data": {
            "scenes": len(sources) if isinstance(sources, list) else summary.get("scenes"),
            "splits": desc.get("split_counts") or summary.get("splits"),
            "tile_size": desc.get("tile_size"),
            "bands": desc.get("bands"),
            "dtype": desc.get("dtype"),
            "scheme": scheme.name,
            "class_names": scheme.names,
            "georeferenced": desc.get("georeferenced"),
            "crs": desc.get("crs"),
            "synthetic": desc.get("synthetic"),
            "class_pixel_shares": summary.get("class_pixel_shares"),
        },
        "training": {
            "steps": int(state.get("step", 0)),
            "total_steps": state.get("total_steps", (old_card.get("training") or {}).get("total_steps")),
            **{k: train.get(k) for k in ("preset", "crop_size", "batch_size", "seed", "device", "precision")},
            "ema_decay": train.get("ema_decay"),
        },
        "weights": {
            "source": weights_source,
            "dtype": _dtype_name(weights),
            "tensors": len(weights),
            "kept_wider": wide,
        },
        "notes": notes,
        "evaluation": scores,
    }
    return json_roundtrip(strict_json(card))


def export_generator(
    src: str | os.PathLike[str],
    dst: str | os.PathLike[str],
    *,
    evaluation: str | os.PathLike[str] | None = None,
    half: bool = True,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write the trained generator of a checkpoint alone as a small file that loads safely, with a data card.

    The file (``kind = "generator"``, keys :data:`GENERATOR_KEYS`) holds the EMA weights (the raw generator
    weights ``G`` when the source has none, which the card says), floating tensors as float16 when ``half``
    (integer buffers unchanged; a tensor float16 cannot hold stays float32), the configs, class scheme,
    normalisation and tile-set description that :func:`rsaug.gan.inference.load_generator` needs, and the
    ``data_card``; no discriminator, conductor, optimiser or RNG state. The card is also written as
    ``DST.json``. Both files are written atomically; nothing is written when an error is raised.

    Args:
        src: A checkpoint file or a run directory (its ``checkpoints/last.ckpt``); read without executing
            anything from it (:func:`load_checkpoint`).
        dst: The generator file to write.
        evaluation: An ``rsaug evaluate`` result (``evaluation.json``, or its directory) that scored this
            checkpoint: its scores go into the card (matched by SHA-256, else by path, else its only entry).
        half: Store floating weights as float16 (about half the size; outputs change by float16 rounding).
        overwrite: Replace an existing ``dst`` (and ``DST.json``).

    Returns:
        The data card (plain JSON values): ``source`` (file name, SHA-256), ``model`` (family, widths,
        parameters), ``training_data`` (scenes, splits, tile size, bands, dtype, scheme, georeferencing),
        ``training`` (steps, preset, crop and batch size, seed, device), ``weights`` (``ema`` or ``raw``,
        dtype), ``notes`` and ``evaluation`` (the scores, or ``None``).

    Raises:
        InputError: If ``src`` is missing, unsafe or holds no generator, ``dst`` is ``src`` or exists without
            ``overwrite``, or ``evaluation`` is unreadable or scores another generator.
    """
    s = _source_file(src)
    d = Path(dst)
    card_path = Path(f"{d}.json")
    for out in (d, card_path):
        if _same_file(out, s):
            raise InputError(out, "is the source checkpoint; write the generator to another file")
    if d.is_dir():
        raise InputError(d, "output path is a directory")
    if not overwrite:
        for out in (d, card_path):
            if out.exists():
                raise InputError(out, f"output file already exists; use {option('overwrite')} to replace it")
    sha = file_sha256(s)
    state = load_checkpoint(s)
    for key in ("model_config", "scheme", "normalization"):
        if not isinstance(state.get(key), dict):
            raise InputError(s, f"checkpoint has no {key}; cannot export its generator")
    cfg = ModelConfig.from_dict(state["model_config"], s)
    scheme = ClassScheme.from_dict(state["scheme"], s)
    try:
        Normalization.from_dict(state["normalization"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(s, f"invalid normalization: {exc}") from None
    old_card = _as_dict(state.get("data_card"))
    old_notes = state.get("notes", old_card.get("notes"))
    notes = [str(n) for n in old_notes] if isinstance(old_notes, list) else []
    scores = None if evaluation is None else _evaluation_scores(evaluation, sha, s, scheme)
    if scores is None and isinstance(old_card.get("evaluation"), dict):  # re-export of a generator file
        scores = old_card["evaluation"]
    if state.get("G_ema") is not None:
        raw_weights, source = state["G_ema"], str((old_card.get("weights") or {}).get("source") or "ema")
    elif state.get("G") is not None:
        raw_weights, source = state["G"], "raw"
        notes.append("the checkpoint holds no EMA weights (G_ema); the raw generator weights (G) were exported")
    else:
        raise InputError(s, "checkpoint holds no generator weights (G_ema or G)")
    weights, wide = _export_weights(raw_weights, half, s)
    if half and wide:
        notes.append(f"{len(wide)} tensor(s) exceed the float16 range and stay float32: {', '.join(wide[:5])}")
    if not half and any(t.dtype == torch.float16 for t in weights.values()):
        notes.append("the source weights are already float16; float32 export keeps them as they are")
    with torch.device("meta"):  # shapes only: no memory, no power iterations
        net = build_generator(cfg)
    parameters = sum(p.numel() for p in net.parameters())
    if not any(k.endswith(".parametrizations.weight.original") for k in weights):  # older layout: converted on load
        _check_shapes(weights, net.state_dict(), s)
    card = _data_card(
        state,
        src=s,
        sha=sha,
        cfg=cfg,
        scheme=scheme,
        parameters=parameters,
        weights_source=source,
        weights=weights,
        wide=wide,
        notes=notes,
        scores=scores,
    )
    meta = _plain({k: state.get(k) for k in ("model_config", "scheme", "normalization", "tileset", "train_config")})
    exported: dict[str, Any] = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": GENERATOR_KIND,
        "step": int(state.get("step", 0)),
        **meta,
        "G_ema": weights,
        "data_card": card,
    }
    exported = {k: exported[k] for k in GENERATOR_KEYS}
    with atomic_path(d) as tmp:
        with open(tmp, "wb") as f:  # through a file object the zip's record names do not depend on ``tmp``
            torch.save(exported, f)
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(tmp)
        if unsafe:
            raise InputError(
                s, f"cannot export: the checkpoint holds objects outside the safe format ({', '.join(unsafe)})"
            )
        write_json(card_path, card)
    return card


__all__ = [
    "CARD_FORMAT",
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "GENERATOR_KEYS",
    "GENERATOR_KIND",
    "SAFE_NUMPY_GLOBALS",
    "checkpoint_state",
    "convert_checkpoint",
    "export_generator",
    "file_sha256",
    "find_checkpoint",
    "load_checkpoint",
    "load_state_dict_file",
    "save_checkpoint",
]
