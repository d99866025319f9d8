"""``rsaug train`` through click's CliRunner: a tiny real run, resume, and one-line errors (exit 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rsaug.cli.main import cli
from rsaug.gan.checkpoint import load_checkpoint
from rsaug.gan.log import read_log
from rsaug.io.tileset import TileSet, write_index, write_tile

TINY = ["--crop-size", "32", "--batch-size", "2", "--ngf", "8", "--ndf", "8", "--lambda-vgg", "0"]


def _run(*args: str):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def _one_line_error(result, *fragments: str) -> None:
    assert result.exit_code == 2, result.output
    text = result.output.strip()
    assert text.startswith("Error: ") and "\n" not in text and "Traceback" not in text, text
    for f in fragments:
        assert f in text, text


def test_cli_trains_and_resumes(gid15_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    res = _run(gid15_tileset, "-o", run, *TINY, "--steps", "2", "--checkpoint-every", "1", "--sample-every", "1")
    assert res.exit_code == 0, res.output
    assert "step 2/2" in res.output and "checkpoint:" in res.output and "images/s" in res.output
    for p in (
        "config.json",
        "log.csv",
        "checkpoints/last.ckpt",
        "checkpoints/step_000001.ckpt",
        "samples/step_000002.png",
        "summary.json",
    ):
        assert (run / p).is_file(), p
    assert [int(r["step"]) for r in read_log(run / "log.csv")] == [1, 2]
    ck = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ck["model_config"]["ngf"] == 8 and ck["train_config"]["preset"] == "cpu-small"
    # a second run into the same directory must be an explicit resume
    _one_line_error(_run(gid15_tileset, "-o", run, *TINY, "--steps", "2"), "--resume")
    # resuming a finished run is a no-op that keeps the checkpoint
    res = _run(gid15_tileset, "-o", run, "--resume", "--quiet")
    assert res.exit_code == 0, res.output
    ck2 = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ck2["step"] == 2 and all(torch.equal(ck["G"][k], ck2["G"][k]) for k in ck["G"])


def test_missing_tile_set(tmp_path: Path) -> None:
    _one_line_error(_run(tmp_path / "nothing", "-o", tmp_path / "run"), "tile set directory not found")
    assert not (tmp_path / "run").exists()


def test_mask_values_outside_the_scheme(gid15_tileset: Path, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    shutil.copytree(gid15_tileset, root)
    tiles = TileSet.open(root)
    row = tiles.split("train").iloc[3]
    mask = tiles.read_mask(row)
    mask[0, :5] = 17
    write_tile(tiles.mask_path(row), mask, is_mask=True)
    _one_line_error(_run(root, "-o", tmp_path / "run", *TINY), "mask values outside class scheme", "17 (5 px)")
    assert not (tmp_path / "run").exists()


def test_empty_train_split(gid15_tileset: Path, tmp_path: Path) -> None:
    root = tmp_path / "tiles"
    shutil.copytree(gid15_tileset, root)
    idx = TileSet.open(root).index
    idx["split"] = idx["split"].replace({"train": "reserved"})
    write_index(root, idx)
    _one_line_error(_run(root, "-o", tmp_path / "run", *TINY), "'train' split of the tile set is empty")


def test_resume_on_a_tile_set_of_another_scheme(gid15_tileset: Path, chesapeake_tileset: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert _run(gid15_tileset, "-o", run, *TINY, "--steps", "1", "--quiet").exit_code == 0
    _one_line_error(_run(chesapeake_tileset, "-o", run, "--resume"), "class scheme 'chesapeake'", "differs")
    _one_line_error(_run(gid15_tileset, "-o", tmp_path / "fresh", "--resume"), "no checkpoint to resume")


@pytest.mark.parametrize(
    "args,fragment",
    [
        (["--no-conductor", "--conductor-no-real"], "at most one of"),
        (["--model", "spade", "--ds-loss", "1"], "diversity-sensitive loss needs a generator with noise"),
        (["--frozen-conductor", "missing.ckpt"], "frozen conductor checkpoint not found"),
        (["--crop-size", "36"], "not a multiple of 16"),
        (["--crop-size", "256"], "smaller than the crop size 256"),
        (["--device", "cpu", "--precision", "16-mixed"], "needs CUDA"),
        (["--steps", "0"], "--steps must be at least 1"),
    ],
)
def test_bad_options_are_one_line_errors(args: list[str], fragment: str, gid15_tileset: Path, tmp_path: Path) -> None:
    res = _run(gid15_tileset, "-o", tmp_path / "run", *args)
    _one_line_error(res, fragment)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_diverged_run_is_a_one_line_error_with_exit_status_1(
    gid15_tileset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import rsaug.gan.losses as losses

    monkeypatch.setattr(losses, "hinge_g_loss", lambda fake: torch.tensor(float("nan")))
    res = _run(gid15_tileset, "-o", tmp_path / "run", *TINY, "--steps", "2", "--quiet")
    assert res.exit_code == 1, res.output
    text = res.output.strip()
    assert (
        text.startswith("Error: non-finite loss g_adv = nan at step 1; training stopped (no checkpoint written yet)")
        and "\n" not in text
    ), text


def test_cpu_long_preset(gid15_tileset: Path, tmp_path: Path) -> None:
    """cpu-long: cpu-small's networks (and spatial noise for CSEBGAN) trained 6x longer with a slower EMA; the CLI
    lists every preset (and generator padding) of the registry and a cpu-long run starts (2 steps) with the
    preset's settings."""
    from rsaug.cli.train import G_PADDINGS, GAN_PRESETS
    from rsaug.gan.config import G_PADDINGS as CONFIG_G_PADDINGS
    from rsaug.gan.config import PRESETS, preset_configs

    assert list(PRESETS) == GAN_PRESETS and list(CONFIG_G_PADDINGS) == G_PADDINGS
    small, small_model = preset_configs("cpu-small")
    long, long_model = preset_configs("cpu-long")
    assert long_model == small_model and long_model["spatial_noise"] == 0.25
    assert long.steps == 6 * small.steps and long.ema_decay > small.ema_decay and long.crop_size == small.crop_size
    run = tmp_path / "run"
    res = _run(gid15_tileset, "-o", run, "--preset", "cpu-long", "--steps", "2", "--quiet")
    assert res.exit_code == 0, res.output
    ck = load_checkpoint(run / "checkpoints" / "last.ckpt")
    assert ck["train_config"]["preset"] == "cpu-long" and ck["train_config"]["ema_decay"] == long.ema_decay
    assert ck["model_config"]["ngf"] == small_model["ngf"] and ck["model_config"]["spatial_noise"] == 0.25
