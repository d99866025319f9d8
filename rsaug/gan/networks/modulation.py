"""Normalisation layers that modulate generator features by the label map.

* :class:`SMBlk` - CSEBGAN's semantic modulation: per-layer two-layer MLPs turn every class's sampled
  gamma/beta embedding into a ``C``-channel modulation vector (all classes at once, batched), the vectors are
  placed per pixel with a table lookup by the label map, after a BatchNorm without affine:
  ``out = x_hat * Gamma + B``.
* :class:`CLADENorm` - class-adaptive normalisation with learned per-class affine tables (CLADE), with
  optional INADE-style instance noise.
* :class:`SPADENorm` - SPADE's spatially-adaptive normalisation (3x3 convolutions over the one-hot map),
  the slow baseline.

Fused lookup (``fused=True``, the default): in training mode a BatchNorm without affine followed by a
per-class affine is itself a per-(image, class, channel) affine of the *raw* input,

    out = x * (Gamma[b, k, c] / std_c) + (B[b, k, c] - mean_c * Gamma[b, k, c] / std_c),   k = label(b, h, w),

so the layer computes the batch statistics, folds them into two small ``[B, C, L]`` tables and applies a
single gather-based affine (``_FusedNormAffine``, a custom autograd function with an analytic backward
that includes the batch-statistics terms). Neither ``x_hat`` nor full-size per-pixel Gamma/B maps are ever
stored for backward: backward recomputes the gather and reduces the table gradients with scatter-adds.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _Lookup:
    """Per-pixel table lookups and per-class reductions for one feature map, in its memory layout.

    Channels-last maps (``[B, H, W, C]`` in memory, the generators' default) use row lookups
    (``F.embedding`` on a ``[B * L, C]`` table, one contiguous copy of ``C`` values per pixel) and row
    scatter-adds (``index_add_``); NCHW maps use ``gather`` / ``scatter_add_`` along the pixel axis.
    Pixel values are handled as a flat "pixel view": ``[B*H*W, C]`` (channels-last) or ``[B, C, H*W]``.
    """

    def __init__(self, x: Tensor, labels: Tensor, num_labels: int) -> None:
        b, c, h, w = x.shape
        self.shape = (b, c, h, w)
        self.num_labels = num_labels
        self.nhwc = (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last)
        if self.nhwc:
            offset = torch.arange(b, device=labels.device).view(b, 1) * num_labels
            self.index = (labels.reshape(b, h * w) + offset).reshape(-1)
        else:
            self.index = labels.reshape(b, 1, h * w).expand(b, c, h * w)

    def view(self, t: Tensor) -> Tensor:
        """Pixel view of a ``[B, C, H, W]`` tensor (made contiguous in this layout if needed)."""
        b, c, h, w = self.shape
        if self.nhwc:
            return t.contiguous(memory_format=torch.channels_last).permute(0, 2, 3, 1).reshape(b * h * w, c)
        return t.contiguous().reshape(b, c, h * w)

    def unview(self, t: Tensor) -> Tensor:
        """Inverse of :meth:`view`: a ``[B, C, H, W]`` tensor (channels-last memory for NHWC maps)."""
        b, c, h, w = self.shape
        if self.nhwc:
            return t.view(b, h, w, c).permute(0, 3, 1, 2)
        return t.view(b, c, h, w)

    def lookup(self, table: Tensor) -> Tensor:
        """Pixel view of ``table[b, c, label[b, p]]`` for a ``[B, C, L]`` table."""
        b, c, _, _ = self.shape
        if self.nhwc:
            return F.embedding(self.index, table.transpose(1, 2).reshape(b * self.num_labels, c))
        return torch.gather(table, 2, self.index)

    def segment_sum(self, values: Tensor) -> Tensor:
        """``[B, C, L]`` sums of pixel-view ``values`` over the pixels of each label."""
        b, c, _, _ = self.shape
        if self.nhwc:
            out = values.new_zeros(b * self.num_labels, c).index_add_(0, self.index, values)
            return out.view(b, self.num_labels, c).transpose(1, 2)
        return values.new_zeros(b, c, self.num_labels).scatter_add_(2, self.index, values)


class _ClassAffine(torch.autograd.Function):
    """``out[b, c, p] = x[b, c, p] * scale[b, c, label[b, p]] + shift[b, c, label[b, p]]``."""

    @staticmethod
    def forward(ctx, x: Tensor, labels: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
        lk = _Lookup(x, labels, scale.shape[2])
        scale = scale.to(x.dtype)
        out = lk.lookup(shift.to(x.dtype))
        out.addcmul_(lk.view(x), lk.lookup(scale))
        ctx.save_for_backward(x, labels, scale)
        return lk.unview(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, labels, scale = ctx.saved_tensors
        lk = _Lookup(x, labels, scale.shape[2])
        g = lk.view(grad)
        grad_x = grad_scale = grad_shift = None
        if ctx.needs_input_grad[0]:
            grad_x = lk.unview(g * lk.lookup(scale))
        if ctx.needs_input_grad[3]:
            grad_shift = lk.segment_sum(g)
        if ctx.needs_input_grad[2]:
            grad_scale = lk.segment_sum(g * lk.view(x))
        return grad_x, None, grad_scale, grad_shift


class _FusedNormAffine(torch.autograd.Function):
    """BatchNorm (no affine) + per-class affine in one op: ``x_hat * gamma[label] + beta[label]``.

    Forward folds the statistics into ``scale = gamma * rstd`` and ``shift = beta - mean * scale`` tables and
    applies one lookup-based affine. Backward (with batch statistics) is analytic: with ``S1 = sum g * x``,
    ``S0 = sum g`` per (image, channel, class),

    * ``dbeta = S0``, ``dgamma = (S1 - mean * S0) * rstd``,
    * ``dmean = -sum_{b,k} S0 * scale``, ``drstd = sum_{b,k} (S1 - mean * S0) * gamma``,
      ``dvar = -rstd^3 / 2 * drstd``,
    * ``dx = g * scale[label] + x * (2 dvar / N) + (dmean / N - 2 mean dvar / N)``,

    so the only full-size work is two per-class reductions, one lookup and two multiply-adds.
    """

    @staticmethod
    def forward(
        ctx,
        x: Tensor,
        labels: Tensor,
        gamma: Tensor,
        beta: Tensor,
        mean: Tensor,
        var: Tensor,
        eps: float,
        batch_stats: bool,
    ) -> Tensor:
        sdt = torch.promote_types(x.dtype, torch.float32)  # statistics dtype (float32 under autocast)
        rstd = torch.rsqrt(var.to(sdt) + eps)
        scale = gamma.to(sdt) * rstd[None, :, None]
        shift = beta.to(sdt) - mean.to(sdt)[None, :, None] * scale
        lk = _Lookup(x, labels, gamma.shape[2])
        out = lk.lookup(shift.to(x.dtype))
        out.addcmul_(lk.view(x), lk.lookup(scale.to(x.dtype)))
        ctx.save_for_backward(x, labels, gamma, scale, mean, rstd)
        ctx.batch_stats = batch_stats
        return lk.unview(out)

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, labels, gamma, scale, mean, rstd = ctx.saved_tensors
        lk = _Lookup(x, labels, gamma.shape[2])
        g = lk.view(grad)
        xf = lk.view(x)
        sdt = rstd.dtype
        s0 = lk.segment_sum(g).to(sdt)
        s1 = lk.segment_sum(g * xf).to(sdt)
        mean_f = mean.to(sdt)[None, :, None]
        d_scale = s1 - mean_f * s0  # total derivative w.r.t. the scale table (shift depends on it)
        grad_gamma = (d_scale * rstd[None, :, None]).to(gamma.dtype) if ctx.needs_input_grad[2] else None
        grad_beta = s0.to(gamma.dtype) if ctx.needs_input_grad[3] else None
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = lk.lookup(scale.to(x.dtype)).mul_(g)
            if ctx.batch_stats:
                b, _, h, w = x.shape
                n = b * h * w
                d_mean = -(s0 * scale).sum(dim=(0, 2))
                d_rstd = (d_scale * gamma.to(sdt)).sum(dim=(0, 2))
                d_var = -0.5 * rstd.pow(3) * d_rstd
                a = (2.0 * d_var / n).to(x.dtype)
                off = ((d_mean - 2.0 * mean.to(sdt) * d_var) / n).to(x.dtype)
                if not lk.nhwc:
                    a, off = a[None, :, None], off[None, :, None]
                grad_x.addcmul_(xf, a).add_(off)
            grad_x = lk.unview(grad_x)
        return grad_x, None, grad_gamma, grad_beta, None, None, None, None


def class_affine(x: Tensor, labels: Tensor, scale: Tensor, shift: Tensor) -> Tensor:
    """Per-pixel affine whose parameters are looked up by label.

    Args:
        x: Features ``[B, C, H, W]`` (NCHW or channels-last memory).
        labels: Long labels ``[B, H, W]`` in ``0..L-1``.
        scale: ``[B, C, L]`` (or ``[1, C, L]``, broadcast over the batch).
        shift: ``[B, C, L]`` (or ``[1, C, L]``).

    Returns:
        ``x * scale[b, c, label] + shift[b, c, label]``, computed without storing full-size scale/shift maps
        (same memory layout as ``x``).
    """
    b = x.shape[0]
    scale = scale.expand(b, -1, -1).contiguous()
    shift = shift.expand(b, -1, -1).contiguous()
    return _ClassAffine.apply(x, labels.contiguous(), scale, shift)


def batch_stats(x: Tensor) -> tuple[Tensor, Tensor]:
    """Per-channel mean and biased variance over (batch, height, width), in float32 (or float64 for double).

    Computed as ``E[x]`` and ``E[x^2] - E[x]^2`` with two matrix-vector products over the pixel view, which is
    several times faster on CPU than ``torch.var_mean`` for channels-last maps.
    """
    b, c, h, w = x.shape
    sdt = torch.promote_types(x.dtype, torch.float32)
    if (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last):
        xv = x.permute(0, 2, 3, 1).reshape(b * h * w, c).to(sdt)
        ones = xv.new_ones(1, xv.shape[0])
        with torch.autocast(x.device.type, enabled=False):  # keep the statistics in full precision
            s1 = torch.mm(ones, xv)[0]
            s2 = torch.mm(ones, xv * xv)[0]
    else:
        xv = x.reshape(b, c, h * w).to(sdt)
        s1 = xv.sum(dim=(0, 2))
        s2 = (xv * xv).sum(dim=(0, 2))
    n = b * h * w
    mean = s1 / n
    var = (s2 / n - mean * mean).clamp_(min=0)
    return mean, var


class ClassModulatedNorm(nn.Module):
    """BatchNorm without affine followed by a per-class affine ``x_hat * Gamma[label] + B[label]``.

    Subclasses produce the ``[B, C, L]`` tables; this class applies them, fused or not.

    Args:
        channels: Number of feature channels ``C``.
        fused: Fold the batch statistics into the tables (see module docstring). With ``False`` an
            ``nn.BatchNorm2d(affine=False)`` normalises first (convertible to ``SyncBatchNorm``).
        eps: BatchNorm epsilon.
        momentum: Running-statistics momentum.
    """

    # buffers registered in __init__ when ``fused`` (the unfused layer keeps them in ``self.bn``)
    running_mean: Tensor
    running_var: Tensor
    num_batches_tracked: Tensor

    def __init__(self, channels: int, fused: bool = True, eps: float = 1e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.channels = channels
        self.fused = fused
        if fused:
            self.eps = eps
            self.momentum = momentum
            self.register_buffer("running_mean", torch.zeros(channels))
            self.register_buffer("running_var", torch.ones(channels))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))
            self.bn = None
        else:
            self.bn = nn.BatchNorm2d(channels, affine=False, eps=eps, momentum=momentum)

    def modulate(self, x: Tensor, labels: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        """Normalise ``x`` and apply ``gamma``/``beta`` tables (``[B or 1, C, L]``) looked up by ``labels``."""
        if self.bn is not None:
            return class_affine(self.bn(x), labels, gamma, beta)
        if self.training:
            with torch.no_grad():
                mean, var = batch_stats(x)
                n = x.numel() / x.shape[1]
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var * (n / max(n - 1, 1)), self.momentum)
                self.num_batches_tracked += 1
        else:
            var, mean = self.running_var, self.running_mean
        bsz = x.shape[0]
        gamma = gamma.expand(bsz, -1, -1).contiguous()
        beta = beta.expand(bsz, -1, -1).contiguous()
        return _FusedNormAffine.apply(x, labels.contiguous(), gamma, beta, mean, var, self.eps, self.training)


class ClassMLP(nn.Module):
    """Two-layer MLP(s) ``D -> hidden -> C`` applied to every label's code at once.

    With ``per_class=True`` each label has its own weights (the paper's ``f^l_k``), evaluated as one batched
    matrix product over labels; otherwise one MLP is shared by all labels.

    Init: the first layer is He-normal; the last layer's weights are N(0, (out_std / sqrt(hidden))^2) so the
    output deviates from its bias by about ``out_std`` at initialisation; the last bias is ``out_bias``.
    """

    def __init__(
        self,
        num_labels: int,
        in_dim: int,
        hidden: int,
        out_dim: int,
        per_class: bool = True,
        out_bias: float = 0.0,
        out_std: float = 0.1,
    ) -> None:
        super().__init__()
        n = num_labels if per_class else 1
        self.w1 = nn.Parameter(torch.randn(n, in_dim, hidden) * math.sqrt(2.0 / in_dim))
        self.b1 = nn.Parameter(torch.zeros(n, 1, hidden))
        self.w2 = nn.Parameter(torch.randn(n, hidden, out_dim) * (out_std / math.sqrt(hidden)))
        self.b2 = nn.Parameter(torch.full((n, 1, out_dim), float(out_bias)))

    def forward(self, codes: Tensor) -> Tensor:
        """Map codes ``[B, L, D]`` to ``[B, L, C]``."""
        z = codes.transpose(0, 1)  # [L, B, D]
        h = F.leaky_relu(torch.baddbmm(self.b1, z, self.w1.expand(z.shape[0], -1, -1)), 0.2)
        out = torch.baddbmm(self.b2, h, self.w2.expand(z.shape[0], -1, -1))
        return out.transpose(0, 1)


class SMBlk(ClassModulatedNorm):
    """CSEBGAN semantic modulation block for one layer.

    ``Gamma = f_gamma(gamma_k)`` and ``B = f_beta(beta_k)`` per label ``k`` and image, placed per pixel by
    the label map. Initialisation: the last layer of ``f_gamma`` has bias 1 and ``f_beta`` bias 0, with small
    output weights, so every SMBlk starts as an (almost) plain BatchNorm (Gamma ~= 1 +- 0.1, B ~= 0 +- 0.1).

    Args:
        channels: Feature channels ``C^l``.
        num_labels: ``K + 1``.
        embed_dim: Embedding dimension ``D``.
        hidden: MLP hidden width.
        per_class: Per-class MLP weights (paper) or one MLP shared by all classes.
        fused: See :class:`ClassModulatedNorm`.
    """

    def __init__(
        self, channels: int, num_labels: int, embed_dim: int, hidden: int, per_class: bool = True, fused: bool = True
    ) -> None:
        super().__init__(channels, fused)
        self.f_gamma = ClassMLP(num_labels, embed_dim, hidden, channels, per_class, out_bias=1.0)
        self.f_beta = ClassMLP(num_labels, embed_dim, hidden, channels, per_class, out_bias=0.0)

    def tables(self, gamma_codes: Tensor, beta_codes: Tensor) -> tuple[Tensor, Tensor]:
        """Modulation tables ``[B, C, L]`` (Gamma, B) from codes ``[B, L, D]``."""
        return self.f_gamma(gamma_codes).transpose(1, 2), self.f_beta(beta_codes).transpose(1, 2)

    def forward(self, x: Tensor, labels: Tensor, gamma_codes: Tensor, beta_codes: Tensor) -> Tensor:
        """Modulate ``x`` ``[B, C, H, W]`` by ``labels`` ``[B, H, W]`` and the sampled codes ``[B, L, D]``."""
        gamma, beta = self.tables(gamma_codes, beta_codes)
        return self.modulate(x, labels, gamma, beta)


class CLADENorm(ClassModulatedNorm):
    """Class-adaptive normalisation: learned ``[L, C]`` gamma/beta tables looked up by label (CLADE).

    With ``noise_dim`` set, INADE-style instance noise is added: one noise vector per image and class,
    shared by all layers, is projected to this layer's channels and scaled by a learned per-class factor
    (initialised to 0.1): ``Gamma[b, k] = gamma_k + a_k * (P_gamma z[b, k])``.

    Init: ``gamma = 1``, ``beta = 0`` (a plain BatchNorm at start).
    """

    def __init__(self, channels: int, num_labels: int, noise_dim: int | None = None, fused: bool = True) -> None:
        super().__init__(channels, fused)
        self.gamma = nn.Parameter(torch.ones(num_labels, channels))
        self.beta = nn.Parameter(torch.zeros(num_labels, channels))
        self.noise_dim = noise_dim
        if noise_dim:
            self.proj = nn.Linear(noise_dim, 2 * channels)
            nn.init.normal_(self.proj.weight, 0.0, 1.0 / math.sqrt(noise_dim))
            nn.init.zeros_(self.proj.bias)
            self.noise_scale = nn.Parameter(torch.full((num_labels, 2), 0.1))

    def forward(self, x: Tensor, labels: Tensor, noise: Tensor | None = None) -> Tensor:
        """Modulate ``x`` by ``labels``; ``noise`` ``[B, L, noise_dim]`` when instance noise is enabled."""
        gamma = self.gamma.t()[None]
        beta = self.beta.t()[None]
        if self.noise_dim:
            if noise is None:
                raise ValueError("CLADE with instance noise needs a noise tensor")
            g, bt = self.proj(noise).chunk(2, dim=-1)  # [B, L, C] each
            gamma = gamma + (g * self.noise_scale[None, :, 0:1]).transpose(1, 2)
            beta = beta + (bt * self.noise_scale[None, :, 1:2]).transpose(1, 2)
        return self.modulate(x, labels, gamma, beta)


class SPADENorm(nn.Module):
    """SPADE: BatchNorm without affine, then ``x_hat * (1 + gamma) + beta`` with gamma/beta predicted from
    the one-hot label map by a shared 3x3 convolution (``hidden`` channels, ReLU) and two 3x3 convolutions.
    """

    def __init__(self, channels: int, num_labels: int, hidden: int = 128) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(num_labels, hidden, 3, padding=1), nn.ReLU())
        self.conv_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.conv_beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x: Tensor, onehot: Tensor) -> Tensor:
        """Modulate ``x`` by the one-hot label map ``onehot`` at ``x``'s resolution."""
        h = self.shared(onehot)
        return torch.addcmul(self.conv_beta(h), self.bn(x), 1 + self.conv_gamma(h))
