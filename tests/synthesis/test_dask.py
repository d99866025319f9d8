"""``rsaug synthesize --scheduler``: synthetic tile sets generated on a real Dask ``LocalCluster`` (2 worker
processes), each worker loading the trained generator once from its checkpoint file.

A distributed run must write the same tile set as a local run (pixels, tags, index, JSON), survive a worker
killed mid-run, resume after an interruption, and refuse what it cannot distribute with one line.
"""

from __future__ import annotations

import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from rsaug.cli.synthesize import command as synthesize_command
from rsaug.core.errors import InputError
from rsaug.gan.inference import load_generator
from rsaug.io.tileset import TileSet
from rsaug.synthesis import plan_synthesis, synthesize_tileset
from tests.fixtures_tiles import assert_same_tileset
from tests.integrations.test_torchgeo import untrained_generator
from tests.tiling.test_tile_cli import assert_bad_input

pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
    pytest.mark.timeout(900),
]
N_MASKS = 12


@pytest.fixture(scope="module")
def plan_and_local(gid15_tileset: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory):
    """The plan (12 training masks, 2 samples each = 24 tiles in batches of 4) and its local run."""
    torch.set_num_threads(2)
    ts = TileSet.open(gid15_tileset)
    ids = ts.split("train")["tile_id"].astype(str).tolist()[:N_MASKS]
    plan = plan_synthesis(ts, samples_per_mask=2, tile_ids=ids)
    out = tmp_path_factory.mktemp("dask_syn") / "local"
    gen = load_generator(tiny_checkpoint, device="cpu")
    synthesize_tileset(ts, gen, out, plan, checkpoint=tiny_checkpoint, batch_size=4)
    return ts, plan, out


def test_distributed_synthesis_equals_local_and_survives_a_killed_worker(
    plan_and_local, tiny_checkpoint: Path, tmp_path: Path, dask_cluster
) -> None:
    import distributed

    ts, plan, local = plan_and_local
    out = tmp_path / "dask"
    client = distributed.Client(dask_cluster)
    killed: dict[str, object] = {}

    def kill_when_busy() -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600:
            d = out / "images"
            if d.is_dir() and len(list(d.glob("*.tif"))) >= 4:
                busy = [w for w, keys in client.processing().items() if keys]  # a worker generating now
                if busy:
                    killed["units"] = client.processing()[busy[0]]
                    os.kill(client.run(os.getpid, workers=[busy[0]])[busy[0]], signal.SIGKILL)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    gen = load_generator(tiny_checkpoint, device="cpu")
    res = synthesize_tileset(
        ts,
        gen,
        out,
        plan,
        checkpoint=tiny_checkpoint,
        batch_size=4,
        scheduler=dask_cluster.scheduler_address,
        worker_device="cpu",
    )
    killer.join()
    client.close()
    assert killed.get("units"), "the run ended before a busy worker could be killed"
    assert res.generated == 2 * N_MASKS and res.generator_seconds > 0
    assert_same_tileset(local, out)


def test_distributed_resume_completes_an_interrupted_run(
    plan_and_local, tiny_checkpoint: Path, tmp_path: Path, dask_cluster
) -> None:
    """An interrupted run (10 of 24 tiles written, no index) is completed by ``resume`` on the cluster exactly as a
    local resume completes it. (A resumed run batches the remaining samples differently from an uninterrupted
    one; batch composition can move a rare pixel by 1 DN through float rounding, so the comparison with the
    uninterrupted run allows that much.)"""
    import numpy as np
    import rasterio

    ts, plan, local = plan_and_local
    gen = load_generator(tiny_checkpoint, device="cpu")
    partial = tmp_path / "partial"
    shutil.copytree(local, partial)
    keep = sorted(p.name for p in (partial / "images").glob("*.tif"))[:10]
    for sub in ("images", "masks"):
        for p in (partial / sub).glob("*.tif"):
            if p.name not in keep:
                p.unlink()
    for name in ("index.gpkg", "tileset.json"):
        (partial / name).unlink()
    outs = {}
    for where in ("local", "dask"):
        outs[where] = out = tmp_path / where
        shutil.copytree(partial, out)
        res = synthesize_tileset(
            ts,
            gen,
            out,
            plan,
            checkpoint=tiny_checkpoint,
            batch_size=4,
            resume=True,
            scheduler=dask_cluster.scheduler_address if where == "dask" else None,
            worker_device="cpu",
        )
        assert (res.resumed, res.generated) == (10, 2 * N_MASKS - 10)
    assert_same_tileset(outs["local"], outs["dask"])
    for p in sorted((local / "images").glob("*.tif")):
        with rasterio.open(p) as a, rasterio.open(outs["dask"] / "images" / p.name) as b:
            x, y = a.read().astype(int), b.read().astype(int)
        assert np.abs(x - y).max() <= 1 and (x != y).mean() < 1e-3, p.name


def test_cli_on_a_local_cluster(plan_and_local, tiny_checkpoint: Path, gid15_tileset: Path, tmp_path: Path) -> None:
    """``--scheduler local:2`` through the CLI: the same tiles as the local run (the plan is re-made from the same
    options)."""
    _ts, plan, local = plan_and_local
    out = tmp_path / "cli"
    ids = [a for t, _ in plan.tiles for a in ("--tile-id", t)]
    args = ["-c", tiny_checkpoint, gid15_tileset, "-o", out, *ids, "--samples-per-mask", 2, "--batch-size", 4]
    r = CliRunner().invoke(
        synthesize_command,
        [*map(str, args), "--device", "cpu", "--scheduler", "local:2", "--quiet"],
        prog_name="rsaug synthesize",
    )
    assert r.exit_code == 0, r.output
    assert_same_tileset(local, out)


def test_a_generator_without_its_file_cannot_be_distributed(gid15_tileset: Path, tmp_path: Path) -> None:
    ts = TileSet.open(gid15_tileset)
    gen = untrained_generator("gid15", 3)
    plan = plan_synthesis(ts, samples_per_mask=1, tile_ids=ts.split("train")["tile_id"].astype(str).tolist()[:2])
    with pytest.raises(InputError, match="needs a generator loaded from a checkpoint file"):
        synthesize_tileset(ts, gen, tmp_path / "o", plan, scheduler="local:1")
    assert not (tmp_path / "o").exists()


def test_cli_refusals(tiny_checkpoint: Path, gid15_tileset: Path, tmp_path: Path) -> None:
    def run(*args: object):  # type: ignore[no-untyped-def]
        return CliRunner().invoke(synthesize_command, [*map(str, args)], prog_name="rsaug synthesize")

    out = tmp_path / "o"
    r = run("-c", tiny_checkpoint, gid15_tileset, "-o", out, "--scheduler", "tcp://127.0.0.1:9", "--device", "cpu")
    assert_bad_input(r, None, "cannot reach the Dask scheduler")
    assert not out.exists() or not any(p for p in out.iterdir() if p.name != ".rsaug.lock")
    r = run(
        "-c", tiny_checkpoint, "--scene-mask", tmp_path / "m.tif", "-o", tmp_path / "s.tif", "--scheduler", "local:2"
    )
    assert_bad_input(r, None, "--scheduler")
    r = run("-c", tiny_checkpoint, gid15_tileset, "-o", out, "--scheduler", "local:0")
    assert_bad_input(r, None, "--scheduler")


def test_relative_paths_on_workers_with_another_working_directory(
    plan_and_local, tiny_checkpoint: Path, gid15_tileset: Path, tmp_path: Path, dask_cluster, monkeypatch
) -> None:
    """A tile set opened by a relative path and a relative ``out``: the workers (working directory /) get absolute
    paths and write where the client means."""
    import distributed

    _ts, plan, local = plan_and_local
    with distributed.Client(dask_cluster) as client:
        client.run(os.chdir, "/")
    monkeypatch.chdir(gid15_tileset.parent)
    ts = TileSet.open(gid15_tileset.name)
    out = os.path.relpath(tmp_path / "rel", gid15_tileset.parent)
    gen = load_generator(tiny_checkpoint, device="cpu")
    synthesize_tileset(
        ts, gen, out, plan, checkpoint=tiny_checkpoint, batch_size=4, scheduler=dask_cluster.scheduler_address
    )
    assert_same_tileset(local, tmp_path / "rel")
