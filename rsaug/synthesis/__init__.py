"""Synthesis (``rsaug synthesize``): the class-balancing planner, synthetic tile sets and whole-scene synthesis.

Modules: :mod:`~rsaug.synthesis.planner` (:func:`plan_synthesis`: which masks, how many samples),
:mod:`~rsaug.synthesis.tilesets` (:func:`synthesize_tileset`: a plan -> a synthetic tile set) and
:mod:`~rsaug.synthesis.scenes` (:func:`synthesize_scene`: one large mask -> one seamless synthetic scene)::

    from rsaug.synthesis import plan_synthesis, synthesize_scene, synthesize_tileset

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`.
"""

from __future__ import annotations

from rsaug.synthesis.planner import (
    PlanConfig,
    SynthesisPlan,
    load_plan,
    plan_synthesis,
    sample_seed,
    save_plan,
)
from rsaug.synthesis.scenes import SceneConfig, feather_weights, synthesize_scene, window_starts
from rsaug.synthesis.tilesets import (
    SynthesisConfig,
    SynthesisResult,
    check_compatible,
    sample_noise,
    synthesize_tileset,
    synthetic_tile_id,
)

__all__ = [
    "PlanConfig",
    "SceneConfig",
    "SynthesisConfig",
    "SynthesisPlan",
    "SynthesisResult",
    "check_compatible",
    "feather_weights",
    "load_plan",
    "plan_synthesis",
    "sample_noise",
    "sample_seed",
    "save_plan",
    "synthesize_scene",
    "synthesize_tileset",
    "synthetic_tile_id",
    "window_starts",
]
