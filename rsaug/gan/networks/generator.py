"""Generators: CSEBGAN's SENet and the baselines (SPADE, VSPADE, pix2pixHD-style, CLADE/INADE-style).

Every generator follows the interface of ``docs/ARCHITECTURE.md``::

    G = build_generator(cfg)
    image, kl = G(labels, noise=None, real=None)   # labels: LongTensor[B, H, W] in 0..K (K = unknown)
    noise = G.sample_noise(batch, generator=None, device=None)   # None for noise-free models
    noise = G.resample_class(noise, class_index, generator=None)  # only that class's noise changes

``image`` is ``[B, out_bands, H, W]`` in [-1, 1] (tanh); ``kl`` is the (unweighted) KL divergence of VSPADE's
encoder, else ``None``. H and W must be multiples of ``cfg.size_multiple``.

SPADE-layout trunk (SENet, SPADE, VSPADE, CLADE): residual blocks ``head (16nf) -> mid0 (16nf) -> mid1 (16nf)
-> up0 (8nf) -> up1 (4nf) -> up2 (2nf) -> up3 (1nf)``, then LeakyReLU, a 3x3 conv to ``out_bands`` and tanh.
Each block is ``norm -> LeakyReLU(0.2) -> conv3x3`` twice plus a shortcut (``norm -> conv1x1`` when the
width changes), convolutions spectrally normalised (``cfg.spectral_norm_g``). The ``num_upsampling`` x2
nearest upsamplings sit before ``up3, up2, up1, up0, mid0, mid1`` in that order of priority (5 = SPADE's
"normal" layout: start at H/32), and the start size is ``H / 2 ** num_upsampling``.

Padding: the 3x3 convolutions of the trunk, SPADE's start convolution and the output convolution pad with
``cfg.g_padding`` (zeros by default, as in SPADE; ``reflect`` / ``replicate`` remove the zero border that makes the
output's radiometry depend on the image size). SPADE's modulation convolutions on the label map keep zero padding.

Start tensor: CSEBGAN and CLADE look up a learned per-label ``16nf`` vector with the nearest-downsampled
label map (a 1x1 "convolution" over the one-hot map, done as a table lookup); SPADE applies a 3x3 conv to the
downsampled one-hot map; VSPADE maps ``z`` with a linear layer to a ``16nf x s0 x s0`` tensor (``s0`` from
``crop_size``; bilinearly resized when the input size differs from the crop size).

Spatial noise (CSEBGAN with ``cfg.spatial_noise > 0``): the modulation places one vector per (image, class), so
nothing varies inside a class region. With spatial noise, block ``i`` first adds ``strength[c] * field_i`` to
its input, where ``strength`` is a learned ``[C_in]`` parameter (``noise_strength``, initialised to
``cfg.spatial_noise``) and ``field_i`` channel ``i`` of :func:`rsaug.gan.networks.embeddings.spatial_noise_field`
(derived from the embedding noise, so ``G(labels, noise)`` stays deterministic and ``resample_class`` stays
local), nearest-subsampled to the block's resolution like the label map. With ``spatial_noise = 0`` the
parameter does not exist and the generator is exactly the paper's.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrizations

from rsaug.core.classes import IGNORE
from rsaug.gan.config import ModelConfig
from rsaug.gan.networks.embeddings import SemanticEmbeddings, randn, spatial_noise_field
from rsaug.gan.networks.modulation import CLADENorm, SMBlk, SPADENorm

BLOCKS: tuple[tuple[str, int, int], ...] = (
    ("head", 16, 16),
    ("mid0", 16, 16),
    ("mid1", 16, 16),
    ("up0", 16, 8),
    ("up1", 8, 4),
    ("up2", 4, 2),
    ("up3", 2, 1),
)
"""(name, input width / ngf, output width / ngf) of the SPADE-layout residual blocks."""

UPSAMPLE_PRIORITY: tuple[str, ...] = ("up3", "up2", "up1", "up0", "mid0", "mid1")


def to_model_labels(mask: Tensor, num_classes: int) -> Tensor:
    """Internal-convention mask (0..K-1, 255 = unknown) to generator labels (0..K, K = unknown), int64.

    Raises:
        ValueError: If the mask holds a value that is neither a class nor :data:`rsaug.core.classes.IGNORE`.
    """
    m = mask.long()
    bad = (m >= num_classes) & (m != IGNORE) | (m < 0)
    if bool(bad.any()):
        vals = sorted({int(v) for v in m[bad].unique()[:10]})
        raise ValueError(f"mask values {vals} are outside the scheme (0..{num_classes - 1}, {IGNORE} = unknown)")
    return torch.where(m == IGNORE, torch.full_like(m, num_classes), m)


def label_onehot(labels: Tensor, num_labels: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """One-hot ``[B, L, H, W]`` float map of long labels ``[B, H, W]`` (the discriminator's label input)."""
    return F.one_hot(labels, num_labels).permute(0, 3, 1, 2).to(dtype).contiguous()


def init_weights(module: nn.Module, kind: str, gain: float) -> None:
    """Initialise the weights of convolutions and linear layers of ``module`` in place (before spectral norm).

    ``xavier``: Xavier-normal with ``gain`` (SPADE's default 0.02); ``normal``: N(0, gain^2); ``kaiming``:
    He-normal (fan in); ``default``: keep PyTorch's. Biases are zeroed except with ``default``.
    """
    if kind == "default":
        return
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if kind == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif kind == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif kind == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class SNConv2d(nn.Conv2d):
    """Convolution with spectral normalisation, ``conv(x, W / sigma(W)) + b``, computed the cheaper way round.

    ``sigma`` is estimated as in :func:`torch.nn.utils.parametrizations.spectral_norm` (one power iteration
    per training forward on ``W`` reshaped to ``[out, in*k*k]``, ``u`` / ``v`` buffers, gradient through
    ``sigma = u^T W v``). Because ``conv(x, W / sigma) = conv(x, W) / sigma``, the division is applied to
    whichever is smaller, the weight or the output: the 16ngf trunk layers at low resolution have weights
    (9.4 M values at ngf 64) much larger than their outputs, and dividing them costs a weight-sized pass
    forward and several backward.

    The matrix whose norm is estimated is ``W`` with its columns in ``(kh, kw, in)`` order (a view of
    channels-last weights; the column order does not change the spectral norm). 1x1 convolutions on
    channels-last inputs are computed as a matrix product over the pixel view (PyTorch's oneDNN path falls
    back to a slow kernel for them).
    """

    u: Tensor  # power-iteration buffers registered in __init__
    v: Tensor

    def __init__(self, *args, eps: float = 1e-12, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps
        w = self._matrix(self.weight.detach())
        self.register_buffer("u", F.normalize(torch.randn(w.shape[0]), dim=0, eps=eps))
        self.register_buffer("v", F.normalize(torch.randn(w.shape[1]), dim=0, eps=eps))
        self.reset_power_iteration()

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> SNConv2d:
        """Spectrally normalised copy of ``conv`` (same weights, 15 power iterations to start)."""
        sn = cls(
            conv.in_channels,
            conv.out_channels,
            conv.kernel_size,
            conv.stride,
            conv.padding,
            conv.dilation,
            conv.groups,
            conv.bias is not None,
            conv.padding_mode,
        )
        with torch.no_grad():
            sn.weight.copy_(conv.weight)
            if conv.bias is not None:
                assert sn.bias is not None  # built with bias=True just above
                sn.bias.copy_(conv.bias)
        sn.reset_power_iteration()
        return sn

    @staticmethod
    def _matrix(w: Tensor) -> Tensor:
        return w.permute(0, 2, 3, 1).reshape(w.shape[0], -1)

    @torch.no_grad()
    def reset_power_iteration(self, iterations: int = 15) -> None:
        """Run power iterations from the current ``u`` / ``v`` (after re-initialising the weight)."""
        for _ in range(iterations):
            self._power_step()

    @torch.no_grad()
    def _power_step(self) -> None:
        w = self._matrix(self.weight)
        self.u.copy_(F.normalize(torch.mv(w, self.v), dim=0, eps=self.eps))
        self.v.copy_(F.normalize(torch.mv(w.t(), self.u), dim=0, eps=self.eps))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            self._power_step()
        w = self.weight
        # clones: a second forward before backward (e.g. two noise samples) updates the buffers in place
        sigma = torch.dot(self.u.clone(), torch.mv(self._matrix(w), self.v.clone()))
        b, _, h, wd = x.shape
        out_numel = b * self.out_channels * (h // self.stride[0]) * (wd // self.stride[1])
        pointwise = (
            self.kernel_size == (1, 1)
            and self.stride == (1, 1)
            and self.groups == 1
            and self.padding in ((0, 0), "valid")
            and not x.is_contiguous()
            and x.is_contiguous(memory_format=torch.channels_last)
        )
        if pointwise:
            xv = x.permute(0, 2, 3, 1)  # contiguous [B, H, W, C]
            return F.linear(xv, w.reshape(w.shape[0], -1) / sigma, self.bias).permute(0, 3, 1, 2)
        if w.numel() <= out_numel:
            return self._conv_forward(x, w / sigma, self.bias)
        out = self._conv_forward(x, w, None)
        if self.bias is None:
            return out / sigma
        return torch.addcmul(self.bias.view(1, -1, 1, 1), out, 1.0 / sigma)


def _sn(module: nn.Conv2d, enabled: bool) -> nn.Module:
    return SNConv2d.from_conv(module) if enabled else module


def _check_labels(labels: Tensor, num_labels: int, multiple: int) -> None:
    if labels.dim() != 3:
        raise ValueError(f"labels must be [B, H, W], got shape {list(labels.shape)}")
    if labels.dtype != torch.long:
        raise ValueError(f"labels must be int64 (torch.long), got {labels.dtype}")
    h, w = labels.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"label map size {h}x{w} is not a multiple of {multiple}; pad it first")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_labels:
        raise ValueError(
            f"label values must lie in 0..{num_labels - 1} (unknown = {num_labels - 1}), "
            f"got {lo}..{hi}; convert masks with rsaug.gan.networks.generator.to_model_labels"
        )


def nearest_resize(t: Tensor, h: int, w: int) -> Tensor:
    """Nearest-neighbour resize of a ``[B, H, W]`` map to ``h x w`` (same dtype).

    Integer factors take every ``H // h``-th row and ``W // w``-th column starting at 0 (a strided view, not
    copied); other sizes use ``F.interpolate(mode="nearest")``.
    """
    full_h, full_w = t.shape[-2:]
    if (h, w) == (full_h, full_w):
        return t
    if full_h % h == 0 and full_w % w == 0:
        return t[:, :: full_h // h, :: full_w // w]
    return F.interpolate(t[:, None].float(), size=(h, w), mode="nearest")[:, 0].to(t.dtype)


class ModContext:
    """Per-forward state shared by the modulation layers: label maps per resolution, codes, noise, and the
    spatial noise fields (``[B, n_blocks, H, W]`` at the label resolution, or ``None``).
    """

    def __init__(
        self,
        labels: Tensor,
        num_labels: int,
        codes: Tensor | None = None,
        noise: Tensor | None = None,
        onehot: bool = False,
    ) -> None:
        self.labels = labels
        self.num_labels = num_labels
        self.codes = codes
        self.noise = noise
        self.spatial: Tensor | None = None
        self._labels: dict[tuple[int, int], Tensor] = {}
        self._onehot: dict[tuple[int, int], Tensor] = {}
        self._want_onehot = onehot

    def labels_at(self, h: int, w: int) -> Tensor:
        """Nearest-neighbour label map at ``h x w`` (cached)."""
        key = (h, w)
        if key not in self._labels:
            self._labels[key] = nearest_resize(self.labels, h, w).contiguous()
        return self._labels[key]

    def spatial_at(self, index: int, h: int, w: int) -> Tensor:
        """Spatial noise field ``index`` at ``h x w``, ``[B, h, w]``, subsampled exactly as :meth:`labels_at`.

        Raises:
            ValueError: If no spatial noise was set for this forward.
        """
        if self.spatial is None:
            raise ValueError("this generator uses spatial noise but none was set")
        return nearest_resize(self.spatial[:, index], h, w)

    def onehot_at(self, h: int, w: int, dtype: torch.dtype) -> Tensor:
        """One-hot map at ``h x w`` (cached)."""
        key = (h, w)
        if key not in self._onehot:
            self._onehot[key] = label_onehot(self.labels_at(h, w), self.num_labels, dtype)
        return self._onehot[key]


class _Norm(nn.Module):
    """Adapter giving every modulation layer the signature ``norm(x, ctx)``."""

    def __init__(self, kind: str, channels: int, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.kind = kind
        self.layer = layer
        L = cfg.num_labels
        if kind == "csebgan":
            self.norm: nn.Module = SMBlk(
                channels, L, cfg.embed_dim, cfg.mlp_hidden, cfg.per_class_mlp, cfg.fused_modulation
            )
        elif kind == "clade":
            self.norm = CLADENorm(channels, L, cfg.clade_noise_dim if cfg.clade_noise else None, cfg.fused_modulation)
        else:
            self.norm = SPADENorm(channels, L, cfg.spade_hidden)

    def forward(self, x: Tensor, ctx: ModContext) -> Tensor:
        h, w = x.shape[-2:]
        if self.kind == "csebgan":
            codes = ctx.codes  # [B, S, L, 2, D]
            assert codes is not None
            s = self.layer if codes.shape[1] > 1 else 0
            return self.norm(x, ctx.labels_at(h, w), codes[:, s, :, 0], codes[:, s, :, 1])
        if self.kind == "clade":
            return self.norm(x, ctx.labels_at(h, w), ctx.noise)
        return self.norm(x, ctx.onehot_at(h, w, x.dtype))


class ModResBlock(nn.Module):
    """SPADE-style residual block whose normalisations are modulation layers (SMResBlk for CSEBGAN).

    With ``cfg.spatial_noise > 0`` (CSEBGAN) the block owns ``noise_strength`` (``[fin]``, initialised to
    ``cfg.spatial_noise``) and first adds ``noise_strength[c] * field`` to its input, ``field`` being spatial
    noise field ``index`` at the input's resolution (:meth:`ModContext.spatial_at`).
    """

    def __init__(
        self,
        fin: int,
        fout: int,
        kind: str,
        cfg: ModelConfig,
        next_layer: Callable[[], int],
        index: int = 0,
    ) -> None:
        super().__init__()
        self.index = index
        fmid = min(fin, fout)
        self.learned_shortcut = fin != fout
        conv_0 = nn.Conv2d(fin, fmid, 3, padding=1, padding_mode=cfg.g_padding)
        conv_1 = nn.Conv2d(fmid, fout, 3, padding=1, padding_mode=cfg.g_padding)
        conv_s = nn.Conv2d(fin, fout, 1, bias=False) if self.learned_shortcut else None
        for conv in (conv_0, conv_1, conv_s):
            if conv is not None:
                init_weights(conv, cfg.init, cfg.init_gain)
        # registered in this order, before the norms: the parameter and state_dict order depend on it
        self.conv_0 = _sn(conv_0, cfg.spectral_norm_g)
        self.conv_1 = _sn(conv_1, cfg.spectral_norm_g)
        self.conv_s = _sn(conv_s, cfg.spectral_norm_g) if conv_s is not None else None
        self.norm_0 = _Norm(kind, fin, cfg, next_layer())
        self.norm_1 = _Norm(kind, fmid, cfg, next_layer())
        self.norm_s = _Norm(kind, fin, cfg, next_layer()) if self.learned_shortcut else None
        # registered last and only when enabled: models without spatial noise keep their exact state_dict
        self.noise_strength: nn.Parameter | None = None
        if kind == "csebgan" and cfg.spatial_noise > 0:
            self.noise_strength = nn.Parameter(torch.full((fin,), float(cfg.spatial_noise)))

    def add_spatial_noise(self, x: Tensor, ctx: ModContext) -> Tensor:
        """``x + noise_strength[c] * field`` in ``x``'s dtype and memory layout (``x`` itself when disabled)."""
        if self.noise_strength is None:
            return x
        h, w = x.shape[-2:]
        field = ctx.spatial_at(self.index, h, w)[:, None].to(x.dtype)
        out = torch.addcmul(x, field, self.noise_strength.to(x.dtype).view(1, -1, 1, 1))
        if (not x.is_contiguous()) and x.is_contiguous(memory_format=torch.channels_last):
            out = out.contiguous(memory_format=torch.channels_last)
        return out

    def forward(self, x: Tensor, ctx: ModContext) -> Tensor:
        x = self.add_spatial_noise(x, ctx)
        if self.conv_s is not None and self.norm_s is not None:
            x_s = self.conv_s(self.norm_s(x, ctx))
        else:
            x_s = x
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, ctx), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, ctx), 0.2))
        return x_s + dx


def count_modulation_layers(cfg: ModelConfig) -> int:
    """Number of modulation layers in the SPADE-layout trunk (= embedding sets when not shared)."""
    return sum(2 + (fin != fout) for _, fin, fout in BLOCKS)


class _Generator(nn.Module):
    """Common API of all generators."""

    cfg: ModelConfig

    @property
    def num_labels(self) -> int:
        """``K + 1`` input labels."""
        return self.cfg.num_labels

    def sample_noise(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor | None:
        """Noise for ``batch`` images (``None`` for noise-free models)."""
        return None

    def resample_class(
        self, noise: Tensor | None, class_index: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """Copy of ``noise`` in which only label ``class_index``'s noise is redrawn.

        Raises:
            ValueError: If the model has no per-class noise.
        """
        raise ValueError(f"model {self.cfg.model!r} has no per-class noise to resample")

    def _device(self) -> torch.device:
        return next(self.parameters()).device


class SPADELayoutGenerator(_Generator):
    """SENet (CSEBGAN), SPADE, VSPADE and CLADE/INADE generators on the shared SPADE-layout trunk.

    Args:
        cfg: Model configuration; ``cfg.model`` picks the modulation.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        kind = {"csebgan": "csebgan", "clade": "clade", "spade": "spade", "vspade": "spade"}[cfg.model]
        self.kind = kind
        nf = cfg.ngf
        L = cfg.num_labels
        counter = iter(range(10_000))
        ups = set(UPSAMPLE_PRIORITY[: cfg.num_upsampling])
        self.upsample_before = tuple(name in ups for name, _, _ in BLOCKS)
        self.blocks = nn.ModuleList(
            ModResBlock(fin * nf, fout * nf, kind, cfg, lambda: next(counter), index=i)
            for i, (_, fin, fout) in enumerate(BLOCKS)
        )
        self.spatial_noise = kind == "csebgan" and cfg.spatial_noise > 0
        self.num_mod_layers = next(counter)
        top = 16 * nf
        if cfg.model == "vspade":
            self.s0 = cfg.crop_size // 2**cfg.num_upsampling
            self.fc: nn.Module = nn.Linear(cfg.z_dim, top * self.s0 * self.s0)
            self.encoder: nn.Module | None = ConvEncoder(cfg)
        elif cfg.model == "spade":
            self.fc = nn.Conv2d(L, top, 3, padding=1, padding_mode=cfg.g_padding)
            self.encoder = None
        else:
            self.start = nn.Embedding(L, top)
            nn.init.normal_(self.start.weight, 0.0, 1.0)
            self.encoder = None
        if hasattr(self, "fc"):
            init_weights(self.fc, cfg.init, cfg.init_gain)
        self.conv_img = nn.Conv2d(nf, cfg.out_bands, 3, padding=1, padding_mode=cfg.g_padding)
        init_weights(self.conv_img, cfg.init, cfg.init_gain)
        self.embeddings: SemanticEmbeddings | None = None
        if kind == "csebgan":
            sets = 1 if cfg.share_embeddings else self.num_mod_layers
            self.embeddings = SemanticEmbeddings(L, cfg.embed_dim, sets)
        if cfg.channels_last:  # 4-d weights in the activations' layout: no per-call weight reorders
            self.to(memory_format=torch.channels_last)

    # -- noise -------------------------------------------------------------------------------------------
    def sample_noise(
        self, batch: int, generator: torch.Generator | None = None, device: torch.device | str | None = None
    ) -> Tensor | None:
        """CSEBGAN: ``[B, S, L, 2, D]`` embedding noise; VSPADE: ``[B, z_dim]``; CLADE with instance noise:
        ``[B, L, clade_noise_dim]``; SPADE / CLADE without noise: ``None``.
        """
        device = self._device() if device is None else device
        if self.embeddings is not None:
            return self.embeddings.sample_noise(batch, generator, device)
        if self.cfg.model == "vspade":
            return randn((batch, self.cfg.z_dim), generator, device)
        if self.cfg.model == "clade" and self.cfg.clade_noise:
            return randn((batch, self.num_labels, self.cfg.clade_noise_dim), generator, device)
        return None

    def resample_class(
        self, noise: Tensor | None, class_index: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """See :meth:`_Generator.resample_class`; supported by CSEBGAN and CLADE with instance noise."""
        if noise is None:
            raise ValueError("no noise given to resample")
        if self.embeddings is not None:
            return self.embeddings.resample_class(noise, class_index, generator)
        if self.cfg.model == "clade" and self.cfg.clade_noise:
            if not 0 <= int(class_index) < self.num_labels:
                raise ValueError(f"class index {class_index} out of range 0..{self.num_labels - 1}")
            out = noise.clone()
            out[:, int(class_index)] = randn((noise.shape[0], noise.shape[2]), generator, noise.device, noise.dtype)
            return out
        return super().resample_class(noise, class_index, generator)

    # -- forward -----------------------------------------------------------------------------------------
    def forward(
        self, labels: Tensor, noise: Tensor | None = None, real: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Generate images for ``labels`` (see module docstring)."""
        cfg = self.cfg
        _check_labels(labels, self.num_labels, cfg.size_multiple)
        b, h, w = labels.shape
        n = cfg.num_upsampling
        sh, sw = h >> n, w >> n
        if cfg.g_padding == "reflect" and min(sh, sw) < 2:
            raise ValueError(
                f"reflect padding needs the coarsest map to be at least 2 x 2: a {h} x {w} input gives "
                f"{sh} x {sw} after {n} halvings (use inputs of at least {2 << n} px)"
            )
        kl = None
        ctx = ModContext(labels, self.num_labels, onehot=self.kind == "spade")
        if self.embeddings is not None:
            if noise is None:
                noise = self.embeddings.sample_noise(b, device=labels.device)
            ctx.codes = self.embeddings(noise)
            if self.spatial_noise:
                ctx.spatial = spatial_noise_field(labels, noise, len(self.blocks))
        elif cfg.model == "clade" and cfg.clade_noise:
            ctx.noise = noise if noise is not None else self.sample_noise(b, device=labels.device)
        if cfg.model == "vspade":
            if real is not None:
                assert self.encoder is not None
                mu, logvar = self.encoder(real)
                z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
                kl = kl_divergence(mu, logvar)
            else:
                z = noise if noise is not None else torch.randn(b, cfg.z_dim, device=labels.device)
            x = self.fc(z).view(b, -1, self.s0, self.s0)
            if (sh, sw) != (self.s0, self.s0):
                x = F.interpolate(x, size=(sh, sw), mode="bilinear", align_corners=False)
        elif cfg.model == "spade":
            x = self.fc(ctx.onehot_at(sh, sw, torch.float32))
        else:
            x = self.start(ctx.labels_at(sh, sw)).permute(0, 3, 1, 2)
        x = x.contiguous(memory_format=torch.channels_last if cfg.channels_last else torch.contiguous_format)
        for up, block in zip(self.upsample_before, self.blocks):
            if up:
                x = F.interpolate(x, scale_factor=2.0, mode="nearest")
            x = block(x, ctx)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.tanh(x).contiguous(), kl


def kl_divergence(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)), summed over latent dimensions, averaged over the batch."""
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / mu.shape[0]


class ConvEncoder(nn.Module):
    """VSPADE image encoder: stride-2 3x3 convolutions (ndf .. 8ndf, instance norm, LeakyReLU 0.2, spectral
    norm) down to 4x4 at the crop size (six of them at 256 px, as SPADE), then linear heads for ``mu`` and
    ``logvar``. Images of another size are bilinearly resized to the crop size first.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        nf = cfg.ndf
        self.size = cfg.crop_size
        n = max(1, min(6, cfg.crop_size.bit_length() - 1 - 2))
        widths = [cfg.out_bands] + [min(nf * 2**i, 8 * nf) for i in range(n)]
        layers: list[nn.Module] = []
        for i in range(n):
            conv = nn.Conv2d(widths[i], widths[i + 1], 3, stride=2, padding=1)
            init_weights(conv, cfg.init, cfg.init_gain)
            layers += [
                parametrizations.spectral_norm(conv),
                nn.InstanceNorm2d(widths[i + 1], affine=False),
                nn.LeakyReLU(0.2),
            ]
        self.body = nn.Sequential(*layers)
        self.fc_mu = nn.Linear(widths[-1] * 16, cfg.z_dim)
        self.fc_var = nn.Linear(widths[-1] * 16, cfg.z_dim)

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        """``(mu, logvar)`` of ``q(z | image)``, each ``[B, z_dim]``."""
        if image.shape[-2:] != (self.size, self.size):
            image = F.interpolate(image, size=(self.size, self.size), mode="bilinear", align_corners=False)
        x = self.body(image)
        x = F.adaptive_avg_pool2d(x, 4).flatten(1)
        return self.fc_mu(x), self.fc_var(x)


class Pix2PixHDGenerator(_Generator):
    """pix2pixHD-style global generator: one-hot label map in, image out, no noise.

    ``c7s1-ngf`` (reflection padding, instance norm, ReLU), ``p2p_downsampling`` stride-2 3x3 convolutions
    doubling the width (capped at 16ngf), ``p2p_blocks`` residual blocks, as many transposed convolutions
    back up, and a 7x7 convolution to ``out_bands`` with tanh.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        nf = cfg.ngf
        L = cfg.num_labels
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(L, nf, 7), nn.InstanceNorm2d(nf), nn.ReLU(True)]
        ch = nf
        widths = []
        for _ in range(cfg.p2p_downsampling):
            out = min(ch * 2, 16 * nf)
            layers += [nn.Conv2d(ch, out, 3, stride=2, padding=1), nn.InstanceNorm2d(out), nn.ReLU(True)]
            widths.append(ch)
            ch = out
        for _ in range(cfg.p2p_blocks):
            layers.append(_P2PResBlock(ch))
        for prev in reversed(widths):
            layers += [
                nn.ConvTranspose2d(ch, prev, 3, stride=2, padding=1, output_padding=1),
                nn.InstanceNorm2d(prev),
                nn.ReLU(True),
            ]
            ch = prev
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, cfg.out_bands, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self.model, cfg.init, cfg.init_gain)

    def forward(
        self, labels: Tensor, noise: Tensor | None = None, real: Tensor | None = None
    ) -> tuple[Tensor, Tensor | None]:
        """Generate images for ``labels``; ``noise`` and ``real`` are ignored."""
        _check_labels(labels, self.num_labels, self.cfg.size_multiple)
        return self.model(label_onehot(labels, self.num_labels)), None


class _P2PResBlock(nn.Module):
    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
            nn.ReLU(True),
            nn.ReflectionPad2d(1),
            nn.Conv2d(ch, ch, 3),
            nn.InstanceNorm2d(ch),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def build_generator(cfg: ModelConfig) -> _Generator:
    """The generator of ``cfg.model`` (``csebgan``, ``spade``, ``vspade``, ``pix2pixhd`` or ``clade``)."""
    cfg.validate()
    if cfg.model == "pix2pixhd":
        return Pix2PixHDGenerator(cfg)
    return SPADELayoutGenerator(cfg)


__all__ = [
    "ConvEncoder",
    "Pix2PixHDGenerator",
    "SPADELayoutGenerator",
    "build_generator",
    "count_modulation_layers",
    "init_weights",
    "kl_divergence",
    "label_onehot",
    "nearest_resize",
    "to_model_labels",
]
