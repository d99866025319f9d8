"""Class schemes: exact colour decoding and index conventions on real GID-15 labels."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from rsaug.core.classes import BUILTIN_SCHEMES, IGNORE, ClassScheme, get_scheme
from rsaug.core.errors import InputError
from tests.conftest import GID15


def _stems(n: int = 25) -> list[str]:
    return sorted(p.stem for p in (GID15 / "labels_index").glob("*.tif"))[:: max(1, 609 // n)]


@pytest.mark.parametrize("stem", _stems())
def test_gid15_colour_and_both_index_conventions_agree(stem: str) -> None:
    with rasterio.open(GID15 / "labels_index" / f"{stem}.tif") as f:
        raw = f.read(1)
    rgb = np.array(Image.open(GID15 / "labels_color" / f"{stem}_15label.png").convert("RGB"))
    ours = get_scheme("gid15").encode(raw)
    assert np.array_equal(get_scheme("gid15").decode_colors(rgb), ours)
    official = (raw.astype(np.int64) + 1) % 16
    assert np.array_equal(get_scheme("gid15-official").encode(official), ours)
    assert set(np.unique(ours).tolist()) <= set(range(15)) | {IGNORE}
    assert np.array_equal(ours == IGNORE, raw == 15)


def test_unknown_colours_are_listed() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[0, 0] = (1, 2, 3)
    rgb[1, :] = (9, 9, 9)
    with pytest.raises(InputError) as ei:
        get_scheme("gid15").decode_colors(rgb, "lab.png")
    msg = str(ei.value)
    assert msg.startswith("lab.png:") and "(1,2,3)x1" in msg and "(9,9,9)x4" in msg


def test_out_of_scheme_values_name_values_and_counts() -> None:
    with pytest.raises(InputError) as ei:
        get_scheme("chesapeake").encode(np.array([[1, 2, 7], [7, 9, 15]]), "lc.tif")
    assert "7 (2 px)" in str(ei.value) and "9 (1 px)" in str(ei.value)


def test_chesapeake_and_loveda_conventions() -> None:
    ches = get_scheme("chesapeake").encode(np.array([1, 6, 15, 0]))
    assert ches.tolist() == [0, 5, IGNORE, IGNORE]
    lov = get_scheme("loveda").encode(np.array([0, 1, 7]))
    assert lov.tolist() == [IGNORE, 0, 6]


def test_user_scheme_round_trip(tmp_path) -> None:
    spec = {
        "name": "roads",
        "classes": [
            {"name": "background", "value": 0, "color": [10, 10, 10]},
            {"name": "road", "value": 1, "color": [255, 255, 0]},
            {"name": "building", "value": 2, "color": [255, 0, 0]},
        ],
        "unknown_values": [255],
        "unknown_color": [255, 255, 255],
    }
    p = tmp_path / "s.json"
    p.write_text(json.dumps(spec))
    s = get_scheme(str(p))
    assert s.names == ["background", "road", "building"]
    assert ClassScheme.from_dict(s.to_dict()) == s
    assert s.encode(np.array([0, 2, 255])).tolist() == [0, 2, IGNORE]
    assert s.colormap()[IGNORE][:3] == (255, 255, 255)


def test_bad_scheme_inputs(tmp_path) -> None:
    with pytest.raises(InputError, match="unknown class scheme"):
        get_scheme("nope")
    p = tmp_path / "bad.json"
    p.write_text("{not json")
    with pytest.raises(InputError, match=r"bad\.json"):
        get_scheme(str(p))
    with pytest.raises(InputError, match="not in scheme"):
        BUILTIN_SCHEMES["gid15"].index_of("glacier")
