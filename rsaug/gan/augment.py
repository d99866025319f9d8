"""Differentiable augmentation of what the discriminator sees (DiffAugment, Zhao et al. 2020), off by default.

With few training tiles the discriminator memorises them; DiffAugment ("Differentiable Augmentation for
Data-Efficient GAN Training", NeurIPS 2020) shows it transformed copies of the real *and* the generated images,
with transforms that are differentiable, so the generator is trained through them. Here the discriminator is
conditional (``D(onehot, image)``), so each draw (:class:`AugmentDraw`) is applied to the real image, the fake
image **and** the label map of one discriminator evaluation:

* ``color`` - per image, over all bands: brightness (add ``U(-0.5, 0.5)``, images are in ``[-1, 1]``),
  saturation (spread the bands around their per-pixel mean by ``U(0, 2)``), contrast (spread the image around
  its mean over all bands and pixels by ``U(0.5, 1.5)``). Saturation is an RGB notion: it acts on the first
  three bands when there are at least three (RGB first, the convention the perceptual loss uses too; a fourth
  band such as NIR is left as it is) and is skipped for one- or two-band images. The label map is unchanged.
* ``translation`` - shift by whole pixels, independently in rows and columns, up to ``1/8`` of the size (as in
  DiffAugment: ``round(H / 8)``). Pixels shifted in are 0 in the image (mid-grey in ``[-1, 1]``, DiffAugment's
  zero padding) and the unknown label ``K`` in the label map: the label map moves exactly with the image.
* ``cutout`` - one square-ish hole of half the size per image (``round(H / 2)`` x ``round(W / 2)``, centre
  anywhere, clipped at the border) set to 0 in the image; the same pixels become the unknown label ``K`` in the
  label map, so the augmented pair never claims a class for pixels that show no image.

Transforms run in the order of the policy string (``color`` = brightness, saturation, contrast). With
probability ``p`` < 1 (ADA-style, fixed; no adaptive tuning) every transform is applied to each image
independently with probability ``p``, otherwise it is the identity for that image; ``p = 1`` is DiffAugment.

All random numbers come from the ``torch.Generator`` given to :meth:`DiffAugment.sample` (the trainer seeds a
CPU generator from :func:`rsaug.gan.training_state.seed_for` for every step, so exact resume keeps working and
the draws do not depend on the device); the parameters are tiny tensors moved to the batch's device, where the
images are transformed. Nothing here touches torch's global random state.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from rsaug.core.errors import InputError, option

POLICIES: dict[str, tuple[str, ...]] = {
    "color": ("brightness", "saturation", "contrast"),
    "translation": ("translation",),
    "cutout": ("cutout",),
}
"""DiffAugment's policies and the transforms each one runs, in order."""

TRANSLATION_RATIO = 1 / 8
"""Largest shift as a fraction of the height / width (DiffAugment's default)."""

CUTOUT_RATIO = 1 / 2
"""Size of the cut-out hole as a fraction of the height / width (DiffAugment's default)."""


def parse_policy(policy: str) -> tuple[str, ...]:
    """The policies named in a comma-separated string (``""`` -> ``()``), in the given order.

    Raises:
        InputError: For an unknown, empty or repeated policy name.
    """
    if not policy.strip():
        return ()
    names = tuple(p.strip() for p in policy.split(","))
    choices = ", ".join(POLICIES)
    for i, name in enumerate(names):
        if name not in POLICIES:
            shown = repr(name) if name else "(an empty name)"
            where = f" in {policy!r}" if "," in policy else ""
            raise InputError(
                None, f"{option('diffaug')}: unknown policy {shown}{where}; use a comma-separated list of {choices}"
            )
        if name in names[:i]:
            raise InputError(None, f"{option('diffaug')}: policy {name!r} is listed twice in {policy!r}")
    return names


def check_probability(p: object) -> float:
    """``p`` as a float after checking it lies in ``(0, 1]``.

    Raises:
        InputError: For anything else (0 would switch every transform off: leave the policy empty instead).
    """
    ok = isinstance(p, (int, float)) and not isinstance(p, bool) and 0.0 < float(p) <= 1.0
    if not ok:
        raise InputError(None, f"{option('diffaug_p')} must be a probability in (0, 1], got {p!r}")
    return float(p)  # type: ignore[arg-type]


@dataclass(frozen=True)
class AugmentDraw:
    """One random draw of the transforms for a batch of ``B`` images of ``H`` x ``W`` pixels.

    Apply it with :meth:`images` to every image (real and fake) and with :meth:`labels` / :meth:`onehot` to the
    label map of one discriminator evaluation: they then receive the same transform. Parameters of transforms
    that are not in the policy are ``None``; an image for which a transform was switched off (``p`` < 1) has
    identity parameters.

    Attributes:
        ops: Transforms in the order they are applied (``brightness``, ``saturation``, ``contrast``,
            ``translation``, ``cutout``).
        brightness: ``(B, 1, 1, 1)`` value added to every band.
        saturation: ``(B, 1, 1, 1)`` factor on the distance of the RGB bands from their per-pixel mean.
        contrast: ``(B, 1, 1, 1)`` factor on the distance from the image mean (all bands and pixels).
        shift: ``(B, 2)`` int64 ``(dy, dx)``: output pixel ``(i, j)`` is input pixel ``(i - dy, j - dx)`` (the
            content moves down by ``dy`` and right by ``dx``).
        cutout: ``(B, H, W)`` bool, ``True`` where the image is cut out.
    """

    ops: tuple[str, ...]
    brightness: Tensor | None = None
    saturation: Tensor | None = None
    contrast: Tensor | None = None
    shift: Tensor | None = None
    cutout: Tensor | None = None

    def images(self, x: Tensor) -> Tensor:
        """The transformed images ``(B, bands, H, W)`` (differentiable w.r.t. ``x``)."""
        for op in self.ops:
            if op == "brightness":
                x = x + _param(self.brightness, x)
            elif op == "saturation":
                if x.shape[1] >= 3:
                    rgb = x[:, :3]
                    mean = rgb.mean(dim=1, keepdim=True)
                    rgb = (rgb - mean) * _param(self.saturation, x) + mean
                    x = torch.cat([rgb, x[:, 3:]], dim=1) if x.shape[1] > 3 else rgb
            elif op == "contrast":
                mean = x.mean(dim=(1, 2, 3), keepdim=True)
                x = (x - mean) * _param(self.contrast, x) + mean
            elif op == "translation":
                assert self.shift is not None
                rows, cols, valid = _shift_index(self.shift, x.shape[-2], x.shape[-1])
                b = torch.arange(x.shape[0], device=x.device).view(-1, 1, 1)
                moved = x.permute(0, 2, 3, 1)[b, rows, cols].permute(0, 3, 1, 2)
                x = moved * valid.unsqueeze(1).to(x.dtype)
            elif op == "cutout":
                assert self.cutout is not None
                x = x * (~self.cutout.to(x.device)).unsqueeze(1).to(x.dtype)
        return x

    def labels(self, labels: Tensor, unknown: int) -> Tensor:
        """The label map ``(B, H, W)`` (int64) moved and cut like the images; new pixels get ``unknown``."""
        for op in self.ops:
            if op == "translation":
                assert self.shift is not None
                rows, cols, valid = _shift_index(self.shift, labels.shape[-2], labels.shape[-1])
                b = torch.arange(labels.shape[0], device=labels.device).view(-1, 1, 1)
                labels = torch.where(valid, labels[b, rows, cols], torch.full_like(labels, unknown))
            elif op == "cutout":
                assert self.cutout is not None
                labels = torch.where(self.cutout.to(labels.device), torch.full_like(labels, unknown), labels)
        return labels

    def onehot(self, labels: Tensor, num_labels: int) -> Tensor:
        """The discriminator's one-hot label input ``(B, num_labels, H, W)``, float32, of the transformed
        ``labels`` (generator labels ``0..K``; the last label ``K = num_labels - 1`` is unknown), in the layout of
        :func:`rsaug.gan.networks.generator.label_onehot`."""
        moved = self.labels(labels, num_labels - 1)
        return F.one_hot(moved, num_labels).permute(0, 3, 1, 2).to(torch.float32).contiguous()


def _param(value: Tensor | None, x: Tensor) -> Tensor:
    assert value is not None
    return value.to(device=x.device, dtype=x.dtype)


def _shift_index(shift: Tensor, height: int, width: int) -> tuple[Tensor, Tensor, Tensor]:
    """Source rows ``(B, H, 1)``, columns ``(B, 1, W)`` (clamped into the image) and the ``(B, H, W)`` mask of
    output pixels whose source lies inside the image."""
    dev = shift.device
    rows = torch.arange(height, device=dev).view(1, -1, 1) - shift[:, 0].view(-1, 1, 1)
    cols = torch.arange(width, device=dev).view(1, 1, -1) - shift[:, 1].view(-1, 1, 1)
    valid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    return rows.clamp(0, height - 1), cols.clamp(0, width - 1), valid


@dataclass(frozen=True)
class DiffAugment:
    """A DiffAugment policy with a fixed per-transform probability (see the module docstring).

    Attributes:
        policy: Policy names in order (keys of :data:`POLICIES`).
        p: Probability that a transform is applied to an image (``1.0``: always, as in DiffAugment).
    """

    policy: tuple[str, ...]
    p: float = 1.0

    def __post_init__(self) -> None:
        parse_policy(",".join(self.policy))
        check_probability(self.p)

    @classmethod
    def from_options(cls, policy: str, p: float = 1.0) -> DiffAugment | None:
        """The augmentation of the ``diffaug`` / ``diffaug_p`` training options; ``None`` for an empty policy.

        Raises:
            InputError: For an unknown policy name or ``p`` outside ``(0, 1]``.
        """
        names = parse_policy(policy)
        check_probability(p)
        return cls(names, float(p)) if names else None

    @property
    def ops(self) -> tuple[str, ...]:
        """The transforms run, in order."""
        return tuple(op for name in self.policy for op in POLICIES[name])

    def sample(
        self, batch: int, height: int, width: int, generator: torch.Generator, device: torch.device | str = "cpu"
    ) -> AugmentDraw:
        """Draw the transforms of one discriminator evaluation from ``generator``.

        The draws (a gate per transform and image, then its parameters, transform by transform in policy
        order) are made on the generator's device and moved to ``device``.

        Args:
            batch: Number of images ``B``.
            height: Image height ``H``.
            width: Image width ``W``.
            generator: Source of every random number.
            device: Where the draw's tensors live (the batch's device).
        """
        g, gdev = generator, generator.device
        params: dict[str, Tensor] = {}
        for op in self.ops:
            on = torch.rand(batch, generator=g, device=gdev) < self.p
            if op == "brightness":
                v = (torch.rand(batch, generator=g, device=gdev) - 0.5) * on
                params[op] = v.view(-1, 1, 1, 1)
            elif op == "saturation":
                v = torch.rand(batch, generator=g, device=gdev) * 2
                params[op] = torch.where(on, v, torch.ones_like(v)).view(-1, 1, 1, 1)
            elif op == "contrast":
                v = torch.rand(batch, generator=g, device=gdev) + 0.5
                params[op] = torch.where(on, v, torch.ones_like(v)).view(-1, 1, 1, 1)
            elif op == "translation":
                sy, sx = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
                dy = torch.randint(-sy, sy + 1, (batch,), generator=g, device=gdev)
                dx = torch.randint(-sx, sx + 1, (batch,), generator=g, device=gdev)
                params["shift"] = torch.stack([dy, dx], dim=1) * on.view(-1, 1).long()
            elif op == "cutout":
                ch, cw = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
                # DiffAugment's offsets: the hole's centre anywhere in the image, clipped at the border
                cy = torch.randint(0, height + (1 - ch % 2), (batch,), generator=g, device=gdev) - ch // 2
                cx = torch.randint(0, width + (1 - cw % 2), (batch,), generator=g, device=gdev) - cw // 2
                r = torch.arange(height, device=gdev).view(1, -1, 1)
                c = torch.arange(width, device=gdev).view(1, 1, -1)
                inside = (r >= cy.view(-1, 1, 1)) & (r < (cy + ch).view(-1, 1, 1))
                inside = inside & (c >= cx.view(-1, 1, 1)) & (c < (cx + cw).view(-1, 1, 1))
                params["cutout"] = inside & on.view(-1, 1, 1)
        return AugmentDraw(ops=self.ops, **{k: v.to(device) for k, v in params.items()})


__all__ = [
    "CUTOUT_RATIO",
    "POLICIES",
    "TRANSLATION_RATIO",
    "AugmentDraw",
    "DiffAugment",
    "check_probability",
    "parse_policy",
]
