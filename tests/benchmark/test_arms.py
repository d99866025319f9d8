"""Arm names and their errors (:mod:`rsaug.benchmark.arms`); options are named the Python way, flags in the CLI."""

from __future__ import annotations

import pytest

from rsaug.benchmark.arms import Arm, parse_recipe, real_subset, resolve_arms, sweep_arms
from rsaug.cli.common import flag_namer
from rsaug.core.errors import InputError


def test_resolve_arms_expands_kinds() -> None:
    arms = resolve_arms(["real", "real+synthetic", "classic", "synthetic-only", "real+a"], ["a", "b"])
    assert [(a.name, a.kind, a.synthetic) for a in arms] == [
        ("real", "real", None),
        ("real+a", "real+synthetic", "a"),
        ("real+b", "real+synthetic", "b"),
        ("classic", "classic", None),
        ("a-only", "synthetic-only", "a"),
        ("b-only", "synthetic-only", "b"),
    ]
    assert [a.augment for a in arms] == [False, False, False, True, False, False]
    with pytest.raises(InputError, match="unknown arm 'bogus'"):
        resolve_arms(["bogus"], ["a"])


def test_sweep_arms() -> None:
    arms = [Arm("real", "real"), Arm("real+a", "real+synthetic", "a")]
    sweep = sweep_arms(arms, [0.5, 0.25, 0.5], [0.5])
    assert [(a.name, a.real_fraction) for a in sweep] == [
        ("real@0.25", 0.25),
        ("real+a@0.25", 0.25),
        ("real@0.5", 0.5),
        ("real+a@0.5", 0.5),
        ("replace-a@0.5", 0.5),
    ]
    assert set(real_subset(40, 0.25, 0)) <= set(real_subset(40, 0.5, 0)) and len(real_subset(40, 0.5, 0)) == 20


def test_errors_name_options_without_cli_flags() -> None:
    with pytest.raises(InputError) as exc:
        sweep_arms([Arm("real", "real")], [], [0.5])
    assert str(exc.value) == "replace_fractions needs a synthetic set (and a real+synthetic arm)"
    assert exc.value.render(flag_namer()) == "--replace-fractions needs a synthetic set (and a real+synthetic arm)"
    with pytest.raises(InputError) as exc:
        sweep_arms([Arm("real", "real")], [1.5], [])
    assert exc.value.render(flag_namer()) == "--real-fractions must lie strictly between 0 and 1, got [1.5]"
    with pytest.raises(InputError) as exc:
        resolve_arms(["real+synthetic"], [])
    assert exc.value.render(flag_namer({"checkpoints": "--checkpoint"})) == (
        "arm 'real+synthetic' needs synthetic data: give --synthetic DIR or --checkpoint CKPT"
    )


def test_recipe_arms_parse_expand_and_sweep() -> None:
    arms = resolve_arms(["real", "real+a", "real+synthetic~pretrain0.3~w0.5", "real+b~anneal"], ["a", "b"])
    assert [(a.name, a.synthetic, a.recipe) for a in arms] == [
        ("real", None, ""),
        ("real+a", "a", ""),
        ("real+a~pretrain0.3~w0.5", "a", "pretrain0.3~w0.5"),
        ("real+b~pretrain0.3~w0.5", "b", "pretrain0.3~w0.5"),
        ("real+b~anneal", "b", "anneal"),
    ]
    r = arms[2].mix_recipe()
    assert r is not None and (r.schedule, r.finetune, r.weight) == ("pretrain", 0.3, 0.5)
    assert arms[1].mix_recipe() is None and parse_recipe("pretrain").finetune == 0.25
    sweep = sweep_arms(arms, [0.25], [0.5])
    assert [a.name for a in sweep] == [
        "real@0.25",
        "real+a@0.25",
        "real+a~pretrain0.3~w0.5@0.25",
        "real+b~pretrain0.3~w0.5@0.25",
        "real+b~anneal@0.25",
        "replace-a@0.5",
        "replace-b@0.5",
    ]
    assert sweep[2].recipe == "pretrain0.3~w0.5" and sweep[2].real_fraction == 0.25


def test_recipe_errors() -> None:
    for spec, match in (
        ("real+a~cyclic", "unknown recipe 'cyclic'"),
        ("real+a~w0", r"weight must be in \(0, 1\]"),
        ("real+a~w2", r"weight must be in \(0, 1\]"),
        ("real+a~pretrain1.5", "fine-tuning share must lie strictly between 0 and 1"),
        ("real+a~pretrain~anneal", "choose one schedule"),
        ("classic~anneal", "mixing recipes apply to real"),
        ("real+zz~anneal", "no synthetic set 'zz'"),
    ):
        with pytest.raises(InputError, match=match):
            resolve_arms(["real", spec], ["a"])


def test_classic_plus_synthetic_combination_arms() -> None:
    """``classic+<syn>`` = real + synthetic crops, all with classic augmentation; recipes and the sweep carry over."""
    arms = resolve_arms(["real", "classic", "classic+synthetic~pretrain", "real+a"], ["a", "b"])
    assert [(a.name, a.kind, a.synthetic, a.recipe, a.augment) for a in arms] == [
        ("real", "real", None, "", False),
        ("classic", "classic", None, "", True),
        ("classic+a~pretrain", "real+synthetic", "a", "pretrain", True),
        ("classic+b~pretrain", "real+synthetic", "b", "pretrain", True),
        ("real+a", "real+synthetic", "a", "", False),
    ]
    sweep = sweep_arms(arms, [0.25], [])
    assert [(a.name, a.augment, a.recipe) for a in sweep] == [
        ("real@0.25", False, ""),
        ("classic+a~pretrain@0.25", True, "pretrain"),
        ("classic+b~pretrain@0.25", True, "pretrain"),
        ("real+a@0.25", False, ""),
        ("classic@0.25", True, ""),
    ]
    with pytest.raises(InputError, match="no synthetic set 'zz'"):
        resolve_arms(["classic+zz~anneal"], ["a"])
    with pytest.raises(InputError, match="unknown arm 'classic\\+zz'"):
        resolve_arms(["classic+zz"], ["a"])
