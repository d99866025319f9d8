"""Synthesis (``rsaug synthesize``): the class-balancing planner, synthetic tile sets and whole-scene synthesis.

May import: :mod:`rsaug.core`, :mod:`rsaug.io`, :mod:`rsaug.gan`.
"""
from __future__ import annotations

from rsaug.synthesis.tilesets import (
    PlanConfig,
    SceneConfig,
    SynthesisConfig,
    SynthesisPlan,
    SynthesisResult,
    check_compatible,
    load_plan,
    plan_synthesis,
    save_plan,
    synthesize_scene,
    synthesize_tileset,
)

__all__ = [
    "PlanConfig",
    "SceneConfig",
    "SynthesisConfig",
    "SynthesisPlan",
    "SynthesisResult",
    "check_compatible",
    "load_plan",
    "plan_synthesis",
    "save_plan",
    "synthesize_scene",
    "synthesize_tileset",
]
