"""``rsaug export-generator``: a generator file is small, safe and complete, loads like a checkpoint, carries a
data card (with the scores of an evaluation of that checkpoint), and every refusal is one line.

The checkpoint is built directly (``checkpoint_state`` / ``save_checkpoint`` around freshly built tiny networks,
on a 3-tile GID-15 set) instead of trained, so the module runs in seconds; the EMA generator's output layer is
scaled up so that its images are far from constant and differ from the raw generator's.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.core.errors import InputError
from rsaug.gan.checkpoint import (
    CARD_FORMAT,
    CHECKPOINT_VERSION,
    GENERATOR_KEYS,
    checkpoint_state,
    export_generator,
    load_checkpoint,
    save_checkpoint,
)
from rsaug.gan.inference import Generator, load_generator
from rsaug.gan.models import build_models
from rsaug.gan.training_state import rng_state
from rsaug.io.normalization import Normalization
from rsaug.io.tileset import TileSet
from rsaug.tiling import TileOptions, tile_scenes
from tests.fixtures_tiles import gid15_fixture_stems, gid15_pairs
from tests.fixtures_train import tiny_configs

STEPS = 7


@dataclass
class Tiny:
    tiles: Path  # a 3-tile GID-15 set (224 px, one tile per split)
    run: Path  # RUN/ with checkpoints/last.ckpt (a hard link to step_000007.ckpt)
    ckpt: Path
    ema_bytes: int  # bytes of the float32 G_ema state dict


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Tiny:
    root = tmp_path_factory.mktemp("export")
    tiles_dir = root / "tiles"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tile_scenes(
            gid15_pairs(gid15_fixture_stems(1)[:3]),
            tiles_dir,
            TileOptions(tile_size=224, scheme="gid15", split="1:1:1", seed=0),
        )
    tiles = TileSet.open(tiles_dir)
    cfg, mcfg, lcfg = tiny_configs(steps=STEPS)
    torch.manual_seed(0)
    models = build_models(mcfg)
    assert models.D is not None and models.C is not None
    G_ema = copy.deepcopy(models.G)
    with torch.no_grad():  # an untrained generator is nearly constant: make the EMA one paint something
        G_ema.conv_img.weight.mul_(50.0)
    opt_G = torch.optim.Adam(models.G.parameters())
    opt_D = torch.optim.Adam(models.D.parameters())
    state = checkpoint_state(
        step=STEPS,
        total_steps=STEPS,
        train_config=cfg,
        model_config=mcfg,
        loss_config=lcfg,
        scheme=tiles.scheme,
        normalization=Normalization(dtype="uint8", low=[0.0] * 3, high=[255.0] * 3),
        tiles=tiles,
        G=models.G,
        G_ema=G_ema,
        D=models.D,
        C=models.C,
        opt_G=opt_G,
        opt_D=opt_D,
        opt_C=None,
        schedulers={},
        rng=rng_state(),
        log_columns=["step"],
    )
    run = root / "run"
    ckpt = save_checkpoint(state, run / "checkpoints", STEPS, keep=2)
    ema_bytes = sum(t.numel() * t.element_size() for t in G_ema.state_dict().values())
    return Tiny(tiles=tiles_dir, run=run, ckpt=ckpt, ema_bytes=ema_bytes)


@pytest.fixture(scope="module")
def exported(tiny: Tiny, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    dst = tmp_path_factory.mktemp("exported") / "g.ckpt"
    return dst, export_generator(tiny.run, dst)


@pytest.fixture(scope="module")
def masks(tiny: Tiny) -> np.ndarray:
    tiles = TileSet.open(tiny.tiles)
    return np.stack([tiles.read_mask(tiles.index.iloc[i])[:64, :96] for i in range(2)])


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _plain(obj: Any) -> bool:
    if isinstance(obj, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in obj.items())
    if isinstance(obj, list):
        return all(_plain(v) for v in obj)
    return obj is None or isinstance(obj, (str, int, float, bool))


def _one_line(exc: pytest.ExceptionInfo[InputError], *fragments: str) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    for f in fragments:
        assert f in msg, msg
    return msg


def _evaluation(path: Path, entries: list[dict[str, Any]]) -> Path:
    """An ``rsaug evaluate`` result of the real layout (only the fields the card reads)."""
    names = [f"class_{i}" for i in range(15)]
    full = []
    for e in entries:
        full.append(
            {
                "label": "tiny",
                "model": "csebgan",
                "step": STEPS,
                "ema": True,
                "fid": 123.5,
                "segmentation": {"miou": 0.25, "fwiou": 0.3, "accuracy": 0.5, "per_class_iou": [0.1] * 14 + [None]}
                | {"class_names": names},
                "diversity": {"lpips": 0.06, "std": 0.01, "masks": 8},
                "class_diversity": {"mcsd": 0.02, "mocd": 0.001},
                "radiometry": {"units": "DN (uint8)", "summary": {"overall_within": 1}, "summary_line": "overall: 1/3"},
                **e,
            }
        )
    data = {
        "format": "rsaug-evaluation",
        "rsaug_version": "0.1.0",
        "split": "test",
        "tiles": 29,
        "reference": {"segmentation": {"miou": 0.4}},
        "checkpoints": full,
    }
    path.write_text(json.dumps(data))
    return path


# ---------------------------------------------------------------------------------------------- the file
def test_exported_file_is_small_safe_and_holds_only_the_generator(
    tiny: Tiny, exported: tuple[Path, dict[str, Any]]
) -> None:
    dst, card = exported
    size = dst.stat().st_size
    assert 0.4 * tiny.ema_bytes < size < 0.65 * tiny.ema_bytes, (size, tiny.ema_bytes)  # float16: about half
    assert size < 0.3 * tiny.ckpt.stat().st_size
    assert torch.serialization.get_unsafe_globals_in_checkpoint(dst) == []
    state = torch.load(dst, map_location="cpu", weights_only=True)
    assert tuple(state) == GENERATOR_KEYS
    assert state["format"] == "rsaug-checkpoint" and state["version"] == CHECKPOINT_VERSION
    assert state["kind"] == "generator" and state["step"] == STEPS
    orig = load_checkpoint(tiny.ckpt)
    for key in ("model_config", "scheme", "normalization", "tileset", "train_config"):
        assert state[key] == orig[key], key
    assert state["G_ema"].keys() == orig["G_ema"].keys()
    for k, t in state["G_ema"].items():
        src = orig["G_ema"][k]
        if src.is_floating_point():
            assert t.dtype == torch.float16, k
            assert torch.allclose(t.float(), src, rtol=1e-3, atol=1e-4), k
        else:  # BatchNorm counters stay integers
            assert t.dtype == src.dtype and torch.equal(t, src), k
    assert state["data_card"] == card


def test_data_card_describes_source_model_data_training_and_weights(
    tiny: Tiny, exported: tuple[Path, dict[str, Any]]
) -> None:
    dst, card = exported
    assert _plain(card) and json.loads(json.dumps(card)) == card
    assert json.loads(Path(f"{dst}.json").read_text()) == card
    assert card["format"] == CARD_FORMAT and card["rsaug_version"]
    assert card["source"]["file"] == "last.ckpt" and card["source"]["sha256"] == _sha(tiny.ckpt)
    assert card["source"]["bytes"] == tiny.ckpt.stat().st_size
    model = card["model"]
    assert model["family"] == "csebgan" and model["widths"]["ngf"] == 8 and model["widths"]["embed_dim"] == 8
    assert model["parameters"] > 0 and model["num_classes"] == 15 and model["out_bands"] == 3 and model["has_noise"]
    data = card["training_data"]
    assert data["scenes"] == 3 and data["splits"]["train"] == 1 and sum(data["splits"].values()) == 3
    assert (data["tile_size"], data["bands"], data["dtype"]) == (224, 3, "uint8")
    assert data["scheme"] == "gid15" and len(data["class_names"]) == 15 and data["georeferenced"] is False
    train = card["training"]
    assert train["steps"] == STEPS and train["preset"] == "cpu-small"
    assert (train["crop_size"], train["batch_size"], train["seed"], train["device"]) == (32, 4, 0, "auto")
    state = load_checkpoint(tiny.ckpt)
    assert card["weights"] == {"source": "ema", "dtype": "float16", "tensors": len(state["G_ema"]), "kept_wider": []}
    assert card["evaluation"] is None and card["notes"] == []


def test_load_generator_reads_the_file_and_matches_the_original(
    tiny: Tiny, exported: tuple[Path, dict[str, Any]], masks: np.ndarray, tmp_path: Path
) -> None:
    dst, card = exported
    orig = load_generator(tiny.ckpt, device="cpu")
    gen = load_generator(dst, device="cpu")
    assert isinstance(gen, Generator) and gen.ema and gen.step == STEPS
    assert gen.config == orig.config and gen.scheme.to_dict() == orig.scheme.to_dict()
    assert gen.normalization == orig.normalization and gen.tileset == orig.tileset
    assert gen.checkpoint_sha256 == _sha(dst) and gen.data_card == card and orig.data_card == {}
    assert all(p.dtype == torch.float32 for p in gen.net.parameters())
    a, b = orig.generate(masks, seed=3), gen.generate(masks, seed=3)
    assert a.std() > 0.05  # not a constant image: the comparison means something
    assert (a - b).abs().max() < 2e-2
    # a generator file holds one set of weights: ema=False loads it too
    assert torch.equal(load_generator(dst, device="cpu", ema=False).generate(masks, seed=3), b)
    # float32 export: the same images
    full = tmp_path / "g32.ckpt"
    card32 = export_generator(tiny.ckpt, full, half=False)
    assert card32["weights"]["dtype"] == "float32"
    assert 0.9 * tiny.ema_bytes < full.stat().st_size < 1.2 * tiny.ema_bytes
    assert torch.allclose(load_generator(full, device="cpu").generate(masks, seed=3), a, atol=1e-6)


def test_synthesize_accepts_the_file_and_records_its_hash(
    tiny: Tiny, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    dst, _ = exported
    out = tmp_path / "syn"
    res = CliRunner().invoke(cli, ["synthesize", "-c", str(dst), str(tiny.tiles), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    record = json.loads((out / "synthesis.json").read_text())
    assert _sha(dst) in json.dumps(record)
    assert len(list((out / "images").glob("*.tif"))) == 1


def test_raw_weights_when_the_checkpoint_has_no_ema(tiny: Tiny, tmp_path: Path) -> None:
    state = torch.load(tiny.ckpt, map_location="cpu", weights_only=True)
    state["G_ema"] = None
    src = tmp_path / "no_ema.ckpt"
    torch.save(state, src)
    card = export_generator(src, tmp_path / "g.ckpt")
    assert card["weights"]["source"] == "raw" and any("G_ema" in n for n in card["notes"])
    gen = load_generator(tmp_path / "g.ckpt", device="cpu")
    assert not gen.ema and gen.data_card["weights"]["source"] == "raw"


# ---------------------------------------------------------------------------------------------- scores
def test_evaluation_scores_of_this_checkpoint_go_into_the_card(tiny: Tiny, tmp_path: Path) -> None:
    sha = _sha(tiny.ckpt)
    ev = _evaluation(
        tmp_path / "evaluation.json",
        [
            {"label": "other", "checkpoint": "/elsewhere/last.ckpt", "checkpoint_sha256": "0" * 64, "fid": 999.0},
            {"label": "this one", "checkpoint": "/moved/last.ckpt", "checkpoint_sha256": sha},
        ],
    )
    card = export_generator(tiny.ckpt, tmp_path / "g.ckpt", evaluation=ev)
    scores = card["evaluation"]
    assert scores["label"] == "this one" and scores["checkpoint_sha256"] == sha and scores["fid"] == 123.5
    assert scores["segmentation"]["miou"] == 0.25 and scores["segmentation"]["real_miou"] == 0.4
    assert scores["segmentation"]["per_class_iou"]["class_0"] == 0.1
    assert scores["segmentation"]["per_class_iou"]["class_14"] is None
    assert scores["diversity"]["lpips"] == 0.06 and scores["class_diversity"]["mcsd"] == 0.02
    assert scores["radiometry"]["summary_line"] == "overall: 1/3" and scores["split"] == "test"
    assert json.loads(Path(f"{tmp_path / 'g.ckpt'}.json").read_text())["evaluation"] == scores
    # an entry without a hash matches by path
    ev2 = _evaluation(tmp_path / "ev2.json", [{"checkpoint": str(tiny.run / "checkpoints" / "step_000007.ckpt")}])
    assert export_generator(tiny.ckpt, tmp_path / "g2.ckpt", evaluation=ev2)["evaluation"]["fid"] == 123.5


def test_evaluation_of_another_generator_is_refused(tiny: Tiny, tmp_path: Path) -> None:
    ev = _evaluation(tmp_path / "evaluation.json", [{"checkpoint": str(tiny.ckpt), "checkpoint_sha256": "a" * 64}])
    dst = tmp_path / "g.ckpt"
    with pytest.raises(InputError) as exc:
        export_generator(tiny.ckpt, dst, evaluation=ev)
    _one_line(exc, str(ev), "scores other generators", "last.ckpt")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something-else"}')
    with pytest.raises(InputError) as exc:
        export_generator(tiny.ckpt, dst, evaluation=bad)
    _one_line(exc, "not an `rsaug evaluate` result")
    assert not dst.exists() and not Path(f"{dst}.json").exists()


# ---------------------------------------------------------------------------------------------- refusals
def test_existing_output_and_the_source_itself_are_refused(
    tiny: Tiny, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    dst = tmp_path / "g.ckpt"
    dst.write_bytes(b"keep me")
    with pytest.raises(InputError) as exc:
        export_generator(tiny.ckpt, dst)
    _one_line(exc, str(dst), "already exists", "overwrite")
    assert dst.read_bytes() == b"keep me" and not Path(f"{dst}.json").exists()
    export_generator(tiny.ckpt, dst, overwrite=True)
    assert load_checkpoint(dst)["kind"] == "generator"
    assert dst.read_bytes() == exported[0].read_bytes()  # reproducible: the same checkpoint, the same bytes
    # the source itself, also through its hard link and with overwrite
    for same in (tiny.ckpt, tiny.run / "checkpoints" / "step_000007.ckpt"):
        before = _sha(tiny.ckpt)
        with pytest.raises(InputError) as exc:
            export_generator(tiny.run, same, overwrite=True)
        _one_line(exc, "is the source checkpoint")
        assert _sha(tiny.ckpt) == before
    # weights that do not fit the stored model config
    state = torch.load(tiny.ckpt, map_location="cpu", weights_only=True)
    state["model_config"]["embed_dim"] = 4
    torch.save(state, tmp_path / "mismatch.ckpt")
    with pytest.raises(InputError) as exc:
        export_generator(tmp_path / "mismatch.ckpt", tmp_path / "x.ckpt")
    _one_line(exc, "do not match the stored config", "wrong shape")
    with pytest.raises(InputError) as exc:
        export_generator(tmp_path / "missing.ckpt", tmp_path / "x.ckpt")
    _one_line(exc, "checkpoint not found")
    with pytest.raises(InputError) as exc:
        export_generator(tmp_path, tmp_path / "x.ckpt")
    _one_line(exc, "run directory")
    assert not (tmp_path / "x.ckpt").exists()


class _Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (os.system, (f"touch {self.marker}",))


def test_a_hostile_pickle_is_refused_and_runs_nothing(tiny: Tiny, tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    state = torch.load(tiny.ckpt, map_location="cpu", weights_only=True)
    state["payload"] = _Planted(marker)
    evil = tmp_path / "evil.ckpt"
    torch.save(state, evil)
    dst = tmp_path / "g.ckpt"
    with pytest.raises(InputError) as exc:
        export_generator(evil, dst)
    _one_line(exc, str(evil), "could run code", "convert-checkpoint --trust")
    assert not marker.exists(), "the planted command ran"
    assert not dst.exists() and not Path(f"{dst}.json").exists()


# ---------------------------------------------------------------------------------------------- CLI
def _cli(*args: Any):
    return CliRunner().invoke(cli, ["export-generator", *map(str, args)])


def test_cli_exports_and_prints_a_summary(tiny: Tiny, tmp_path: Path) -> None:
    ev = _evaluation(tmp_path / "evaluation.json", [{"checkpoint_sha256": _sha(tiny.ckpt)}])
    dst = tmp_path / "g.ckpt"
    res = _cli(tiny.run, dst, "--evaluation", ev)
    assert res.exit_code == 0, res.output
    assert "MB" in res.output and "float16" in res.output and f"step {STEPS}" in res.output
    assert "FID 123.5" in res.output and "mIoU 0.250 (real 0.400)" in res.output and "LPIPS diversity" in res.output
    assert load_generator(dst, device="cpu").data_card["evaluation"]["fid"] == 123.5
    res = _cli(tiny.ckpt, tmp_path / "g32.ckpt", "--float32")
    assert res.exit_code == 0 and "float32" in res.output, res.output
    res = _cli("--help")
    text = " ".join(res.output.split())
    assert res.exit_code == 0 and "--float32" in text and "[default: (no scores)]" in text


@pytest.mark.parametrize("case", ["exists", "same", "evaluation", "missing"])
def test_cli_errors_are_one_line_exit_2_and_write_nothing(tiny: Tiny, tmp_path: Path, case: str) -> None:
    dst = tmp_path / "g.ckpt"
    args: list[Any] = [tiny.ckpt, dst]
    if case == "exists":
        dst.write_bytes(b"x")
    elif case == "same":
        args = [tiny.run, tiny.ckpt]
    elif case == "evaluation":
        args += ["--evaluation", _evaluation(tmp_path / "ev.json", [{"checkpoint_sha256": "b" * 64}])]
    else:
        args = [tmp_path / "nothing.ckpt", dst]
    before = _sha(tiny.ckpt)
    res = _cli(*args)
    assert res.exit_code == 2, res.output
    text = res.output.strip()
    assert text.startswith("Error: ") and "\n" not in text and "Traceback" not in text, text
    assert not Path(f"{dst}.json").exists() and (not dst.exists() or dst.read_bytes() == b"x")
    assert _sha(tiny.ckpt) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".rsaug-tmp")) == []


def test_training_cannot_resume_from_an_export(
    tiny: Tiny, exported: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    """An exported generator copied to RUN/checkpoints/last.ckpt is refused by `rsaug train --resume` in one line."""
    import shutil

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(exported[0], run / "checkpoints" / "last.ckpt")
    res = CliRunner().invoke(cli, ["train", str(tiny.tiles), "-o", str(run), "--resume", "--device", "cpu", "-q"])
    assert res.exit_code == 2, res.output
    assert "holds a generator only" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1
