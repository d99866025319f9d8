"""The arms of a benchmark: :class:`Arm`, how arm names expand (:func:`resolve_arms`, :func:`sweep_arms`) and which
training tiles a sweep arm keeps (:func:`real_subset`, :func:`from_sources`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from rsaug.core.errors import InputError, option
from rsaug.segmentation import MixRecipe, TileArrays

#: Separator of a mixing recipe in an arm name: ``real+csebgan~pretrain~w0.5`` (see :func:`parse_recipe`).
RECIPE_SEP = "~"


def parse_recipe(text: str) -> MixRecipe:
    """The :class:`~rsaug.segmentation.MixRecipe` of an arm-name suffix: ``~``-separated parts ``anneal``
    (synthetic share decays linearly to 0), ``pretrain`` / ``pretrainF`` (synthetic pre-training, the last F of
    the steps - default 0.25 - on real tiles only) and ``wW`` (synthetic loss weight W in (0, 1]).

    Raises:
        InputError: For an unknown part, a second schedule, or a value outside its range.
    """
    recipe = MixRecipe()
    schedules = 0
    for part in (p.strip() for p in text.split(RECIPE_SEP)):
        try:
            if part == "anneal":
                recipe.schedule, schedules = "anneal", schedules + 1
            elif part.startswith("pretrain"):
                recipe.schedule, schedules = "pretrain", schedules + 1
                if part != "pretrain":
                    recipe.finetune = float(part[len("pretrain") :])
            elif part.startswith("w") and len(part) > 1:
                recipe.weight = float(part[1:])
            else:
                raise ValueError(part)
        except ValueError:
            raise InputError(
                None, f"unknown recipe {part!r} in an arm name; use anneal, pretrain[F] or wW, joined by {RECIPE_SEP}"
            ) from None
    if schedules > 1:
        raise InputError(None, f"recipe {text!r}: choose one schedule (anneal or pretrain)")
    recipe.validate()
    return recipe


@dataclass
class Arm:
    """One arm of the benchmark.

    Attributes:
        name: Arm name (``real``, ``real+<syn>``, ``classic``, ``classic+<syn>``, ``<syn>-only``; sweep arms
            ``real@f``, ``real+<syn>@f``, ``classic+<syn>@f``, ``replace-<syn>@r``).
        kind: One of :data:`~rsaug.benchmark.config.ARM_KINDS`, or ``replace``.
        synthetic: Name of the synthetic set it uses, if any.
        real_fraction: Share of the real training tiles used (see :func:`real_subset`).
        recipe: How the synthetic tiles are mixed in (an arm-name suffix, :func:`parse_recipe`; empty: a
            constant share with weight 1).
        classic: A ``real+synthetic`` arm that also applies classic augmentation to every crop (real and
            synthetic): the combination arm ``classic+<syn>``.
    """

    name: str
    kind: str
    synthetic: str | None = None
    real_fraction: float = 1.0
    recipe: str = ""
    classic: bool = False

    @property
    def augment(self) -> bool:
        """Whether classic augmentation is applied."""
        return self.kind == "classic" or self.classic

    def mix_recipe(self) -> MixRecipe | None:
        """The parsed :attr:`recipe` (``None`` without one)."""
        return parse_recipe(self.recipe) if self.recipe else None


def resolve_arms(arms: Sequence[str], synthetic_names: Sequence[str]) -> list[Arm]:
    """Expand arm kinds / names into arms (``real+synthetic`` -> one ``real+<name>`` arm per synthetic set).

    Raises:
        InputError: For an unknown arm, or an arm that needs synthetic data when none is given.
    """
    out: list[Arm] = []

    def add(a: Arm) -> None:
        if all(a.name != b.name for b in out):
            out.append(a)

    for spec in arms:
        spec, _, recipe = spec.strip().partition(RECIPE_SEP)
        if not spec:
            continue
        if spec.startswith("classic+"):  # the combination: classic augmentation on real + synthetic crops
            try:
                combined = resolve_arms(
                    ["real+" + spec[len("classic+") :] + (RECIPE_SEP + recipe if recipe else "")], synthetic_names
                )
            except InputError as exc:  # the same problem, named as the user wrote it
                raise InputError(None, exc.message.replace("'real+", "'classic+")) from None
            for a in combined:
                add(Arm("classic+" + a.name[len("real+") :], a.kind, a.synthetic, recipe=a.recipe, classic=True))
            continue
        if recipe:
            parse_recipe(recipe)  # checked before anything runs
            if not spec.startswith("real+"):
                raise InputError(
                    None,
                    f"arm {spec + RECIPE_SEP + recipe!r}: mixing recipes apply to real+<synthetic> and "
                    "classic+<synthetic> arms",
                )
            if spec == "real+synthetic" and not synthetic_names:
                raise InputError(
                    None,
                    f"arm {spec!r} needs synthetic data: give {option('synthetic')} DIR or "
                    f"{option('checkpoints')} CKPT",
                )
            names = synthetic_names if spec == "real+synthetic" else [spec[5:]] if spec[5:] in synthetic_names else []
            if not names:
                raise InputError(None, f"unknown arm {spec + RECIPE_SEP + recipe!r}: no synthetic set {spec[5:]!r}")
            for n in names:
                add(Arm(f"real+{n}{RECIPE_SEP}{recipe}", "real+synthetic", n, recipe=recipe))
            continue
        if spec == "real":
            add(Arm("real", "real"))
        elif spec == "classic":
            add(Arm("classic", "classic"))
        elif spec in ("real+synthetic", "synthetic-only"):
            if not synthetic_names:
                raise InputError(
                    None,
                    f"arm {spec!r} needs synthetic data: give {option('synthetic')} DIR or "
                    f"{option('checkpoints')} CKPT",
                )
            for n in synthetic_names:
                add(
                    Arm(f"real+{n}", "real+synthetic", n)
                    if spec == "real+synthetic"
                    else Arm(f"{n}-only", "synthetic-only", n)
                )
        elif spec.startswith("real+") and spec[5:] in synthetic_names:
            add(Arm(spec, "real+synthetic", spec[5:]))
        elif spec.endswith("-only") and spec[:-5] in synthetic_names:
            add(Arm(spec, "synthetic-only", spec[:-5]))
        else:
            valid = ["real", "classic", "real+synthetic", "classic+synthetic", "synthetic-only"]
            valid += [f"real+{n}" for n in synthetic_names] + [f"classic+{n}" for n in synthetic_names]
            valid += [f"{n}-only" for n in synthetic_names]
            raise InputError(None, f"unknown arm {spec!r}; valid: {', '.join(valid)}")
    if not out:
        raise InputError(None, "no arms selected")
    return out


def sweep_arms(arms: Sequence[Arm], real_fractions: Sequence[float], replace_fractions: Sequence[float]) -> list[Arm]:
    """Arms of the training-set-size sweep and of the replace-vs-augment curve (see
    :class:`~rsaug.benchmark.config.BenchmarkConfig`).

    They use the synthetic sets of the ``real+<name>`` (and ``classic+<name>``) arms among ``arms``; with a
    ``classic`` arm among ``arms`` the size sweep also gets ``classic@f`` (classic augmentation on the same real
    subset).

    Raises:
        InputError: For a fraction outside (0, 1), or a replace curve without a ``real+<name>`` arm.
    """
    syn_arms = [a for a in arms if a.kind == "real+synthetic"]
    syn = list(dict.fromkeys(a.synthetic for a in syn_arms))
    for what, fr in (("real_fractions", real_fractions), ("replace_fractions", replace_fractions)):
        bad = [f for f in fr if not 0 < f < 1]
        if bad:
            raise InputError(None, f"{option(what)} must lie strictly between 0 and 1, got {bad}")
    if replace_fractions and not syn:
        raise InputError(None, f"{option('replace_fractions')} needs a synthetic set (and a real+synthetic arm)")
    out: list[Arm] = []
    classic = any(a.kind == "classic" for a in arms)
    for f in sorted(set(real_fractions)):
        out.append(Arm(f"real@{f:g}", "real", None, f))
        out += [Arm(f"{a.name}@{f:g}", "real+synthetic", a.synthetic, f, a.recipe, a.classic) for a in syn_arms]
        if classic:
            out.append(Arm(f"classic@{f:g}", "classic", None, f))
    for r in sorted(set(replace_fractions)):
        out += [Arm(f"replace-{n}@{r:g}", "replace", n, 1.0 - r) for n in syn]
    return out


def real_subset(n: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the real training tiles kept at ``fraction``: the first ``round(fraction * n)`` entries of one
    seeded permutation, so smaller subsets are nested in larger ones and every arm and seed sees the same one."""
    perm = np.random.default_rng([seed, 7]).permutation(n)
    return np.sort(perm[: max(1, min(n, round(fraction * n)))])


def from_sources(syn: TileArrays, source_ids: set[str], name: str) -> TileArrays:
    """The synthetic tiles generated from the masks of the real tiles ``source_ids``.

    Raises:
        InputError: When the synthetic set records no source tiles (not made by ``rsaug synthesize``).
    """
    if not syn.source_tiles:
        raise InputError(
            None,
            f"synthetic set {name!r} has no 'source_tile' column; the size sweep and the "
            "replace curve need to know which real mask each synthetic tile came from",
        )
    return syn.select([i for i, s in enumerate(syn.source_tiles) if s in source_ids])
