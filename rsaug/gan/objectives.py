"""The three objectives of a training step: what the generator, the discriminator and the conductor minimise.

Each objective takes the networks, a :class:`TrainBatch` and the loss weights and returns ``(total, terms)``:
``total`` is the tensor to back-propagate, ``terms`` the named values written to ``log.csv`` (in log order,
their sum under ``*_total``). They only run forward passes; zeroing gradients, ``backward``, optimiser steps and
the moving average are the trainer's (:meth:`rsaug.gan.trainer.Trainer._step`). The networks may be Lightning
Fabric wrappers or plain modules.

* :func:`generator_objective`: ``lambda_gan`` * hinge(D(fake)) + ``lambda_fm`` * feature matching +
  ``lambda_vgg`` * VGG perceptual + ``lambda_moments`` * per-class band moments + ``lambda_cond`` * L_c^fake +
  ``lambda_kl`` * KL (VSPADE) + ``lambda_ds`` * diversity-sensitive loss; each term only when its network /
  weight is present.
* :func:`discriminator_objective`: hinge loss on the real image and the (detached) fake.
* :func:`conductor_objective`: ``L_c^real + L_c^fake`` on the real image and the detached fake (``L_c^real``
  dropped for the ``no-real`` ablation), back-propagated with weight ``lambda_cond``.
* :func:`feature_discriminator_objective`: with the optional pretrained-feature discriminator
  (``TrainConfig.feature_d``, :mod:`rsaug.gan.feature_discriminator`), its hinge loss on the real image and the
  detached fake, times ``feature_d_weight``; the generator's loss then also holds ``feature_d_weight`` *
  hinge(FD(fake)) (``g_fd``).

With ``TrainConfig.conductor_objective="oasis"`` (``oasis=True`` here; default ``segmenter`` = the terms above) the
conductor is an OASIS-style (K+1)-class segmenter (Schoenfeld et al. 2021, "You Only Need Adversarial Supervision
for Semantic Image Synthesis"): channels ``0..K-1`` are the real classes and channel ``K`` the class
"generated" (:func:`rsaug.gan.losses.oasis_conductor_loss`; unknown pixels are ignored everywhere, the generator's
unknown label ``K`` is not the fake class). Its update: ``c_real`` = class-balanced CE of C(real) against the
classes, ``c_fake`` = CE of C(fake) against the fake class (weight 1); the generator's ``g_cond`` = class-balanced
CE of C(fake) against the classes (the fake pixels should be recognised as their class, i.e. not as generated).
The conductor then takes over the discriminator's job (with or without D). With DiffAugment the OASIS conductor
sees the discriminator's draw: real image, fake and mask transformed alike (cut-out and shifted-in pixels become
unknown, so they are ignored), in the generator's ``g_cond`` and in the conductor's update. Optionally
(``LossConfig.lambda_labelmix`` > 0) the conductor's update gains OASIS's LabelMix consistency term ``c_labelmix``
(:func:`labelmix_coins`, :func:`rsaug.gan.losses.labelmix_loss`).

Optionally (``TrainConfig.diffaug``, off by default) the pairs the discriminator sees, in both the generator's
adversarial / feature-matching terms and the discriminator's loss, are transformed by one
:class:`rsaug.gan.augment.AugmentDraw`: the same transform for the real image, the fake and the label map
(DiffAugment). Without it (``augment=None``) the computation is exactly the unaugmented one. The feature
discriminator sees the same transformed pairs as the discriminator. The VGG term, and the conductor of the default
``segmenter`` objective, always see the untransformed images.

The individual losses live in :mod:`rsaug.gan.losses` and are looked up there at call time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from rsaug.core.classes import IGNORE
from rsaug.gan import losses
from rsaug.gan.augment import AugmentDraw
from rsaug.gan.config import LossConfig, ModelConfig
from rsaug.gan.networks.generator import label_onehot, to_model_labels

Terms = dict[str, Tensor]


@dataclass
class TrainBatch:
    """One training batch in every form the networks take it.

    Attributes:
        image: Real images (B, bands, H, W) in ``[-1, 1]``.
        mask: Internal masks (B, H, W), int64 (0..K-1, 255 = unknown): the conductor's target.
        labels: Generator labels (B, H, W), int64 (0..K, K = unknown).
        onehot: One-hot labels (B, K+1, H, W), float: the discriminator's label input.
    """

    image: Tensor
    mask: Tensor
    labels: Tensor
    onehot: Tensor

    @classmethod
    def from_crops(cls, crops: dict[str, Tensor], num_classes: int, device: torch.device | str) -> TrainBatch:
        """Move a collated :class:`rsaug.gan.data.TileCrops` batch to ``device`` and derive labels and one-hot.

        Args:
            crops: ``{"image": (B, C, H, W), "mask": (B, H, W), ...}``.
            num_classes: Number of real classes K.
            device: Where the networks run.
        """
        image = crops["image"].to(device)
        mask = crops["mask"].to(device)
        labels = to_model_labels(mask, num_classes)
        return cls(image=image, mask=mask, labels=labels, onehot=label_onehot(labels, num_classes + 1))


def conductor_ce(logits: Tensor, mask: Tensor, class_balanced: bool = False) -> Tensor:
    """The conductor's pixel-wise cross-entropy in float32 (:func:`rsaug.gan.losses.conductor_loss`; unknown
    pixels ignored)."""
    return losses.conductor_loss(logits.float(), mask, class_balanced=class_balanced)


def _d_view(batch: TrainBatch, augment: AugmentDraw | None) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """``(onehot, real, view)`` as the discriminator sees them: with ``augment`` the transformed label map and
    real image, and the function that transforms a fake the same way; without it the batch's own tensors."""
    if augment is None:
        return batch.onehot, batch.image, lambda x: x
    return augment.onehot(batch.labels, batch.onehot.shape[1]), augment.images(batch.image), augment.images


def _c_view(image: Tensor, mask: Tensor, augment: AugmentDraw | None) -> tuple[Tensor, Tensor]:
    """``(image, mask)`` as the OASIS conductor sees them: with ``augment`` both transformed alike (new pixels of
    the mask unknown), without it as they are."""
    if augment is None:
        return image, mask
    return augment.images(image), augment.labels(mask, IGNORE)


def generator_objective(
    G: nn.Module,
    D: nn.Module | None,
    C: nn.Module | None,
    vgg: nn.Module | None,
    batch: TrainBatch,
    noise: Tensor | None,
    model_cfg: ModelConfig,
    loss_cfg: LossConfig,
    draw_noise: Callable[[], Tensor | None],
    augment: AugmentDraw | None = None,
    feature_d: nn.Module | None = None,
    feature_d_weight: float = 1.0,
    oasis: bool = False,
) -> tuple[Tensor, Terms, Tensor]:
    """The generator's loss on one batch (D, C and VGG are only evaluated; freezing them is the caller's job).

    Args:
        G: Generator (``G(labels, noise, real) -> (image, kl)``).
        D: Discriminator, or ``None`` (no adversarial and feature-matching terms).
        C: Conductor, or ``None`` (no L_c^fake term).
        vgg: Perceptual loss module (:class:`rsaug.gan.losses.PerceptualLoss`), or ``None``.
        batch: The batch.
        noise: Noise of the generator for this batch (``None`` for generators without noise).
        model_cfg: Architecture (VSPADE gets the real image and a KL term).
        loss_cfg: Loss weights.
        draw_noise: Draws a second noise batch, called only for the diversity-sensitive term
            (``lambda_ds > 0``), after every other term.
        augment: DiffAugment draw applied to the fake, the real image and the label map before D sees them
            (``g_adv`` on the transformed fake, ``g_fm`` between the transformed real and fake), or ``None``.
        feature_d: Pretrained-feature discriminator (:class:`rsaug.gan.feature_discriminator.
            FeatureDiscriminator`), or ``None``: adds ``feature_d_weight`` * hinge(FD(fake)) (``g_fd``), on the
            fake and label map as D sees them (the same ``augment`` draw).
        feature_d_weight: Weight of ``g_fd``.
        oasis: ``C`` is the OASIS-style (K+1)-class conductor: ``g_cond`` is its class-balanced CE on the fake
            against the real classes (:func:`rsaug.gan.losses.oasis_conductor_loss`), on the fake and mask as
            transformed by ``augment``. ``False``: the conductor's CE on the untransformed fake.

    Returns:
        ``(g_total, terms, fake)``: ``terms`` holds ``g_adv``, ``g_fm``, ``g_fd``, ``g_vgg``, ``g_moments``, ``g_cond``,
        ``g_kl``, ``g_ds`` (those that apply, unweighted) and ``g_total`` (the weighted sum); ``fake`` is the
        generated batch (still attached to the graph, never augmented).
    """
    lc = loss_cfg
    out: Terms = {}
    real_in = batch.image if model_cfg.model == "vspade" else None
    fake, kl = G(batch.labels, noise, real_in)
    g_total = torch.zeros((), device=batch.image.device)
    if D is not None or feature_d is not None:
        onehot, real, view = _d_view(batch, augment)
        fake_seen = view(fake)
    if D is not None:
        pred_fake = D(onehot, fake_seen)
        with torch.no_grad():
            pred_real = D(onehot, real)
        out["g_adv"] = losses.hinge_g_loss(pred_fake)
        out["g_fm"] = losses.feature_matching_loss(pred_real, pred_fake, weight=1.0)
        g_total = g_total + lc.lambda_gan * out["g_adv"] + lc.lambda_fm * out["g_fm"]
    if feature_d is not None:
        out["g_fd"] = losses.hinge_g_loss(feature_d(onehot, fake_seen))
        g_total = g_total + feature_d_weight * out["g_fd"]
    if vgg is not None:
        out["g_vgg"] = vgg(fake.float(), batch.image)
        g_total = g_total + lc.lambda_vgg * out["g_vgg"]
    if lc.lambda_moments > 0:
        out["g_moments"] = losses.class_moment_loss(fake, batch.image, batch.onehot)
        g_total = g_total + lc.lambda_moments * out["g_moments"]
    if C is not None:
        if oasis:
            c_fake, c_mask = _c_view(fake, batch.mask, augment)
            out["g_cond"] = losses.oasis_conductor_loss(C(c_fake), c_mask)
        else:
            out["g_cond"] = conductor_ce(C(fake), batch.mask, lc.cond_class_balanced)
        g_total = g_total + lc.lambda_cond * out["g_cond"]
    if model_cfg.model == "vspade":
        out["g_kl"] = kl if kl is not None else torch.zeros((), device=batch.image.device)
        g_total = g_total + lc.lambda_kl * out["g_kl"]
    if lc.lambda_ds > 0:
        noise2 = draw_noise()
        fake2, _ = G(batch.labels, noise2, None)
        out["g_ds"] = losses.diversity_sensitive_loss(fake, fake2, noise, noise2, tau=lc.ds_tau)
        g_total = g_total + lc.lambda_ds * out["g_ds"]
    out["g_total"] = g_total
    return g_total, out, fake


def discriminator_objective(
    D: nn.Module, batch: TrainBatch, fake: Tensor, augment: AugmentDraw | None = None
) -> tuple[Tensor, Terms]:
    """The discriminator's hinge loss on the real batch and a generated one.

    Args:
        D: Discriminator.
        batch: The batch (real images and their labels).
        fake: Generated images for ``batch`` (detached here: no gradient reaches the generator).
        augment: DiffAugment draw applied to the real image, the fake and the label map, or ``None``.

    Returns:
        ``(d_total, {"d_real", "d_fake", "d_total"})`` with ``d_total = d_real + d_fake``.
    """
    onehot, real, view = _d_view(batch, augment)
    d_real = losses.hinge_d_real_loss(D(onehot, real))
    d_fake = losses.hinge_d_fake_loss(D(onehot, view(fake.detach())))
    out = {"d_real": d_real, "d_fake": d_fake, "d_total": d_real + d_fake}
    return out["d_total"], out


def feature_discriminator_objective(
    FD: nn.Module, batch: TrainBatch, fake: Tensor, weight: float = 1.0, augment: AugmentDraw | None = None
) -> tuple[Tensor, Terms]:
    """The pretrained-feature discriminator's hinge loss on the real batch and a generated one (its heads learn;
    its VGG features are frozen).

    Args:
        FD: Feature discriminator (same call contract as the discriminator).
        batch: The batch (real images and their labels).
        fake: Generated images for ``batch`` (detached here).
        weight: ``feature_d_weight``: the loss to back-propagate is ``weight * fd_total``.
        augment: The DiffAugment draw of the discriminator's update (the same one D sees), or ``None``.

    Returns:
        ``(weight * fd_total, {"fd_real", "fd_fake", "fd_total"})`` (unweighted terms).
    """
    _, d = discriminator_objective(FD, batch, fake, augment)
    out = {"fd_real": d["d_real"], "fd_fake": d["d_fake"], "fd_total": d["d_total"]}
    return weight * out["fd_total"], out


def conductor_objective(
    C: nn.Module,
    batch: TrainBatch,
    fake: Tensor,
    loss_cfg: LossConfig,
    use_real: bool = True,
    oasis: bool = False,
    augment: AugmentDraw | None = None,
    labelmix: Tensor | None = None,
) -> tuple[Tensor, Terms]:
    """The conductor's segmentation loss on the real batch and a generated one (unknown pixels ignored).

    Args:
        C: Conductor.
        batch: The batch (real images and masks).
        fake: Generated images for ``batch`` (detached here).
        loss_cfg: Loss weights (``lambda_cond``, ``cond_class_balanced``).
        use_real: Include L_c^real (``False`` for the ``no-real`` ablation).
        oasis: ``C`` is the OASIS-style (K+1)-class conductor: ``c_real`` is the class-balanced CE of C(real)
            against the classes, ``c_fake`` the CE of C(fake) against the fake class
            (:func:`rsaug.gan.losses.oasis_conductor_loss`).
        augment: With ``oasis`` only: the discriminator's DiffAugment draw, applied alike to the real image, the
            fake and the mask before the conductor sees them (``None``: untransformed).
        labelmix: With ``oasis`` and ``use_real`` only: OASIS's LabelMix coins, ``[B, K + 1]`` 0/1 per image and
            label (:func:`labelmix_coins`; label ``K`` = unknown). The mixed image takes the real image's pixels
            where the coin of the pixel's label (in the mask as the conductor sees it) is 1 and the fake's
            elsewhere; ``c_labelmix`` (:func:`rsaug.gan.losses.labelmix_loss`) is added to ``c_total`` with
            weight ``lambda_labelmix``. ``None``: no LabelMix.

    Returns:
        ``(lambda_cond * c_total, terms)``: ``terms`` holds ``c_real`` (with ``use_real``), ``c_fake``, with
        ``labelmix`` ``c_labelmix``, and ``c_total = c_real + c_fake (+ lambda_labelmix * c_labelmix)``.

    Raises:
        ValueError: For ``augment`` or ``labelmix`` without ``oasis``, or ``labelmix`` without ``use_real``.
    """
    lc = loss_cfg
    out: Terms = {}
    c_total = torch.zeros((), device=batch.image.device)
    if oasis:
        if labelmix is not None and not use_real:
            raise ValueError("LabelMix mixes real and generated images; it needs use_real=True")
        real_in, mask = _c_view(batch.image, batch.mask, augment)
        fake_in, _ = _c_view(fake.detach(), batch.mask, augment)
        real_logits = C(real_in) if use_real else None
        if real_logits is not None:
            out["c_real"] = losses.oasis_conductor_loss(real_logits, mask)
            c_total = c_total + out["c_real"]
        fake_logits = C(fake_in)
        out["c_fake"] = losses.oasis_conductor_loss(fake_logits, mask, fake=True)
        c_total = c_total + out["c_fake"]
        if labelmix is not None and real_logits is not None:
            k = labelmix.shape[1] - 1
            known = (mask >= 0) & (mask < k)
            mix = labelmix.gather(1, torch.where(known, mask, k).flatten(1)).view_as(mask).unsqueeze(1)
            mix = mix.to(real_in.dtype)
            mixed_logits = C(mix * real_in + (1 - mix) * fake_in)
            out["c_labelmix"] = losses.labelmix_loss(mixed_logits, real_logits, fake_logits, mix, known)
            c_total = c_total + lc.lambda_labelmix * out["c_labelmix"]
        out["c_total"] = c_total
        return lc.lambda_cond * out["c_total"], out
    if augment is not None or labelmix is not None:
        raise ValueError("the segmenter conductor sees untransformed, unmixed images; augment needs oasis=True")
    if use_real:
        out["c_real"] = conductor_ce(C(batch.image), batch.mask, lc.cond_class_balanced)
        c_total = c_total + out["c_real"]
    out["c_fake"] = conductor_ce(C(fake.detach()), batch.mask, lc.cond_class_balanced)
    out["c_total"] = c_total + out["c_fake"]
    return lc.lambda_cond * out["c_total"], out


def labelmix_coins(batch: int, num_classes: int, generator: torch.Generator) -> Tensor:
    """OASIS's LabelMix draw: a fair 0/1 coin per image and label (``K + 1`` labels, the unknown label ``K``
    included), int64 ``[batch, K + 1]`` on the generator's device; 1 = take the real image's pixels."""
    return torch.randint(0, 2, (batch, num_classes + 1), generator=generator, device=generator.device)


__all__ = [
    "Terms",
    "TrainBatch",
    "conductor_ce",
    "conductor_objective",
    "discriminator_objective",
    "feature_discriminator_objective",
    "generator_objective",
    "labelmix_coins",
]
