"""``rsaug evaluate``: end to end on a real GID-15 tile set, bad inputs, table layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rsaug.cli.main import cli

torch.set_num_threads(2)


def _write_checkpoint(path: Path, model: str, scheme_name: str = "gid15", seed: int = 0) -> Path:
    """A randomly initialised generator saved in the checkpoint format that ``load_generator`` reads.

    Used when the trainer's ``tiny_checkpoint`` fixture is not available (and for scheme mismatches): the
    evaluation bookkeeping does not depend on how well the generator was trained.
    """
    from rsaug.core.classes import BUILTIN_SCHEMES
    from rsaug.gan.checkpoint import CHECKPOINT_FORMAT
    from rsaug.gan.config import model_preset
    from rsaug.gan.networks.generator import build_generator
    from rsaug.io.normalization import Normalization

    scheme = BUILTIN_SCHEMES[scheme_name]
    cfg = model_preset("cpu-small", model=model, num_classes=scheme.num_classes, out_bands=3, ngf=8)
    torch.manual_seed(seed)
    net = build_generator(cfg)
    state = {
        "format": CHECKPOINT_FORMAT,
        "step": 0,
        "model_config": cfg.to_dict(),
        "scheme": scheme.to_dict(),
        "normalization": Normalization("uint8", [0.0] * 3, [255.0] * 3).to_dict(),
        "G": net.state_dict(),
        "G_ema": net.state_dict(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def checkpoints(request, tmp_path_factory) -> list[Path]:
    """A CSEBGAN checkpoint (the trainer's ``tiny_checkpoint`` when it exists) and a noise-free SPADE one."""
    root = tmp_path_factory.mktemp("eval_ckpts")
    try:
        cse = Path(request.getfixturevalue("tiny_checkpoint"))
    except pytest.FixtureLookupError:
        cse = _write_checkpoint(root / "cse" / "checkpoints" / "last.ckpt", "csebgan")
    spade = _write_checkpoint(root / "spade" / "checkpoints" / "last.ckpt", "spade")
    return [cse, spade]


FAST = [
    "--max-tiles",
    "4",
    "--diversity-masks",
    "1",
    "--diversity-samples",
    "3",
    "--diversity-pairs",
    "2",
    "--csd-masks",
    "1",
    "--device",
    "cpu",
    "-q",
]


def test_evaluate_end_to_end(gid15_tileset, checkpoints, tmp_path) -> None:
    out = tmp_path / "eval"
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "evaluate",
            *map(str, checkpoints),
            "--tiles",
            str(gid15_tileset),
            "-o",
            str(out),
            "--label",
            "CSEBGAN",
            "--label",
            "SPADE",
            "--segmenter-iterations",
            "2",
            *FAST,
        ],
    )
    assert res.exit_code == 0, res.output
    data = json.loads((out / "evaluation.json").read_text())
    assert data["tiles"] == 4 and data["split"] == "test" and len(data["class_names"]) == 15
    cse, spade = data["checkpoints"]
    assert [cse["label"], spade["label"]] == ["CSEBGAN", "SPADE"]
    # FID floor: 4 evaluated test tiles against 4 other real tiles of the train split
    floor = data["reference"]["fid_floor"]
    assert floor["split"] == "train" and floor["tiles"] == 4 and floor["evaluated_tiles"] == 4 and floor["fid"] > 0
    for e in (cse, spade):
        assert e["fid"] > 0
        assert e["fid_minus_floor"] == pytest.approx(e["fid"] - floor["fid"])
        seg = e["segmentation"]
        assert 0 <= seg["miou"] <= 1 and 0 <= seg["fwiou"] <= 1 and 0 <= seg["accuracy"] <= 1
        cm = e["confusion_matrix"]
        assert sum(map(sum, cm)) == seg["pixels"] == data["reference"]["segmentation"]["pixels"]
        assert e["diversity"]["samples_per_mask"] == 3 and e["diversity"]["pairs_per_mask"] == 2
        assert len(e["diversity"]["per_mask"]) == 1
    # CSEBGAN has per-class noise: diversity and mCSD are measured; SPADE has no noise: 0 and not defined
    assert cse["has_noise"] and cse["diversity"]["lpips"] > 0
    assert cse["class_diversity"]["mcsd"] > 0 and cse["class_diversity"]["mocd"] >= 0
    assert not spade["has_noise"] and spade["diversity"]["lpips"] == pytest.approx(0.0, abs=1e-6)
    assert spade["class_diversity"] is None and any("mCSD" in n for n in spade["notes"])
    # the table: Table I columns, one row per checkpoint plus the real-data reference row
    md = (out / "evaluation.md").read_text()
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    for col in ("FID", "FID−floor", "mIoU", "FWIoU", "Acc", "LPIPS", "mCSD", "mOCD"):
        assert col in header
    assert f"{floor['fid']:.2f}" in md and "FID floor" in md
    table_i = md.split("\n\n")[1]  # the first table; the radiometry table follows it
    rows = [line for line in table_i.splitlines() if line.startswith("| ") and not line.startswith("| Method")]
    assert [r.split("|")[1].strip().split(" ")[0] for r in rows] == ["CSEBGAN", "SPADE", "real"]
    # the radiometry table under it: both checkpoints, three bands each, and their target counts
    assert [ln.split("|")[1].strip() for ln in md.splitlines() if ln.startswith(("| CSEBGAN |", "| SPADE |"))] == [
        "CSEBGAN"
    ] * 3 + ["SPADE"] * 3
    assert f"CSEBGAN: {cse['radiometry']['summary_line']}" in md
    assert f"{cse['fid']:.2f}" in rows[0]
    page = (out / "evaluation.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "CSEBGAN" in page and "arbor_woodland" in page
    assert json.loads((out / "evaluate_config.json").read_text())["labels"] == ["CSEBGAN", "SPADE"]

    # the saved U-Net is reusable and gives the same numbers; the same seed gives the same FID
    out2 = tmp_path / "eval2"
    res = runner.invoke(
        cli,
        [
            "evaluate",
            str(checkpoints[0]),
            "--tiles",
            str(gid15_tileset),
            "-o",
            str(out2),
            "--segmenter",
            str(out / "segmenter.pt"),
            "--csd-masks",
            "0",
            "--diversity-masks",
            "0",
            "--max-tiles",
            "4",
            "--device",
            "cpu",
            "-q",
        ],
    )
    assert res.exit_code == 0, res.output
    again = json.loads((out2 / "evaluation.json").read_text())
    assert again["segmenter"]["source"] == "file"
    assert again["reference"]["segmentation"] == data["reference"]["segmentation"]
    assert again["checkpoints"][0]["fid"] == pytest.approx(cse["fid"], rel=1e-6)
    assert again["checkpoints"][0]["segmentation"]["miou"] == pytest.approx(cse["segmentation"]["miou"])
    assert again["checkpoints"][0]["diversity"] is None


def _bad(args: list[str]) -> str:
    res = CliRunner().invoke(cli, ["evaluate", *args])
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    return res.output


def test_evaluate_bad_inputs(gid15_tileset, checkpoints, tmp_path) -> None:
    tiles = str(gid15_tileset)
    out = tmp_path / "out"
    ok = str(checkpoints[0])
    assert "checkpoint not found" in _bad([str(tmp_path / "nope.ckpt"), "--tiles", tiles, "-o", str(out)])
    assert "tile set directory not found" in _bad([ok, "--tiles", str(tmp_path / "none"), "-o", str(out)])
    gid5 = _write_checkpoint(tmp_path / "gid5.ckpt", "csebgan", scheme_name="gid5")
    msg = _bad([ok, str(gid5), "--tiles", tiles, "-o", str(out)])
    assert "gid5.ckpt" in msg and "class scheme" in msg
    junk = tmp_path / "junk.ckpt"
    junk.write_text("not a checkpoint")
    assert "checkpoint" in _bad([str(junk), "--tiles", tiles, "-o", str(out)])
    seg = tmp_path / "seg.pt"
    seg.write_bytes(b"garbage")
    assert "segmenter" in _bad([ok, "--tiles", tiles, "-o", str(out), "--segmenter", str(seg)])
    assert "segmenter file not found" in _bad(
        [ok, "--tiles", tiles, "-o", str(out), "--segmenter", str(tmp_path / "missing.pt")]
    )
    # a real segmenter file of another class scheme: the same check as `rsaug filter` (check_segmenter_state)
    from rsaug.core.classes import get_scheme
    from rsaug.segmentation import SegmenterConfig, save_segmenter, train_segmenter
    from tests.segmentation.helpers import gid15_tiles

    tiny = SegmenterConfig(iterations=1, batch_size=2, crop=64, eval_batch_size=2, threads=1)
    trained = train_segmenter(gid15_tiles(["river_001"]), config=tiny, seed=0, device="cpu", num_classes=15)
    other = save_segmenter(trained, tmp_path / "chesapeake_seg.pt", get_scheme("chesapeake"), tiny)
    msg = _bad([ok, "--tiles", tiles, "-o", str(out), "--segmenter", str(other)])
    assert "chesapeake_seg.pt" in msg and "class scheme 'chesapeake'" in msg and len(msg.strip().splitlines()) == 1
    assert "labels" in _bad([ok, "--tiles", tiles, "-o", str(out), "--label", "a", "--label", "b"])
    assert "--rgb-bands" in _bad([ok, "--tiles", tiles, "-o", str(out), "--rgb-bands", "r,g,b"])
    assert "RGB bands" in _bad([ok, "--tiles", tiles, "-o", str(out), "--rgb-bands", "0,1,5"])
    assert "no reserved tiles" in _bad([ok, "--tiles", tiles, "-o", str(out), "--split", "reserved"])
    assert "max tiles" in _bad([ok, "--tiles", tiles, "-o", str(out), "--max-tiles", "1"])
    assert "--fid-floor-split must differ" in _bad([ok, "--tiles", tiles, "-o", str(out), "--fid-floor-split", "test"])
    assert "no 'reserved' tiles for the FID and radiometry floors" in _bad(
        [ok, "--tiles", tiles, "-o", str(out), "--fid-floor-split", "reserved"]
    )
    assert not out.exists()  # nothing written by a failed run
    # a missing required option is a usage error (click's exit code 2)
    assert CliRunner().invoke(cli, ["evaluate", ok, "-o", str(out)]).exit_code == 2


def test_rgb8_conversion_and_labels(tmp_path) -> None:
    import numpy as np

    from rsaug.evaluation.evaluate import RGB8, checkpoint_label
    from rsaug.evaluation.tables import markdown_table

    img = np.arange(2 * 3 * 4 * 4, dtype=np.uint8).reshape(2, 3, 4, 4)
    assert torch.equal(RGB8("uint8", [0, 1, 2], list(img))(img), torch.from_numpy(img))
    assert torch.equal(RGB8("uint8", [2, 1, 0], list(img))(img), torch.from_numpy(img[:, ::-1].copy()))
    # uint16 4-band: per-band 2nd/98th-percentile stretch fitted on the reference tiles, applied to any input
    rng = np.random.default_rng(0)
    ref = rng.integers(1000, 3000, size=(3, 4, 8, 8)).astype(np.uint16)
    conv = RGB8("uint16", [3, 2, 1], list(ref))
    out = conv(ref)
    assert out.dtype == torch.uint8 and out.shape == (3, 3, 8, 8)
    lo, hi = np.percentile(ref[:, 3], 2), np.percentile(ref[:, 3], 98)
    expected = np.rint(np.clip((ref[:, 3].astype(float) - lo) / (hi - lo) * 255, 0, 255))
    assert np.array_equal(out[:, 0].numpy(), expected)
    assert int(out.min()) == 0 and int(out.max()) == 255

    run = tmp_path / "myrun"
    (run / "checkpoints").mkdir(parents=True)
    assert checkpoint_label(run) == "myrun"
    assert checkpoint_label(run / "checkpoints" / "last.ckpt") == "myrun/last"
    assert checkpoint_label(tmp_path / "model.ckpt") == "model"

    results = {
        "config": {
            "seed": 0,
            "lpips_net": "alex",
            "diversity_samples": 10,
            "diversity_pairs": 10,
            "diversity_masks": 50,
            "region": "masked",
            "csd_masks": 20,
            "csd_min_pixels": 64,
        },
        "tileset": "T",
        "scheme": "gid15",
        "split": "test",
        "tiles": 3,
        "segmenter": None,
        "reference": {},
        "class_names": ["a"],
        "checkpoints": [
            {
                "label": "X",
                "model": "spade",
                "step": 7,
                "fid": 12.345,
                "segmentation": None,
                "diversity": {"lpips": 0.0},
                "class_diversity": None,
                "notes": ["no noise"],
            }
        ],
    }
    md = markdown_table(results)
    assert "| X (spade, step 7) | 12.35 | – | – | – | – | 0.0000 | – | – |" in md  # no FID floor measured
    assert "X: no noise" in md
