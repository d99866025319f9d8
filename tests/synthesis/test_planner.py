"""The synthesis planner on real GID-15 / Chesapeake class statistics (no generator needed)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import rasterio

from rsaug.core.classes import get_scheme
from rsaug.core.errors import InputError
from rsaug.io.tileset import TileSet, count_column
from rsaug.synthesis import PlanConfig, SynthesisPlan, load_plan, plan_synthesis, save_plan
from rsaug.tiling import assign_random
from tests.conftest import GID15


@pytest.fixture(scope="module")
def gid15_index() -> pd.DataFrame:
    """An index of all 609 shared GID-15 tiles with their real per-class pixel counts and a seeded 4:1:1 split."""
    scheme = get_scheme("gid15")
    labels = sorted((GID15 / "labels_index").glob("*.tif"))
    assert len(labels) > 500
    split_codes = assign_random(len(labels), (4, 1, 1), 0, 0)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path, code in zip(labels, split_codes):
            with rasterio.open(path) as src:
                mask = scheme.encode(src.read(1), path)
            counts = np.bincount(mask.ravel(), minlength=256)[: scheme.num_classes]
            rows.append(
                {
                    "tile_id": path.stem,
                    "split": str(code),
                    **{count_column(n): int(c) for n, c in zip(scheme.names, counts)},
                }
            )
    return pd.DataFrame(rows)


def _shares(counts: np.ndarray) -> np.ndarray:
    return counts / counts.sum()


def test_rare_classes_at_least_doubled_on_real_gid15(gid15_index: pd.DataFrame) -> None:
    scheme = get_scheme("gid15")
    plan = plan_synthesis(gid15_index, scheme=scheme, mode="rare", seed=0)
    before = np.array(plan.counts_before)
    after = np.array(plan.counts_after)
    train = gid15_index[gid15_index["split"] == "train"]
    expected_before = train[[count_column(n) for n in scheme.names]].to_numpy().sum(axis=0)
    np.testing.assert_array_equal(before, expected_before)
    shares = _shares(before)
    rare = [scheme.names[k] for k in range(15) if shares[k] < np.median(shares)]
    assert plan.rare == rare and len(rare) == 7
    for k, name in enumerate(scheme.names):
        if name in rare:
            assert after[k] >= 2 * before[k], name
    # the counts after are exactly what the chosen masks add
    P = train.set_index("tile_id")[[count_column(n) for n in scheme.names]]
    added = sum(n * P.loc[t].to_numpy() for t, n in plan.tiles)
    np.testing.assert_array_equal(after, before + added)
    assert all(1 <= n <= 2 for _, n in plan.tiles)  # default cap 2 * ceil(factor - 1)
    # rare classes gain share, and the greedy plan grows common classes far less than the naive plan
    # (one sample of every training mask that contains a rare class)
    common = [k for k, n in enumerate(scheme.names) if n not in rare]
    assert all(_shares(after)[k] > shares[k] for k in range(15) if scheme.names[k] in rare)
    has_rare = (P[[count_column(n) for n in rare]].to_numpy() > 0).any(axis=1)
    naive_common = P.to_numpy()[has_rare][:, common].sum()
    planned_common = (after - before)[common].sum()
    assert planned_common < 0.5 * naive_common


def test_planner_is_deterministic_and_factor_generalises(gid15_index: pd.DataFrame) -> None:
    scheme = get_scheme("gid15")
    a = plan_synthesis(gid15_index, scheme=scheme, mode="rare", seed=3)
    b = plan_synthesis(gid15_index, scheme=scheme, mode="rare", seed=3)
    assert a.to_dict() == b.to_dict()
    tripled = plan_synthesis(gid15_index, scheme=scheme, mode="rare", factor=3.0, seed=0)
    before, after = np.array(tripled.counts_before), np.array(tripled.counts_after)
    for name in tripled.rare:
        k = scheme.names.index(name)
        assert after[k] >= 3 * before[k]
    custom = plan_synthesis(gid15_index, scheme=scheme, mode="rare", rare_share=0.05)
    shares = _shares(np.array(custom.counts_before))
    assert custom.threshold == 0.05
    assert custom.rare == [n for k, n in enumerate(scheme.names) if shares[k] < 0.05]


def test_plain_mode_doubles_the_training_split(gid15_index: pd.DataFrame) -> None:
    scheme = get_scheme("gid15")
    n_train = int((gid15_index["split"] == "train").sum())
    plan = plan_synthesis(gid15_index, scheme=scheme)
    assert plan.total_samples == n_train and all(n == 1 for _, n in plan.tiles)
    np.testing.assert_array_equal(np.array(plan.counts_after), 2 * np.array(plan.counts_before))
    half = plan_synthesis(gid15_index, scheme=scheme, factor=1.5, seed=1)
    assert half.total_samples == round(0.5 * n_train)
    assert half.tiles == plan_synthesis(gid15_index, scheme=scheme, factor=1.5, seed=1).tiles
    assert half.tiles != plan_synthesis(gid15_index, scheme=scheme, factor=1.5, seed=2).tiles
    three = plan_synthesis(gid15_index, scheme=scheme, samples_per_mask=3)
    assert three.total_samples == 3 * n_train


def test_vary_mode_uses_masks_containing_the_class(gid15_index: pd.DataFrame) -> None:
    scheme = get_scheme("gid15")
    plan = plan_synthesis(gid15_index, scheme=scheme, mode="vary", vary_class="river", samples_per_mask=2)
    train = gid15_index[gid15_index["split"] == "train"]
    with_river = set(train.loc[train["px_river"] > 0, "tile_id"])
    assert {t for t, _ in plan.tiles} == with_river and all(n == 2 for _, n in plan.tiles)
    with pytest.raises(InputError, match="not in scheme"):
        plan_synthesis(gid15_index, scheme=scheme, mode="vary", vary_class="volcano")


def test_impossible_and_invalid_plans(gid15_index: pd.DataFrame) -> None:
    scheme = get_scheme("gid15")
    # a training split without any pond or lake pixels: those classes are rare (share 0) with no masks
    no_water = gid15_index[(gid15_index["px_pond"] == 0) & (gid15_index["px_lake"] == 0)]
    with pytest.raises(InputError, match=r"impossible plan.*lake.*pond"):
        plan_synthesis(no_water, scheme=scheme, mode="rare")
    plan = plan_synthesis(no_water, scheme=scheme, mode="rare", allow_absent=True)
    assert set(plan.absent) == {"lake", "pond"} and "pond" not in plan.rare
    with pytest.raises(InputError, match="samples_per_mask cannot be combined"):
        plan_synthesis(gid15_index, scheme=scheme, mode="rare", samples_per_mask=2)
    with pytest.raises(InputError, match="factor"):
        plan_synthesis(gid15_index, scheme=scheme, mode="rare", factor=1.0)
    with pytest.raises(InputError, match="too small"):
        plan_synthesis(gid15_index, scheme=scheme, mode="rare", factor=4.0, max_samples_per_mask=2)
    with pytest.raises(InputError, match="no tiles"):
        plan_synthesis(gid15_index, scheme=scheme, split="reserved")


def test_plan_json_round_trip_and_table(gid15_tileset, tmp_path) -> None:
    ts = TileSet.open(gid15_tileset)
    plan = plan_synthesis(ts, PlanConfig(mode="rare", seed=0))
    path = save_plan(plan, tmp_path / "plan.json")
    again = load_plan(path)
    assert isinstance(again, SynthesisPlan) and again.to_dict() == plan.to_dict()
    table = plan.format_table()
    for name in ts.scheme.names:
        assert name in table
    assert f"synthetic tiles: {plan.total_samples}" in table
    d = plan.to_dict()
    assert {c["name"] for c in d["classes"] if c["rare"]} == set(plan.rare)
    assert all(c["pixels_after"] >= 2 * c["pixels_before"] for c in d["classes"] if c["rare"])
