"""Loss functions of CSEBGAN and the baselines (weights live in :class:`rsaug.gan.config.LossConfig`).

* :func:`hinge_d_loss` / :func:`hinge_g_loss` - hinge adversarial losses on multi-scale D outputs.
* :func:`feature_matching_loss` - L1 between D features of real and fake, all layers but the prediction,
  weighted ``lambda_fm / num_d``.
* :class:`PerceptualLoss` - VGG19 relu1_1..relu5_1 L1 with weights 1/32, 1/16, 1/8, 1/4, 1 (offline weights,
  see :mod:`rsaug.gan.vgg`), multiplied by ``feature_scale`` (default 1/130, putting the offline Caffe-style
  VGG19's 0-255 features on torchvision's scale so SPADE's weight 10 keeps its meaning).
* :func:`rsaug.gan.networks.generator.kl_divergence` - VSPADE KL (re-exported here).
* :func:`diversity_sensitive_loss` - Yang et al. 2019: ``-min(|G(x,z1) - G(x,z2)| / |z1 - z2|, tau)``.
* :func:`class_moment_loss` - L1 between per-label, per-band mean and standard deviation of fake and real
  pixels, pooled over the batch (radiometric anchoring; unknown areas are a label of their own).
* :func:`conductor_loss` - pixel-wise CE of the conductor, unknown pixels ignored.
* :func:`oasis_conductor_loss` - the (K+1)-class CE of the OASIS-style conductor (real class or "fake").
* :func:`labelmix_loss` - OASIS's LabelMix consistency of that conductor's logits.

D outputs follow the discriminator contract: a list (per scale) of lists of features, prediction last.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rsaug.gan.networks.generator import kl_divergence
from rsaug.gan.vgg import VGG19Features

VGG_LAYER_WEIGHTS: tuple[float, ...] = (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)

DFeatures = list[list[Tensor]]


def hinge_d_loss(real: DFeatures, fake: DFeatures) -> Tensor:
    """Discriminator hinge loss ``mean(relu(1 - D(real))) + mean(relu(1 + D(fake)))``, averaged over scales."""
    terms = [F.relu(1.0 - r[-1]).mean() + F.relu(1.0 + f[-1]).mean() for r, f in zip(real, fake)]
    return torch.stack(terms).mean()


def hinge_d_real_loss(real: DFeatures) -> Tensor:
    """Real half of the discriminator hinge loss, averaged over scales."""
    return torch.stack([F.relu(1.0 - r[-1]).mean() for r in real]).mean()


def hinge_d_fake_loss(fake: DFeatures) -> Tensor:
    """Fake half of the discriminator hinge loss, averaged over scales."""
    return torch.stack([F.relu(1.0 + f[-1]).mean() for f in fake]).mean()


def hinge_g_loss(fake: DFeatures) -> Tensor:
    """Generator hinge loss ``-mean(D(fake))``, averaged over scales."""
    return torch.stack([-f[-1].mean() for f in fake]).mean()


def feature_matching_loss(real: DFeatures, fake: DFeatures, weight: float = 10.0) -> Tensor:
    """``weight / num_d * sum_scales sum_layers L1(fake_feat, real_feat.detach())`` over all layers but the last."""
    num_d = len(fake)
    total = fake[0][-1].new_zeros(())
    for r, f in zip(real, fake):
        for rf, ff in zip(r[:-1], f[:-1]):
            total = total + F.l1_loss(ff, rf.detach())
    return total * (weight / num_d)


class PerceptualLoss(nn.Module):
    """VGG19 perceptual loss ``feature_scale * sum_i w_i * L1(phi_i(fake), phi_i(real).detach())``.

    Args:
        feature_scale: Multiplier of the summed L1 distances (see module docstring).
        layer_weights: Weights of relu1_1 .. relu5_1.
    """

    def __init__(
        self, feature_scale: float = 1.0 / 130.0, layer_weights: tuple[float, ...] = VGG_LAYER_WEIGHTS
    ) -> None:
        super().__init__()
        self.vgg = VGG19Features()
        self.feature_scale = float(feature_scale)
        self.layer_weights = tuple(layer_weights)

    def forward(self, fake: Tensor, real: Tensor) -> Tensor:
        """Perceptual distance between ``fake`` and ``real`` (model images in [-1, 1]; RGB = first 3 bands)."""
        with torch.no_grad():
            real_f = self.vgg(real)
        fake_f = self.vgg(fake)
        total = fake_f[0].new_zeros(())
        for w, a, b in zip(self.layer_weights, fake_f, real_f):
            total = total + w * F.l1_loss(a, b)
        return total * self.feature_scale


def diversity_sensitive_loss(
    fake1: Tensor,
    fake2: Tensor,
    noise1: Tensor | None,
    noise2: Tensor | None,
    tau: float = 1.0,
    eps: float = 1e-5,
) -> Tensor:
    """Diversity-sensitive loss of Yang et al. 2019 (to *minimise*; multiply by ``lambda_ds``).

    Per image, ``ratio = mean|G(x, z1) - G(x, z2)| / mean|z1 - z2|``; the loss is ``-mean(min(ratio, tau))``,
    so the generator is pushed to make different noise give different images, up to the clamp ``tau``.

    Raises:
        ValueError: If either noise is ``None`` (the model has no noise).
    """
    if noise1 is None or noise2 is None:
        raise ValueError("the diversity-sensitive loss needs a generator with noise")
    b = fake1.shape[0]
    img_d = (fake1 - fake2).abs().reshape(b, -1).mean(1)
    z_d = (noise1 - noise2).abs().reshape(b, -1).mean(1)
    ratio = img_d / (z_d + eps)
    return -torch.clamp(ratio, max=tau).mean()


def class_moment_loss(fake: Tensor, real: Tensor, onehot: Tensor, eps: float = 1e-6) -> Tensor:
    """Radiometric moment matching per label and band, pooled over the batch (to minimise).

    For every label ``g`` present in the batch (the K classes and the unknown label) and every band ``b``, the
    mean and the standard deviation of all fake pixels labelled ``g`` are compared with those of the real pixels
    of the same label map (in paired synthesis the fake is generated from the real image's mask, so both sets
    hold the same pixels' positions). The loss is the mean over present ``(g, b)`` of
    ``|mean_fake - mean_real| + |std_fake - std_real|``. The statistics are pooled over the whole batch, so one
    image may be darker and another brighter than its real counterpart (the semantic embeddings' diversity)
    as long as the label's distribution keeps the real first and second moments: the term anchors brightness and
    contrast per class without pulling each sample onto its paired real image.

    Args:
        fake: Generated images ``[B, C, H, W]`` (model range).
        real: Real images ``[B, C, H, W]`` of the same label maps.
        onehot: One-hot label map ``[B, G, H, W]`` (float; every pixel in exactly one group).

    Returns:
        A scalar (float32; 0 when no label is present).
    """
    w = onehot.float()
    count = w.sum(dim=(0, 2, 3))  # (G,)
    present = count > 0
    if not bool(present.any()):
        return fake.new_zeros((), dtype=torch.float32)
    denom = count.clamp_min(1.0)[:, None]

    def moments(x: Tensor) -> tuple[Tensor, Tensor]:
        x = x.float()
        mean = torch.einsum("bghw,bchw->gc", w, x) / denom
        sq = torch.einsum("bghw,bchw->gc", w, x * x) / denom
        return mean, (sq - mean * mean).clamp_min(0.0).add(eps).sqrt()

    mf, sf = moments(fake)
    with torch.no_grad():
        mr, sr = moments(real)
    err = (mf - mr).abs() + (sf - sr).abs()  # (G, C)
    return err[present].mean()


def conductor_loss(logits: Tensor, labels: Tensor, class_balanced: bool = False) -> Tensor:
    """Pixel-wise cross-entropy of the conductor; unknown pixels are ignored.

    Args:
        logits: ``[B, K, H, W]``.
        labels: ``[B, H, W]`` long; values ``>= K`` (the generator's unknown label ``K`` or the internal
            :data:`rsaug.core.classes.IGNORE` 255) are ignored.
        class_balanced: Weight classes by ``numel / (n_present * count_c)`` over the batch's known pixels (OASIS).

    Returns:
        The mean CE over known pixels (0 when every pixel is unknown).
    """
    k = logits.shape[1]
    target = labels.long()
    target = torch.where((target >= k) | (target < 0), torch.full_like(target, -100), target)
    weight = None
    if class_balanced:
        known = target[target >= 0]
        counts = torch.bincount(known, minlength=k).float()
        present = (counts > 0).sum().clamp(min=1)
        weight = torch.where(counts > 0, known.numel() / (present * counts.clamp(min=1)), counts.new_zeros(()))
    if not bool((target >= 0).any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits.float(), target, weight=weight, ignore_index=-100)


def oasis_targets(labels: Tensor, num_classes: int, fake: bool) -> Tensor:
    """Targets of the OASIS-style conductor for :func:`conductor_loss` on ``K + 1`` logits.

    Args:
        labels: ``[B, H, W]`` internal masks: ``0..K-1`` real classes; anything else (the internal unknown
            :data:`rsaug.core.classes.IGNORE` 255, and also the generator's unknown label ``K``, which must not
            be read as the fake class) is unknown.
        num_classes: ``K``, the number of real classes; the fake class is channel ``K``.
        fake: ``False``: known pixels keep their class; ``True``: known pixels get the fake class ``K``.

    Returns:
        int64 ``[B, H, W]``: the targets, ``-100`` (ignored) at unknown pixels.
    """
    target = labels.long()
    known = (target >= 0) & (target < num_classes)
    value = torch.full_like(target, num_classes) if fake else target
    return torch.where(known, value, torch.full_like(target, -100))


def oasis_conductor_loss(logits: Tensor, labels: Tensor, fake: bool = False) -> Tensor:
    """Cross-entropy of the OASIS-style conductor (Schoenfeld et al. 2021): ``K + 1`` outputs, channels ``0..K-1``
    the real classes and channel ``K`` the class "generated"; unknown pixels are ignored.

    * ``fake=False`` (real images in the conductor's update; generated images in the generator's loss): every
      known pixel's target is its class, weighted per batch by ``numel / (n_present * count_c)`` (the class
      balancing of :func:`conductor_loss`; the fake class is no target here, so it gets no weight).
    * ``fake=True`` (generated images in the conductor's update): every known pixel's target is the fake class,
      with weight 1, as in OASIS. That is also its balanced weight (one class present: ``n / (1 * n)``), so the
      fake term is a plain mean over the known pixels.

    Both are means over the known pixels of the weighted per-pixel CE: the balanced weights of the known pixels
    sum to their number, so PyTorch's weighted mean divides by the pixel count, as OASIS does.

    Args:
        logits: ``[B, K + 1, H, W]``.
        labels: ``[B, H, W]`` internal masks (``0..K-1``, anything else unknown; see :func:`oasis_targets`).
        fake: Whether the image is a generated one seen by the conductor's own update.

    Returns:
        The loss (0 when every pixel is unknown).
    """
    k = logits.shape[1] - 1
    return conductor_loss(logits, oasis_targets(labels, k, fake), class_balanced=not fake)


def labelmix_loss(mixed: Tensor, real: Tensor, fake: Tensor, mix: Tensor, known: Tensor) -> Tensor:
    """OASIS's LabelMix consistency: ``mean((C(mix * x + (1 - mix) * x_fake) - (mix * C(x) + (1 - mix) *
    C(x_fake)))^2)`` over the known pixels and every output channel (gradients flow through all three logits).

    Args:
        mixed: Conductor logits ``[B, K + 1, H, W]`` of the mixed image.
        real: Logits of the real image.
        fake: Logits of the generated image.
        mix: ``[B, 1, H, W]`` float, 1 where the mixed image took the real pixel, 0 where it took the fake one.
        known: ``[B, H, W]`` bool, the pixels of a known class.

    Returns:
        The mean squared difference (0 when no pixel is known).
    """
    target = mix * real.float() + (1 - mix) * fake.float()
    sq = (mixed.float() - target).pow(2).mean(dim=1)
    if not bool(known.any()):
        return sq.sum() * 0.0
    return sq[known].mean()


__all__ = [
    "VGG_LAYER_WEIGHTS",
    "PerceptualLoss",
    "conductor_loss",
    "diversity_sensitive_loss",
    "feature_matching_loss",
    "hinge_d_fake_loss",
    "hinge_d_loss",
    "hinge_d_real_loss",
    "hinge_g_loss",
    "kl_divergence",
    "labelmix_loss",
    "oasis_conductor_loss",
    "oasis_targets",
]
