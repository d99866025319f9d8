"""The bundled sample and the bundled generator (``rsaug.io.sample``), and how ``rsaug demo`` uses them.

The bundled generator (``rsaug/data/generators/``) is an ``rsaug export-generator`` file: these tests check
that it is small, safe and complete, that it was trained on GID-15 tiles disjoint from the 45 sample tiles the
demo tiles, trains on and evaluates on (by name and by image hash), and that its images of the sample's masks
have the sample's brightness and vary with the noise. The demo's refusals are checked without running it.
"""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from rsaug.core.locks import LOCK_FILE
from rsaug.gan.checkpoint import CARD_FORMAT, load_checkpoint
from rsaug.gan.inference import Generator, load_generator
from rsaug.io.sample import gid15_generator, gid15_sample, sample_root
from rsaug.io.tileset import TileSet
from rsaug.tiling import TileOptions, tile_scenes
from rsaug.tiling.inputs import find_pairs
from tests.conftest import GID15

MAX_BYTES = 30 * 1024 * 1024  # the limit for a shipped file


def _manifest(path: Path) -> dict[str, str]:
    """stem -> image hash (``image_sha1_16``) of a GID-15 manifest.csv."""
    with open(path, newline="") as f:
        return {r["stem"]: r["image_sha1_16"] for r in csv.DictReader(f)}


@pytest.fixture(scope="module")
def generator() -> Generator:
    return load_generator(gid15_generator(), device="cpu")


@pytest.fixture(scope="module")
def sample_tiles(tmp_path_factory: pytest.TempPathFactory) -> TileSet:
    """The sample tiled as the demo tiles it (112 px, gid15 colour labels, seed 0)."""
    root = tmp_path_factory.mktemp("sample") / "tiles"
    images, labels = gid15_sample()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tile_scenes(
            find_pairs(images, labels, mask_suffix="_15label"),
            root,
            TileOptions(tile_size=112, scheme="gid15", seed=0),
        )
    return TileSet.open(root)


def test_bundled_generator_is_a_small_safe_generator_file_with_its_card() -> None:
    path = gid15_generator()
    assert path.is_file() and path.stat().st_size < MAX_BYTES
    state = load_checkpoint(path)  # the safe reader: refuses anything that could run code
    assert state["kind"] == "generator"
    assert "D" not in state and "C" not in state and "optimizers" not in state
    card = json.loads(Path(f"{path}.json").read_text())
    assert card == state["data_card"] and card["format"] == CARD_FORMAT
    assert card["weights"] == {**card["weights"], "source": "ema", "dtype": "float16"}
    assert card["training"]["preset"] == "cpu-long" and card["training"]["steps"] == state["step"] > 0
    scores = card["evaluation"]  # the scores of its own test split, recorded at export
    assert scores["split"] == "test" and scores["fid"] > 0 and scores["diversity"]["lpips"] > 0
    assert all(t.dtype == torch.float16 for t in state["G_ema"].values() if t.is_floating_point())


def test_bundled_generator_never_saw_the_sample() -> None:
    """Its training tile set's scenes share neither a name nor an image (hash) with the 45 sample tiles, so the
    demo's evaluation and benchmark are not contaminated."""
    tileset = load_checkpoint(gid15_generator())["tileset"]
    trained = {Path(s["scene"]).stem for s in tileset["sources"]}
    sample = _manifest(sample_root() / "gid15" / "manifest.csv")
    shared = _manifest(GID15 / "manifest.csv")
    assert len(sample) == 45 and len(trained) > 500
    assert trained <= shared.keys()  # all from the shared GID-15 tiles, whose hashes are known
    assert not trained & sample.keys()
    assert not {shared[s] for s in trained} & set(sample.values())


def test_bundled_generator_loads_for_the_sample_scheme(generator: Generator, sample_tiles: TileSet) -> None:
    assert generator.scheme.names == sample_tiles.scheme.names
    assert generator.out_bands == sample_tiles.bands == 3 and generator.dtype == sample_tiles.dtype == "uint8"
    assert generator.has_noise and generator.data_card["training"]["steps"] == generator.step
    assert all(p.dtype == torch.float32 for p in generator.net.parameters())


def test_bundled_generator_paints_the_sample_masks(generator: Generator, sample_tiles: TileSet) -> None:
    """Its images of the sample's test masks have their real images' brightness (band means within 12 DN,
    on 224-px tiles of its own test split the evaluation measured -3.9..+1.0 DN), are reproducible per seed,
    and vary with the noise."""
    rows = sample_tiles.split("test")
    masks = np.stack([sample_tiles.read_mask(r) for _, r in rows.iterrows()])
    real = np.stack([sample_tiles.read_image(r) for _, r in rows.iterrows()]).astype(np.float64)
    a = generator.to_raster(generator.generate(masks, seed=0))
    assert a.shape == real.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, generator.to_raster(generator.generate(masks, seed=0)))
    b = generator.to_raster(generator.generate(masks, seed=1))
    fake_means, real_means = a.mean(axis=(0, 2, 3)), real.mean(axis=(0, 2, 3))
    assert np.all(np.abs(fake_means - real_means) < 12), (fake_means, real_means)
    assert np.abs(a.astype(np.int16) - b).mean() > 3  # another seed, another image


def _demo(args: list[str]) -> tuple[int, list[str]]:
    from rsaug.cli import demo

    r = CliRunner().invoke(demo.command, args, catch_exceptions=False)
    return r.exit_code, [ln for ln in r.stderr.splitlines() if ln.strip()]


def test_demo_refuses_to_mix_two_demos(tmp_path: Path) -> None:
    """A demo directory remembers its generator and seed (demo.json); resuming it with others, or writing into
    a directory that is not a demo's, is one line and exit 2, the directory untouched."""
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo.json").write_text(json.dumps({"generator": "train", "steps": 400, "bench_iterations": 150, "seed": 0}))
    code, lines = _demo(["-o", str(out)])
    assert code == 2 and len(lines) == 1
    assert lines[0] == (
        f"Error: {out}: this demo was run with generator 'train' (now 'bundled'), steps 400 (now None); "
        "use --overwrite to start again"
    )
    code, lines = _demo(["-o", str(out), "--generator", "train", "--seed", "3"])
    assert code == 2 and lines[0].endswith("seed 0 (now 3); use --overwrite to start again")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    code, lines = _demo(["-o", str(other)])
    assert code == 2 and lines == [
        f"Error: {other}: not a demo directory of this rsaug version (no demo.json); use --overwrite"
    ]
    assert {p.name for p in out.iterdir()} - {LOCK_FILE} == {"demo.json"}
    assert {p.name for p in other.iterdir()} - {LOCK_FILE} == {"notes.txt"}
    assert json.loads((out / "demo.json").read_text())["generator"] == "train"


def test_demo_without_the_bundled_generator(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rsaug.cli import demo

    missing = tmp_path / "gone.ckpt"
    monkeypatch.setattr(demo, "gid15_generator", lambda: missing)
    code, lines = _demo(["-o", str(tmp_path / "out")])
    assert code == 2 and lines == [f"Error: {missing}: the bundled generator is missing; use --generator train"]
    assert not (tmp_path / "out").exists()


def test_demo_steps_need_generator_train(tmp_path: Path) -> None:
    code, lines = _demo(["-o", str(tmp_path / "out"), "--steps", "10"])
    assert code == 2 and lines == [
        "Error: --steps sets the training of --generator train; the bundled generator is already trained"
    ]
    assert not (tmp_path / "out").exists()


class _Stop(Exception):
    pass


@pytest.mark.parametrize("generator", ["bundled", "train"])
def test_demo_stage_wiring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, generator: str) -> None:
    """The stages the demo hands over to: with ``train`` the cpu-small training of --steps on OUT/tiles and
    synthesis from its checkpoint; with ``bundled`` no training and synthesis from the bundled file (the stage
    commands are recorded, not run)."""
    from rsaug.cli import demo

    calls: list[tuple[str, list[str]]] = []

    def record(command: object, args: list[str], title: str) -> float:
        calls.append((getattr(command, "name", ""), args))
        if getattr(command, "name", "") == "synthesize":
            raise _Stop
        return 0.0

    monkeypatch.setattr(demo, "_run", record)
    out = tmp_path / "demo"
    args = ["-o", str(out), "--generator", generator] + (["--steps", "7"] if generator == "train" else [])
    r = CliRunner().invoke(demo.command, args)
    assert isinstance(r.exception, _Stop), r.output
    names = [name for name, _ in calls]
    if generator == "train":
        assert names == ["tile", "train", "synthesize"]
        train_args = calls[1][1]
        assert train_args[:3] == [str(out / "tiles"), "-o", str(out / "run")]
        assert train_args[train_args.index("--preset") + 1] == "cpu-small" and "7" in train_args
        ckpt = out / "run" / "checkpoints" / "last.ckpt"
    else:
        assert names == ["tile", "synthesize"] and "its scores (test split of its own tile set): FID" in r.output
        ckpt = gid15_generator()
    assert calls[-1][1][:2] == ["--checkpoint", str(ckpt)]
    assert json.loads((out / "demo.json").read_text())["generator"] == generator
