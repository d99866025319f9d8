"""The documented entry point for using a trained generator (synthesis, metrics and benchmarks build on it).

Example::

    from rsaug.gan.inference import load_generator

    gen = load_generator("RUN/checkpoints/last.ckpt", device="auto", ema=True)
    gen.scheme, gen.config, gen.out_bands, gen.checkpoint_sha256, gen.dtype, gen.normalization
    gen.data_card                                          # of a file from `rsaug export-generator`, else {}
    noise = gen.sample_noise(4, seed=0)                    # None for generators without noise (SPADE ...)
    noise2 = gen.resample_class(noise, "river", seed=1)    # only the river embedding changes
    img = gen.generate(mask, noise=noise)                  # mask (B, H, W) or (H, W), internal convention,
                                                           # any H, W; float32 in [-1, 1], (B, C, H, W)
    arr = gen.to_raster(img)                               # numpy (B, C, H, W) in the source dtype

``generate`` is deterministic for a given ``seed`` (or ``noise``) and independent of ``batch_size``: the noise
for the whole batch is drawn first, and the generator runs in eval mode (BatchNorm running statistics). Masks
whose size is not a multiple of the generator's :attr:`Generator.multiple` are padded (edge replication) and
the output cropped back.

Fresh networks come from :func:`rsaug.gan.models.build_models` (re-exported here), checkpoint files are read by
:mod:`rsaug.gan.checkpoint`, and preview grids (:func:`rsaug.gan.preview.sample_grid`) build on this module.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from rsaug.core.classes import IGNORE, ClassScheme
from rsaug.core.errors import InputError, option
from rsaug.core.runtime import select_device
from rsaug.gan.checkpoint import file_sha256, find_checkpoint, load_checkpoint
from rsaug.gan.config import ModelConfig
from rsaug.gan.models import Models, build_models
from rsaug.gan.networks.generator import _Generator, build_generator, to_model_labels
from rsaug.io.normalization import Normalization


def _torch_generator(seed: int | torch.Generator | None) -> torch.Generator | None:
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InputError(None, f"seed must be an integer or a torch.Generator, got {type(seed).__name__}")
    return torch.Generator(device="cpu").manual_seed(int(seed))


class Generator:
    """A trained generator loaded from a checkpoint (see :func:`load_generator`).

    Attributes:
        net: The generator network (eval mode, on :attr:`device`).
        config: Its :class:`rsaug.gan.config.ModelConfig`.
        scheme: Class scheme of the masks it was trained on.
        normalization: Map between raster values and ``[-1, 1]`` (:class:`rsaug.io.normalization.Normalization`).
        checkpoint_path: The checkpoint file.
        checkpoint_sha256: SHA-256 of the checkpoint file (provenance of generated data).
        step: Training step of the checkpoint.
        ema: Whether the EMA weights were loaded.
        train_config: The training options of the run (a dict), if stored.
        tileset: Description (``tileset.json``) of the tile set it was trained on, if stored.
        device: Torch device.
        data_card: The data card of a generator file written by ``rsaug export-generator``
            (:func:`rsaug.gan.checkpoint.export_generator`: source, training data, training, weights, scores);
            empty for a training checkpoint.
    """

    def __init__(
        self,
        net: _Generator,
        config: ModelConfig,
        scheme: ClassScheme,
        normalization: Normalization,
        checkpoint_path: Path | None = None,
        checkpoint_sha256: str | None = None,
        step: int = 0,
        ema: bool = True,
        train_config: dict[str, Any] | None = None,
        tileset: dict[str, Any] | None = None,
        device: torch.device | None = None,
        data_card: dict[str, Any] | None = None,
    ) -> None:
        self.net = net.eval()
        self.config = config
        self.scheme = scheme
        self.normalization = normalization
        self.checkpoint_path = checkpoint_path
        self.checkpoint_sha256 = checkpoint_sha256
        self.step = step
        self.ema = ema
        self.train_config = train_config or {}
        self.tileset = tileset or {}
        self.device = device or next(net.parameters()).device
        self.data_card = data_card or {}

    # ------------------------------------------------------------------ properties
    @property
    def out_bands(self) -> int:
        """Number of image bands produced."""
        return int(self.config.out_bands)

    @property
    def dtype(self) -> str:
        """Dtype name of the source rasters (what :meth:`to_raster` returns)."""
        return self.normalization.dtype

    @property
    def num_classes(self) -> int:
        """Number of real classes K."""
        return self.scheme.num_classes

    @property
    def multiple(self) -> int:
        """The network needs heights and widths divisible by this (``generate`` pads otherwise)."""
        return int(self.config.size_multiple)

    @property
    def has_noise(self) -> bool:
        """Whether outputs vary with the noise (``False`` for SPADE, pix2pixHD, CLADE without noise)."""
        return bool(self.config.has_noise)

    # ------------------------------------------------------------------ noise
    def sample_noise(self, batch: int, seed: int | torch.Generator | None = None) -> torch.Tensor | None:
        """Noise for ``batch`` images (``None`` for generators without noise).

        Args:
            batch: Number of images.
            seed: Integer seed or ``torch.Generator`` (``None``: torch's global generator).
        """
        gen = _torch_generator(seed)
        noise = self.net.sample_noise(int(batch), generator=gen, device="cpu")
        return None if noise is None else noise.to(self.device)

    def resample_class(
        self, noise: torch.Tensor, class_index: int | str, seed: int | torch.Generator | None = None
    ) -> torch.Tensor:
        """Copy of ``noise`` in which only one class's noise is redrawn (semantic editing, mCSD/mOCD).

        Args:
            noise: Output of :meth:`sample_noise`.
            class_index: Internal class index (0..K-1, or K for the unknown label) or class name.
            seed: Integer seed or ``torch.Generator``.

        Raises:
            InputError: If the generator has no per-class noise, or the class is unknown.
        """
        if isinstance(class_index, str):
            class_index = self.scheme.index_of(class_index)
        if not 0 <= int(class_index) <= self.num_classes:
            raise InputError(None, f"class index {class_index} outside 0..{self.num_classes}")
        if noise is None:
            raise InputError(None, f"model {self.config.model!r} has no noise to resample")
        gen = _torch_generator(seed)
        try:
            out = self.net.resample_class(noise.detach().cpu(), int(class_index), generator=gen)
        except ValueError as exc:
            raise InputError(None, str(exc)) from None
        return out.to(self.device)

    # ------------------------------------------------------------------ generation
    def _labels(self, mask: Any) -> torch.Tensor:
        if isinstance(mask, np.ndarray):
            if not (np.issubdtype(mask.dtype, np.integer) or mask.dtype == bool):
                raise InputError(None, f"mask must hold integers, got dtype {mask.dtype}")
            t = torch.from_numpy(mask.astype(np.int64))
        elif isinstance(mask, torch.Tensor):
            if mask.is_floating_point() or mask.is_complex():
                raise InputError(None, f"mask must hold integers, got dtype {mask.dtype}")
            t = mask.detach().to("cpu", torch.int64)
        else:
            raise InputError(None, f"mask must be a numpy array or a torch tensor, got {type(mask).__name__}")
        if t.ndim == 2:
            t = t[None]
        if t.ndim != 3 or t.shape[1] == 0 or t.shape[2] == 0:
            raise InputError(None, f"mask must be (H, W) or (B, H, W), got shape {tuple(mask.shape)}")
        bad = ((t < 0) | (t >= self.num_classes)) & (t != IGNORE)
        if bool(bad.any()):
            vals = sorted(int(v) for v in t[bad].unique()[:10])
            raise InputError(
                None,
                f"mask values {vals} outside class scheme {self.scheme.name!r} "
                f"(0..{self.num_classes - 1}, {IGNORE} = unknown)",
            )
        return to_model_labels(t, self.num_classes)

    @torch.no_grad()
    def generate(
        self,
        mask: Any,
        noise: torch.Tensor | None = None,
        seed: int | torch.Generator | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """Generate images for masks.

        Args:
            mask: (H, W) or (B, H, W) integer mask in the internal convention (0..K-1, 255 = unknown), numpy
                or torch; any size.
            noise: Noise from :meth:`sample_noise` (batch B, or 1 to share it across the batch).
            seed: Seed for the noise when ``noise`` is ``None`` (``None``: torch's global generator).
            batch_size: Images per forward pass (``None``: all at once). Does not change the result.

        Returns:
            float32 tensor (B, out_bands, H, W) in ``[-1, 1]`` on :attr:`device`.

        Raises:
            InputError: For masks with values outside the scheme, bad shapes or mismatched noise.
        """
        labels = self._labels(mask)
        b, h, w = labels.shape
        if noise is None and self.has_noise:
            noise = self.sample_noise(b, seed)
        if noise is not None:
            noise = noise.to(self.device)
            if noise.shape[0] == 1 and b > 1:
                noise = noise.expand(b, *noise.shape[1:])
            if noise.shape[0] != b:
                raise InputError(None, f"noise has batch {noise.shape[0]}, the mask {b}")
        m = self.multiple
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            labels = F.pad(labels[:, None].float(), (0, pw, 0, ph), mode="replicate")[:, 0].long()
        step = b if not batch_size else max(1, int(batch_size))
        outs = []
        for i in range(0, b, step):
            lab = labels[i : i + step].to(self.device)
            nz = None if noise is None else noise[i : i + step]
            img, _ = self.net(lab, nz, None)
            outs.append(img[:, :, :h, :w].float())
        return torch.cat(outs)

    def to_raster(self, img: torch.Tensor) -> np.ndarray:
        """Model output (B, C, H, W) or (C, H, W) in ``[-1, 1]`` -> numpy in the source dtype and band order."""
        return self.normalization.denormalize(img)


def upgrade_state_dict(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map spectral-norm keys of older checkpoints onto the current layout.

    Checkpoints written before the generator used :class:`rsaug.gan.networks.generator.SNConv2d` store torch's
    parametrisation (``P.parametrizations.weight.original`` / ``.0._u`` / ``.0._v``, ``v`` in
    ``(in, kh, kw)`` order); the current layout is ``P.weight`` / ``P.u`` / ``P.v`` with ``v`` in
    ``(kh, kw, in)`` order. Keys the current network does not expect in the new form are left alone.

    Args:
        state: A stored state dict.
        expected: The current network's ``state_dict()`` (for the key names).

    Returns:
        The (possibly) converted state dict.
    """
    suffix = ".parametrizations.weight.original"
    out = dict(state)
    for key in [k for k in state if k.endswith(suffix)]:
        prefix = key[: -len(suffix)]
        if f"{prefix}.u" not in expected or f"{prefix}.weight" in state:
            continue
        w = out.pop(key)
        u = out.pop(f"{prefix}.parametrizations.weight.0._u")
        v = out.pop(f"{prefix}.parametrizations.weight.0._v")
        out[f"{prefix}.weight"] = w
        out[f"{prefix}.u"] = u
        out[f"{prefix}.v"] = v.reshape(w.shape[1], w.shape[2], w.shape[3]).permute(1, 2, 0).reshape(-1)
    return out


def load_generator(
    ckpt: str | os.PathLike[str],
    device: str | torch.device = "auto",
    ema: bool = True,
    expect_sha256: str | None = None,
) -> Generator:
    """Load a generator from an rsaug checkpoint (or a run directory: its ``checkpoints/last.ckpt``), or from a
    generator file written by ``rsaug export-generator`` (float16 weights are loaded into the float32 network;
    its data card becomes :attr:`Generator.data_card`).

    The file is read without executing anything from it (:func:`rsaug.gan.checkpoint.load_checkpoint`).

    Args:
        ckpt: Checkpoint file or run directory.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or a torch device.
        ema: Load the EMA weights (recommended) instead of the raw generator weights (a generator file holds
            one set of weights and always loads it).
        expect_sha256: Refuse the file unless its SHA-256 (hex, as recorded in synthetic tiles' provenance) is
            this one; checked before anything in the file is read.

    Returns:
        A :class:`Generator` in eval mode.

    Raises:
        InputError: If the file is missing, not the expected one, not an rsaug checkpoint, or its config is
            invalid.
    """
    path = find_checkpoint(ckpt) if Path(ckpt).is_dir() else Path(ckpt)
    if not path.is_file():
        raise InputError(path, "checkpoint not found")
    digest = file_sha256(path)
    if expect_sha256 is not None:
        want = expect_sha256.strip().lower()
        if len(want) != 64 or any(c not in "0123456789abcdef" for c in want):
            raise InputError(None, f"{option('expect_sha256')} must be 64 hex digits, got {expect_sha256!r}")
        if digest != want:
            raise InputError(path, f"SHA-256 is {digest}, not the expected {want}; refusing this generator")
    state = load_checkpoint(path)
    dev = device if isinstance(device, torch.device) else select_device(str(device))
    cfg = ModelConfig.from_dict(state["model_config"], path)
    scheme = ClassScheme.from_dict(state["scheme"], path)
    net = build_generator(cfg)
    key = "G_ema" if ema and state.get("G_ema") is not None else "G"
    if state.get(key) is None:  # a generator file holds its one set of weights as G_ema
        key = "G_ema"
        if state.get(key) is None:
            raise InputError(path, "checkpoint holds no generator weights (G_ema or G)")
    stored_card = state.get("data_card")
    card: dict[str, Any] = stored_card if isinstance(stored_card, dict) else {}
    raw = isinstance(card.get("weights"), dict) and card["weights"].get("source") == "raw"
    try:
        net.load_state_dict(upgrade_state_dict(state[key], net.state_dict()))
    except RuntimeError as exc:
        raise InputError(path, f"generator weights do not match the stored config: {exc}") from None
    net.to(dev).eval()
    return Generator(
        net,
        cfg,
        scheme,
        Normalization.from_dict(state["normalization"]),
        checkpoint_path=path,
        checkpoint_sha256=digest,
        step=int(state.get("step", 0)),
        ema=key == "G_ema" and not raw,
        train_config=state.get("train_config"),
        tileset=state.get("tileset"),
        device=dev,
        data_card=card,
    )


__all__ = [
    "Generator",
    # re-exported from rsaug.gan.models
    "Models",
    "build_models",
    "file_sha256",
    "load_generator",
    "upgrade_state_dict",
]
