"""CSEBGAN semantic embeddings: per-class learned shift / log-scale, reparameterised sampling.

For every label ``k`` (the ``K`` real classes plus the unknown label, which is an input label of the
generator) there are two learned embeddings, one for gamma and one for beta, each with a shift ``b_k`` and a
log-scale ``s_k``. Every forward pass samples, per image,

    gamma_k = n_k * exp(s_k / 2) + b_k,    n_k ~ N(0, I)

(and likewise beta_k), so gradients reach ``b`` and ``s`` through the reparameterisation. In the paper one
sample per class is shared by all generator layers (``num_sets = 1``); the "embeddings not shared across
layers" ablation uses one parameter set and one sample per modulation layer (``num_sets = n_layers``).

Noise layout: ``Tensor[B, S, L, 2, D]`` with ``S`` sets, ``L = K + 1`` labels, index 0 / 1 of the fourth axis
for gamma / beta and ``D`` the embedding dimension. Resampling one class only replaces ``noise[:, :, k]``.

Spatial noise (``ModelConfig.spatial_noise``): :func:`spatial_noise_field` derives per-pixel Gaussian fields
from this noise, one field per (image, label) seeded by a hash of that label's noise, so the image stays a
function of ``(labels, noise)`` alone.
"""

from __future__ import annotations

import hashlib

import torch
from torch import Tensor, nn


def randn(
    shape: tuple[int, ...],
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Standard normal samples drawn on the generator's device, then moved to ``device``.

    Drawing on the generator's own device makes seeded noise identical whatever the model's device.
    """
    gen_device = generator.device if generator is not None else (device or "cpu")
    out = torch.randn(shape, generator=generator, device=gen_device, dtype=dtype)
    return out.to(device) if device is not None else out


def _label_seed(values: Tensor) -> int:
    """63-bit seed from the bytes of one image's noise of one label (float32, C order)."""
    digest = hashlib.blake2b(values.float().numpy().tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def spatial_noise_field(labels: Tensor, noise: Tensor, channels: int) -> Tensor:
    """Per-pixel standard-normal fields ``[B, channels, H, W]`` derived from the embedding noise.

    For every image ``b`` and every label ``l`` present in ``labels[b]``, a CPU :class:`torch.Generator` is
    seeded with a 63-bit BLAKE2b hash of ``noise[b, :, l]`` (all sets, gamma and beta, as float32 bytes) and
    draws a ``[channels, H, W]`` field at the full label resolution; each pixel of the result takes the value
    of the field of its own label. Hence:

    * the field is a deterministic function of ``(labels[b], noise[b])`` per image: it does not depend on the
      batch size, on how a batch is split into chunks, on the other images, or on the device (the draws are
      made on the CPU and moved to ``labels``' device afterwards);
    * :meth:`SemanticEmbeddings.resample_class` ``(noise, k)`` only replaces ``noise[:, :, k]``, so only the
      field of label ``k`` changes, and the result changes at label ``k``'s pixels only.

    Args:
        labels: Long labels ``[B, H, W]`` in ``0..L-1``.
        noise: CSEBGAN embedding noise ``[B, S, L, 2, D]``.
        channels: Number of fields per pixel (one per generator residual block).

    Returns:
        float32 tensor ``[B, channels, H, W]`` on ``labels``' device (contiguous).

    Raises:
        ValueError: If the batch sizes of ``labels`` and ``noise`` differ.
    """
    if labels.dim() != 3 or noise.dim() != 5 or labels.shape[0] != noise.shape[0]:
        raise ValueError(
            f"spatial noise needs labels [B, H, W] and noise [B, S, L, 2, D] of one batch size, "
            f"got {list(labels.shape)} and {list(noise.shape)}"
        )
    b, h, w = labels.shape
    lab_cpu = labels.detach().cpu()
    noise_cpu = noise.detach().cpu().float().contiguous()
    out = torch.empty((b, channels, h, w), dtype=torch.float32)
    gen = torch.Generator(device="cpu")
    for i in range(b):
        for lab in torch.unique(lab_cpu[i]).tolist():
            gen.manual_seed(_label_seed(noise_cpu[i, :, lab]))
            field = torch.randn((channels, h, w), generator=gen, dtype=torch.float32)
            where = lab_cpu[i] == lab
            out[i][:, where] = field[:, where]
    return out.to(labels.device)


class SemanticEmbeddings(nn.Module):
    """Learned per-class gamma/beta embeddings with reparameterised sampling.

    Args:
        num_labels: Number of labels ``L = K + 1`` (unknown included).
        dim: Embedding dimension ``D``.
        num_sets: Number of independent parameter sets (1 = shared by all layers, as in the paper).

    Attributes:
        shift: ``b``, shape ``[S, L, 2, D]``; initialised N(0, 1) so classes start distinct.
        log_scale: ``s``, shape ``[S, L, 2, D]``; initialised 0 (unit standard deviation).
    """

    def __init__(self, num_labels: int, dim: int, num_sets: int = 1) -> None:
        super().__init__()
        self.num_labels = num_labels
        self.dim = dim
        self.num_sets = num_sets
        self.shift = nn.Parameter(torch.randn(num_sets, num_labels, 2, dim))
        self.log_scale = nn.Parameter(torch.zeros(num_sets, num_labels, 2, dim))

    @property
    def noise_shape(self) -> tuple[int, int, int, int]:
        """Shape of one image's noise: ``(S, L, 2, D)``."""
        return (self.num_sets, self.num_labels, 2, self.dim)

    def sample_noise(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor:
        """Draw ``n ~ N(0, I)`` of shape ``[batch, S, L, 2, D]``."""
        device = self.shift.device if device is None else device
        return randn((batch, *self.noise_shape), generator, device)

    def resample_class(self, noise: Tensor, class_index: int, generator: torch.Generator | None = None) -> Tensor:
        """Return a copy of ``noise`` where only label ``class_index``'s noise (all sets, gamma and beta) is new.

        Raises:
            ValueError: If the noise has the wrong shape or the label is out of range.
        """
        self.check_noise(noise)
        if not 0 <= int(class_index) < self.num_labels:
            raise ValueError(f"class index {class_index} out of range 0..{self.num_labels - 1}")
        out = noise.clone()
        fresh = randn((noise.shape[0], self.num_sets, 2, self.dim), generator, noise.device, noise.dtype)
        out[:, :, int(class_index)] = fresh
        return out

    def check_noise(self, noise: Tensor) -> None:
        """Raise ``ValueError`` unless ``noise`` is ``[B, S, L, 2, D]``."""
        if noise.dim() != 5 or tuple(noise.shape[1:]) != self.noise_shape:
            raise ValueError(
                f"CSEBGAN noise must have shape [B, {', '.join(map(str, self.noise_shape))}], got {list(noise.shape)}"
            )

    def forward(self, noise: Tensor) -> Tensor:
        """Reparameterised codes ``n * exp(s / 2) + b``, shape ``[B, S, L, 2, D]``."""
        self.check_noise(noise)
        return noise * torch.exp(0.5 * self.log_scale) + self.shift


__all__ = ["SemanticEmbeddings", "randn", "spatial_noise_field"]
