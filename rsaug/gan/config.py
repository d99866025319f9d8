"""Every configuration of the GAN stage, and its one preset registry; all saved as JSON next to every artefact.

:class:`ModelConfig` describes one generator / discriminator / conductor triple (CSEBGAN or a baseline);
:class:`LossConfig` holds every loss weight; :class:`TrainConfig` everything else about a training run. All
three round-trip through plain JSON dictionaries with ``to_dict`` / ``from_dict`` (``from_dict`` rejects unknown
keys and invalid values with :class:`rsaug.core.errors.InputError`, so a hand-edited or foreign config file
fails with a one-line message).

Presets (:data:`PRESETS`, one :class:`Preset` per name holding both its architecture and its training options):
``cpu-small`` (64 px, narrow widths, meant to visibly learn in minutes on two CPU cores), ``cpu-long`` (the same
networks trained 6x longer, within two hours on two CPU cores) and ``paper`` (256 px, ngf 64, the paper's widths,
200 epochs). :func:`model_preset` builds the :class:`ModelConfig` of a preset,
:func:`preset_configs` its :class:`TrainConfig` and model overrides.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args

from rsaug.core.errors import InputError, option
from rsaug.core.files import write_json
from rsaug.gan.augment import check_probability, parse_policy

MODELS: tuple[str, ...] = ("csebgan", "spade", "vspade", "pix2pixhd", "clade")
"""Generator families understood by :func:`rsaug.gan.networks.generator.build_generator`."""

MODELS_WITH_NOISE: tuple[str, ...] = ("csebgan", "vspade", "clade")
"""Models whose generator takes noise (``clade`` only with ``clade_noise=True``)."""

GPadding = Literal["zeros", "reflect", "replicate"]
"""Padding modes of :attr:`ModelConfig.g_padding` (``torch.nn.Conv2d``'s ``padding_mode`` names)."""

G_PADDINGS: tuple[GPadding, ...] = get_args(GPadding)
"""The values of :data:`GPadding`, for validation."""


def _check(cond: bool, path: str | os.PathLike[str] | None, problem: str) -> None:
    if not cond:
        raise InputError(path, problem)


@dataclass
class ModelConfig:
    """Architecture of a generator (CSEBGAN or a baseline), its discriminator and its conductor.

    Label convention: the generator takes labels ``0..K`` where ``K = num_classes`` is the unknown label, so
    it sees ``K + 1`` label values; the conductor predicts the ``K`` real classes only.

    Attributes:
        model: Generator family: ``csebgan``, ``spade``, ``vspade``, ``pix2pixhd`` or ``clade``.
        num_classes: Number of real classes ``K`` (unknown excluded).
        out_bands: Number of image bands produced by the generator and read by D and C (3 RGB, 4 RGB+NIR...).
        crop_size: Training crop size in pixels (square); must be divisible by ``2 ** num_upsampling``.
        ngf: Base width of the generator (SPADE layout: 16, 16, 16, 8, 4, 2, 1 times ngf).
        ndf: Base width of the discriminator (and of the VSPADE image encoder).
        num_upsampling: Number of x2 upsamplings in SPADE-layout generators (1..6); sets the start size
            ``H / 2 ** num_upsampling``.
        embed_dim: Dimension of each CSEBGAN semantic embedding (gamma and beta codes).
        mlp_hidden: Hidden width of the per-layer two-layer MLPs f^l_gamma, f^l_beta.
        per_class_mlp: CSEBGAN: one MLP per class and layer (the paper's f^l_{gamma,k}); else one MLP per
            layer shared by all classes.
        share_embeddings: CSEBGAN: one embedding sample per class shared by all layers (paper). ``False`` is
            the ablation where every modulation layer has its own embedding parameters and its own sample.
        fused_modulation: Fold batch-norm statistics into per-(image, class, channel) scale/shift tables and
            apply them with one gather-based affine (a custom autograd function that never stores full-size
            gamma/beta maps). ``False`` uses ``nn.BatchNorm2d(affine=False)`` + lookup, which
            ``nn.SyncBatchNorm.convert_sync_batchnorm`` can convert for multi-GPU training.
        channels_last: Run SPADE-layout generators in channels-last memory format (per-pixel lookups become
            contiguous row copies; oneDNN / cuDNN convolutions prefer it). Outputs are ordinary NCHW tensors.
        spectral_norm_g: Spectral normalisation on the generator's residual-block convolutions.
        spade_hidden: Hidden width of the SPADE norm's shared convolution.
        z_dim: Latent dimension of VSPADE's encoder / noise.
        clade_noise: CLADE: add INADE-style per-class instance noise (shared by all layers, projected per layer).
        clade_noise_dim: Dimension of that noise.
        p2p_downsampling: pix2pixHD-style generator: number of stride-2 downsamplings.
        p2p_blocks: pix2pixHD-style generator: number of residual blocks at the bottleneck.
        n_layers_d: Layers per PatchGAN discriminator.
        num_d: Number of discriminator scales.
        cond_width: Base width of the conductor U-Net.
        cond_depth: Number of down/up levels of the conductor U-Net.
        init: Weight init of convolutions: ``xavier``, ``normal`` (N(0, init_gain)), ``kaiming`` or ``default``
            (PyTorch's).
        init_gain: Gain / standard deviation used by ``init``.
        spatial_noise: CSEBGAN: initial per-channel strength of per-pixel Gaussian noise added to the input of
            every residual block of the generator (a learned ``[C]`` strength per block), so the generator can
            paint texture inside large uniform class regions. The noise field is derived deterministically from
            the embedding noise (see :func:`rsaug.gan.networks.embeddings.spatial_noise_field`). ``0`` (default)
            = off: the paper's generator, unchanged (no extra parameters). At most 10.
        g_padding: Padding of the 3x3 convolutions of SPADE-layout generators: ``zeros`` (the paper's, SPADE's),
            ``reflect`` or ``replicate``. With zero padding every position of a small coarse map (4 x 4 on a
            64-px crop) sits at a zero border during training, while most positions of the same map on a larger
            synthesis tile are interior, and the output's brightness changes with the image size
            (docs/results/gid15-generator-levers-val/); reflect / replicate padding gives the network no zero
            border to tell the two apart. ``reflect`` needs every coarse map to be at least 2 x 2.
        band_low: Per-band value mapped to -1 (``None`` until the training data is known).
        band_high: Per-band value mapped to +1.
    """

    model: str = "csebgan"
    num_classes: int = 15
    out_bands: int = 3
    crop_size: int = 256
    ngf: int = 64
    ndf: int = 64
    num_upsampling: int = 5
    embed_dim: int = 64
    mlp_hidden: int = 128
    per_class_mlp: bool = True
    share_embeddings: bool = True
    fused_modulation: bool = True
    channels_last: bool = True
    spectral_norm_g: bool = True
    spade_hidden: int = 128
    z_dim: int = 256
    clade_noise: bool = False
    clade_noise_dim: int = 64
    p2p_downsampling: int = 4
    p2p_blocks: int = 9
    n_layers_d: int = 4
    num_d: int = 2
    cond_width: int = 32
    cond_depth: int = 4
    init: str = "xavier"
    init_gain: float = 0.02
    spatial_noise: float = 0.0
    g_padding: GPadding = "zeros"
    band_low: list[float] | None = None
    band_high: list[float] | None = None

    def __post_init__(self) -> None:
        self.validate()

    @property
    def num_labels(self) -> int:
        """Number of generator input labels, ``K + 1`` (the unknown label included)."""
        return self.num_classes + 1

    @property
    def has_noise(self) -> bool:
        """Whether the generator samples noise (and so supports diversity / resampling)."""
        return self.model in ("csebgan", "vspade") or (self.model == "clade" and self.clade_noise)

    @property
    def size_multiple(self) -> int:
        """Input height and width must be multiples of this."""
        if self.model == "pix2pixhd":
            return 2**self.p2p_downsampling
        return 2**self.num_upsampling

    def validate(self, path: str | os.PathLike[str] | None = None) -> None:
        """Check every field.

        Raises:
            InputError: On the first invalid value.
        """
        _check(self.model in MODELS, path, f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        ints = {
            "num_classes": 1,
            "out_bands": 1,
            "crop_size": 1,
            "ngf": 1,
            "ndf": 1,
            "num_upsampling": 1,
            "embed_dim": 1,
            "mlp_hidden": 1,
            "spade_hidden": 1,
            "z_dim": 1,
            "clade_noise_dim": 1,
            "p2p_downsampling": 0,
            "p2p_blocks": 0,
            "n_layers_d": 1,
            "num_d": 1,
            "cond_width": 1,
            "cond_depth": 1,
        }
        for name, low in ints.items():
            v = getattr(self, name)
            _check(
                isinstance(v, int) and not isinstance(v, bool) and v >= low,
                path,
                f"model config: {name} must be an integer >= {low}, got {v!r}",
            )
        _check(self.num_classes <= 254, path, "model config: num_classes must be at most 254")
        _check(self.num_upsampling <= 6, path, f"model config: {option('num_upsampling')} must be between 1 and 6")
        _check(
            self.crop_size % self.size_multiple == 0,
            path,
            f"model config: crop_size {self.crop_size} is not a multiple of {self.size_multiple} "
            f"(2 ** num_upsampling / 2 ** p2p_downsampling)",
        )
        _check(
            self.init in ("xavier", "normal", "kaiming", "default"),
            path,
            f"model config: init must be xavier, normal, kaiming or default, got {self.init!r}",
        )
        flags = (
            "per_class_mlp",
            "share_embeddings",
            "fused_modulation",
            "channels_last",
            "spectral_norm_g",
            "clade_noise",
        )
        for name in flags:
            _check(isinstance(getattr(self, name), bool), path, f"model config: {name} must be true or false")
        sn = self.spatial_noise
        _check(
            isinstance(sn, (int, float)) and not isinstance(sn, bool) and 0.0 <= sn <= 10.0,
            path,
            f"model config: {option('spatial_noise')} must be a number between 0 and 10, got {sn!r}",
        )
        self.spatial_noise = float(sn)
        _check(
            self.spatial_noise == 0.0 or self.model == "csebgan",
            path,
            f"model config: {option('spatial_noise')} needs {option('model')} csebgan, got {self.model!r} "
            f"(0 = off for other models)",
        )
        _check(
            self.g_padding in G_PADDINGS,
            path,
            f"model config: {option('g_padding')} must be one of {', '.join(G_PADDINGS)}, got {self.g_padding!r}",
        )
        _check(
            self.g_padding == "zeros" or self.model != "pix2pixhd",
            path,
            f"model config: {option('g_padding')} applies to SPADE-layout generators; pix2pixhd has its own "
            f"reflection padding (use zeros)",
        )
        for name in ("band_low", "band_high"):
            v = getattr(self, name)
            if v is not None:
                _check(
                    isinstance(v, (list, tuple)) and len(v) == self.out_bands,
                    path,
                    f"model config: {name} must list one value per output band ({self.out_bands})",
                )
                setattr(self, name, [float(x) for x in v])

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> ModelConfig:
        """Build from :meth:`to_dict` output; missing keys take their defaults.

        Raises:
            InputError: On unknown keys or invalid values (``path`` names the file they came from).
        """
        return _from_dict(cls, data, path)


@dataclass
class LossConfig:
    """Weights of every loss term (the paper's values by default).

    Attributes:
        gan_mode: Adversarial loss; only ``hinge`` is implemented.
        lambda_gan: Weight of the generator's adversarial term.
        lambda_fm: Discriminator feature matching (applied as ``lambda_fm / num_d`` per scale).
        lambda_vgg: VGG19 perceptual loss (0 disables it and avoids loading VGG).
        vgg_feature_scale: The perceptual L1 distances are multiplied by this. The offline VGG19 takes
            BGR 0-255 inputs, and its features are about 130x those of torchvision's VGG19 on
            ImageNet-normalised inputs, so the default ``1/130`` puts the loss on SPADE's scale and the default
            weight 10 means what it means in SPADE.
        lambda_kl: VSPADE KL divergence.
        lambda_cond: Conductor loss (L_c^fake in the generator's loss, L_c^real + L_c^fake for the conductor;
            with ``TrainConfig.conductor_objective="oasis"`` the OASIS terms, which then must be weighted > 0).
        cond_class_balanced: Weight the conductor CE per batch by ``numel / (n_present * count_c)`` (OASIS).
            The ``oasis`` conductor objective always weights its class terms so; this flag is for ``segmenter``.
        lambda_moments: Per-label, per-band moment matching of fake and real pixels over the batch
            (:func:`rsaug.gan.losses.class_moment_loss`; 0 = off, the paper's training): anchors every class's
            brightness and contrast, and the unknown areas', to the real tiles'.
        lambda_ds: Diversity-sensitive loss of Yang et al. 2019 (0 = off).
        ds_tau: Clamp tau of the diversity-sensitive ratio.
        lambda_labelmix: OASIS's LabelMix consistency regulariser of the ``oasis`` conductor (0 = off, the
            default; OASIS uses 10); needs ``TrainConfig.conductor_objective="oasis"``.
    """

    gan_mode: str = "hinge"
    lambda_gan: float = 1.0
    lambda_fm: float = 10.0
    lambda_vgg: float = 10.0
    vgg_feature_scale: float = 1.0 / 130.0
    lambda_kl: float = 0.05
    lambda_cond: float = 1.0
    cond_class_balanced: bool = False
    lambda_moments: float = 0.0
    lambda_ds: float = 0.0
    ds_tau: float = 1.0
    lambda_labelmix: float = 0.0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, path: str | os.PathLike[str] | None = None) -> None:
        """Check every field.

        Raises:
            InputError: On the first invalid value.
        """
        _check(self.gan_mode == "hinge", path, f"loss config: gan_mode must be 'hinge', got {self.gan_mode!r}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name.startswith(("lambda_", "vgg_", "ds_")):
                _check(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0,
                    path,
                    f"loss config: {f.name} must be a number >= 0, got {v!r}",
                )
                setattr(self, f.name, float(v))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dictionary of every field."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: str | os.PathLike[str] | None = None) -> LossConfig:
        """Build from :meth:`to_dict` output; missing keys take their defaults.

        Raises:
            InputError: On unknown keys or invalid values.
        """
        return _from_dict(cls, data, path)


_ConfigT = TypeVar("_ConfigT", "ModelConfig", "LossConfig")


def _from_dict(cls: type[_ConfigT], data: Any, path: str | os.PathLike[str] | None) -> _ConfigT:
    _check(isinstance(data, dict), path, f"{cls.__name__}: expected a JSON object, got {type(data).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    _check(not unknown, path, f"{cls.__name__}: unknown keys {', '.join(map(str, unknown))}")
    try:
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            if f.name in data:
                setattr(obj, f.name, data[f.name])
            elif f.default is not dataclasses.MISSING:
                setattr(obj, f.name, f.default)
            else:  # pragma: no cover - every field has a default
                if f.default_factory is dataclasses.MISSING:
                    raise TypeError(f"field {f.name!r} has no default")
                setattr(obj, f.name, f.default_factory())
    except TypeError as exc:  # pragma: no cover
        raise InputError(path, f"{cls.__name__}: {exc}") from None
    obj.validate(path)
    return obj


def save_config(cfg: ModelConfig | LossConfig, path: str | os.PathLike[str]) -> None:
    """Write a config as JSON atomically."""
    write_json(path, cfg.to_dict())


def load_model_config(path: str | os.PathLike[str]) -> ModelConfig:
    """Read a :class:`ModelConfig` JSON file.

    Raises:
        InputError: If the file is missing, not JSON, or holds invalid values.
    """
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except FileNotFoundError:
        raise InputError(p, "model config file not found") from None
    except (OSError, ValueError) as exc:
        raise InputError(p, f"cannot read model config: {exc}") from None
    return ModelConfig.from_dict(data, p)


CONDUCTOR_MODES = ("joint", "none", "frozen", "no-real")
CONDUCTOR_OBJECTIVES: tuple[str, ...] = ("segmenter", "oasis")
"""Choices of ``TrainConfig.conductor_objective``: the paper's K-class segmenter, or an OASIS-style (K+1)-class
segmenter whose extra class is "generated" (see :mod:`rsaug.gan.objectives`)."""
_CONDUCTOR_MODE_FLAGS = {"none": "no_conductor", "frozen": "frozen_conductor", "no-real": "conductor_no_real"}
FEATURE_DISCRIMINATORS: tuple[str, ...] = ("none", "vgg")
"""Choices of ``TrainConfig.feature_d`` (:mod:`rsaug.gan.feature_discriminator`)."""
Precision = Literal["32-true", "16-mixed", "bf16-mixed", "32", "16", "bf16"]
"""The precisions a training run accepts (a subset of Lightning Fabric's)."""

PRECISIONS: tuple[Precision, ...] = ("32-true", "16-mixed", "bf16-mixed", "32", "16", "bf16")


@dataclass
class TrainConfig:
    """Everything about a training run that is not the architecture or the loss weights.

    Attributes:
        preset: Name of the preset the run started from (``cpu-small``, ``paper`` or ``None``).
        crop_size: Square crop size in pixels (must be a multiple of the generator's size multiple).
        batch_size: Images per step and device.
        steps: Total number of optimisation steps (if ``None``, computed from ``epochs``).
        epochs: Number of passes over the train split (used when ``steps`` is ``None``).
        seed: Seed of the data order, augmentation, initialisation and noise.
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        devices: Number of devices (GPUs) per node, or ``auto``.
        num_nodes: Number of nodes.
        strategy: Lightning Fabric strategy (``auto``, ``ddp``, ``ddp_spawn``, ...).
        precision: ``32-true``, ``16-mixed`` or ``bf16-mixed`` (mixed precision only on CUDA).
        workers: Data-loader worker processes.
        lr_g: Generator learning rate.
        lr_d: Discriminator learning rate.
        lr_c: Conductor learning rate.
        beta1: Adam beta1.
        beta2: Adam beta2.
        decay_start: Fraction of the steps after which the learning rates decay linearly to zero.
        conductor: ``joint`` (paper), ``none`` (no conductor), ``frozen`` (pre-trained on real data, then
            frozen) or ``no-real`` (conductor trained on fakes only; L_c^real dropped).
        frozen_conductor: With ``conductor="frozen"``: ``pretrain`` or the path of a checkpoint / state dict.
        conductor_pretrain_steps: Steps of conductor pre-training on real crops for ``frozen``/``pretrain``.
        discriminator: Use a discriminator (``False`` = the no-discriminator ablation: no adversarial and no
            feature-matching terms).
        ema_decay: Decay of the generator's exponential moving average (ramped up as ``(1+s)/(10+s)``).
        ema_bn_batches: Training batches used to recompute ``G_ema``'s BatchNorm statistics.
        checkpoint_every: Write a checkpoint every this many steps (and at the end).
        keep_checkpoints: Keep the newest this many ``step_*.ckpt`` files (0 = keep all).
        sample_every: Write a sample grid (and validation numbers) every this many steps (0 = only at the end).
        sample_rows: Masks (rows) in a sample grid.
        sample_fakes: Fakes per mask in a sample grid.
        val_tiles: Validation crops (spread over the val split) for the ``val_*`` monitoring columns.
        tensorboard: Also log to TensorBoard (``RUN/tb``) when ``torch.utils.tensorboard`` is available.
        diffaug: DiffAugment policy of the discriminator's inputs (:mod:`rsaug.gan.augment`): a comma-separated
            list of ``color``, ``translation``, ``cutout``; ``""`` (default) = off, the paper's training.
        diffaug_p: Probability that each transform of ``diffaug`` is applied to an image, in ``(0, 1]``
            (1 = DiffAugment; lower = ADA-style fixed probability).
        feature_d: A second, pretrained-feature discriminator (:mod:`rsaug.gan.feature_discriminator`):
            ``none`` (default, the paper's training) or ``vgg`` (frozen offline VGG19 features, fixed random
            channel mixing, small trainable conditional heads; needs at least 3 bands, RGB first).
        feature_d_weight: Weight (> 0) of the feature discriminator's adversarial term in the generator's loss
            and of its hinge loss in its own update.
        conductor_objective: What the conductor learns: ``segmenter`` (default, the paper: the ``K`` real classes
            on real and generated images) or ``oasis`` (OASIS-style, Schoenfeld et al. 2021: ``K + 1`` outputs,
            real pixels -> their class, generated pixels -> the extra "fake" class, class-balanced; the
            generator is trained to have its pixels classified as their class). ``oasis`` needs the jointly
            trained conductor (``conductor="joint"``); with ``diffaug`` the conductor then sees the
            discriminator's augmented pairs.
    """

    preset: str | None = None
    crop_size: int = 64
    batch_size: int = 4
    steps: int | None = None
    epochs: float | None = None
    seed: int = 0
    device: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Precision = "32-true"
    workers: int = 0
    lr_g: float = 1e-4
    lr_d: float = 4e-4
    lr_c: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.9
    decay_start: float = 0.5
    conductor: str = "joint"
    frozen_conductor: str | None = None
    conductor_pretrain_steps: int = 200
    discriminator: bool = True
    ema_decay: float = 0.999
    ema_bn_batches: int = 4
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    sample_every: int = 250
    sample_rows: int = 4
    sample_fakes: int = 3
    val_tiles: int = 16
    tensorboard: bool = True
    diffaug: str = ""
    diffaug_p: float = 1.0
    feature_d: str = "none"
    feature_d_weight: float = 1.0
    conductor_objective: str = "segmenter"

    def validate(self) -> None:
        """Check values that do not depend on the data.

        Raises:
            InputError: On the first invalid value.
        """

        def need(cond: bool, problem: str) -> None:
            if not cond:
                raise InputError(None, problem)

        need(self.crop_size >= 8, f"crop size must be at least 8, got {self.crop_size}")
        need(self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}")
        need(self.steps is None or self.steps >= 1, f"{option('steps')} must be at least 1, got {self.steps}")
        need(self.epochs is None or self.epochs > 0, f"{option('epochs')} must be positive, got {self.epochs}")
        need(self.conductor in CONDUCTOR_MODES, f"conductor mode must be one of {CONDUCTOR_MODES}")
        need(
            self.conductor != "frozen" or bool(self.frozen_conductor),
            f"a frozen conductor needs {option('frozen_conductor')} PATH or 'pretrain'",
        )
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS[:3])}")
        need(0.0 <= self.decay_start <= 1.0, "decay_start must be in [0, 1]")
        need(0.0 <= self.ema_decay < 1.0, "ema_decay must be in [0, 1)")
        need(self.checkpoint_every >= 1, "checkpoint interval must be at least 1")
        need(self.sample_every >= 0, "sample interval must be >= 0")
        need(self.workers >= 0, "workers must be >= 0")
        need(self.lr_g > 0 and self.lr_d > 0 and self.lr_c > 0, "learning rates must be positive")
        need(isinstance(self.diffaug, str), f"{option('diffaug')} must be a policy string, got {self.diffaug!r}")
        policy = parse_policy(self.diffaug)
        check_probability(self.diffaug_p)
        need(
            bool(policy) or self.diffaug_p == 1.0,
            f"{option('diffaug_p')} {self.diffaug_p} has no effect without {option('diffaug')} POLICY",
        )
        need(
            self.feature_d in FEATURE_DISCRIMINATORS,
            f"{option('feature_d')} must be one of {', '.join(FEATURE_DISCRIMINATORS)}, got {self.feature_d!r}",
        )
        w = self.feature_d_weight
        need(
            isinstance(w, (int, float)) and not isinstance(w, bool) and math.isfinite(w) and w > 0,
            f"{option('feature_d_weight')} must be a number > 0, got {w!r}",
        )
        self.feature_d_weight = float(w)
        need(
            self.feature_d != "none" or self.feature_d_weight == 1.0,
            f"{option('feature_d_weight')} {self.feature_d_weight} has no effect without {option('feature_d')} vgg",
        )
        need(
            self.conductor_objective in CONDUCTOR_OBJECTIVES,
            f"{option('conductor_objective')} must be one of {', '.join(CONDUCTOR_OBJECTIVES)}, "
            f"got {self.conductor_objective!r}",
        )
        oasis = self.conductor_objective == "oasis"
        need(
            not oasis or self.conductor == "joint",
            f"{option('conductor_objective')} oasis trains the conductor on real and generated images; it cannot "
            f"be combined with {option(_CONDUCTOR_MODE_FLAGS.get(self.conductor, 'conductor'))}",
        )
        need(
            not policy or self.discriminator or self.feature_d != "none" or oasis,
            f"{option('diffaug')} augments what the discriminator sees; the run has no discriminator",
        )
        self.diffaug = ",".join(policy)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (unknown keys are an error)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise InputError(None, f"train config: unknown keys {', '.join(unknown)}")
        return cls(**data)


# ----------------------------------------------------------------------------------------------- presets
@dataclass(frozen=True)
class Preset:
    """A named starting point of the GAN stage.

    Attributes:
        model: :class:`ModelConfig` fields set by the preset (the rest keep their defaults).
        train: :class:`TrainConfig` fields set by the preset.
        csebgan: Further :class:`ModelConfig` fields set for the ``csebgan`` model only (options the baselines do
            not have, e.g. ``spatial_noise``).
    """

    model: dict[str, Any]
    train: dict[str, Any]
    csebgan: dict[str, Any] = field(default_factory=dict)


#: Architecture of the CPU presets: narrow widths for 64-px crops.
_CPU_SMALL_MODEL: dict[str, Any] = {
    "crop_size": 64,
    "ngf": 16,
    "ndf": 32,
    "num_upsampling": 4,
    "embed_dim": 32,
    "mlp_hidden": 64,
    "spade_hidden": 32,
    "z_dim": 64,
    "p2p_downsampling": 3,
    "p2p_blocks": 3,
    "n_layers_d": 3,
    "cond_width": 16,
    "cond_depth": 3,
}

#: Training options of ``cpu-small`` (``cpu-long`` changes its length and EMA).
_CPU_SMALL_TRAIN: dict[str, Any] = {
    "crop_size": 64,
    "batch_size": 4,
    "steps": 800,
    "epochs": None,
    "ema_decay": 0.995,
    # 256 crops: with 2 batches (8 crops) the EMA generator's BatchNorm statistics were a random draw that shifted
    # every generated tile's brightness by up to +24 DN (docs/results/gid15-radiometry/)
    "ema_bn_batches": 64,
    "checkpoint_every": 100,
    "sample_every": 100,
    "keep_checkpoints": 2,
    "conductor_pretrain_steps": 100,
}


PRESETS: dict[str, Preset] = {
    # Visibly learns in about 20 minutes on 2 CPU cores (see docs/training.md for what it reaches).
    "cpu-small": Preset(
        model=dict(_CPU_SMALL_MODEL),
        train=dict(_CPU_SMALL_TRAIN),
        # per-pixel noise: LPIPS diversity 0.050 -> 0.181, segmentation fidelity 24.3 -> 30.5 mIoU, band means
        # within 2.5 DN (was 13-15 DN dark) on the GID-15 val split (docs/results/gid15-generators-val/)
        csebgan={"spatial_noise": 0.25},
    ),
    # cpu-small's networks and crops trained 6x longer: 4800 steps, 76-110 minutes on 2-core CPUs (0.95-1.37 s
    # per step, 2026-12-02/03), inside the 120-minute budget of issue 11. Quality per CPU-minute of these networks
    # (test split): docs/results/gid15-quality-per-minute/ (FID - floor 119.6 at 60 min, 110.4 at 120 min).
    "cpu-long": Preset(
        model=dict(_CPU_SMALL_MODEL),
        train={**_CPU_SMALL_TRAIN, "steps": 4800, "ema_decay": 0.999, "checkpoint_every": 200, "sample_every": 400},
        csebgan={"spatial_noise": 0.25},
    ),
    # The paper: 256 px, paper widths, 200 epochs with linear decay over the last 100.
    "paper": Preset(
        model={
            "crop_size": 256,
            "ngf": 64,
            "ndf": 64,
            "num_upsampling": 5,
            "embed_dim": 64,
            "mlp_hidden": 128,
            "cond_width": 64,
            "cond_depth": 4,
        },
        train={
            "crop_size": 256,
            "batch_size": 8,
            "steps": None,
            "epochs": 200,
            "ema_decay": 0.9999,
            "ema_bn_batches": 16,
            "checkpoint_every": 2000,
            "sample_every": 1000,
            "keep_checkpoints": 3,
            "conductor_pretrain_steps": 2000,
        },
    ),
}
"""The GAN stage's presets by name (the one registry: :func:`model_preset` and :func:`preset_configs` read it)."""


def get_preset(name: str) -> Preset:
    """The :class:`Preset` called ``name``.

    Raises:
        InputError: For an unknown preset.
    """
    _check(name in PRESETS, None, f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def model_preset(name: str, **overrides: Any) -> ModelConfig:
    """A :class:`ModelConfig` from a preset (with its CSEBGAN-only fields when the model is ``csebgan``) plus
    keyword overrides (e.g. ``model``, ``num_classes``).

    Raises:
        InputError: For an unknown preset or invalid overrides.
    """
    preset = get_preset(name)
    extra = preset.csebgan if overrides.get("model", "csebgan") == "csebgan" else {}
    return ModelConfig.from_dict({**preset.model, **extra, **overrides})


def preset_configs(
    name: str | None, model: str = "csebgan", **train_overrides: Any
) -> tuple[TrainConfig, dict[str, Any]]:
    """The :class:`TrainConfig` and model-config overrides of a preset.

    Args:
        name: ``cpu-small``, ``cpu-long``, ``paper`` or ``None`` (defaults).
        model: Generator family.
        **train_overrides: TrainConfig fields to override (``None`` values are ignored).

    Returns:
        ``(train_config, model_overrides)``; the model overrides still lack ``num_classes`` / ``out_bands``,
        which come from the tile set.

    Raises:
        InputError: For an unknown preset.
    """
    preset = get_preset(name) if name is not None else None
    base = dict(preset.train) if preset is not None else {}
    given = {k: v for k, v in train_overrides.items() if v is not None}
    base.update(given)
    if "epochs" in given and "steps" not in given:
        base["steps"] = None
    if "steps" in given and "epochs" not in given:
        base["epochs"] = None
    cfg = TrainConfig(preset=name, **{k: v for k, v in base.items() if k != "preset"})
    model_over: dict[str, Any] = dict(preset.model) if preset is not None else {}
    if preset is not None and model == "csebgan":
        model_over.update(preset.csebgan)
    model_over["model"] = model
    model_over["crop_size"] = cfg.crop_size
    return cfg, model_over


__all__ = [
    "CONDUCTOR_MODES",
    "CONDUCTOR_OBJECTIVES",
    "FEATURE_DISCRIMINATORS",
    "MODELS",
    "MODELS_WITH_NOISE",
    "PRECISIONS",
    "PRESETS",
    "LossConfig",
    "ModelConfig",
    "Precision",
    "Preset",
    "TrainConfig",
    "get_preset",
    "load_model_config",
    "model_preset",
    "preset_configs",
    "save_config",
]
