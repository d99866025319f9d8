"""``rsaug tile --scheduler``: tiling on a real Dask ``LocalCluster`` of 2 worker processes.

A distributed run must give the same tile set as a local run (file by file), survive a worker killed mid-run,
resume after the client is killed, and refuse an unreachable scheduler or paths the workers cannot see with one
line and nothing written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from rsaug.cli.tile import command as tile_command
from rsaug.core.cluster import check_paths, parse_scheduler
from rsaug.core.errors import InputError
from rsaug.tiling import tile_scenes
from tests.fixtures_tiles import assert_same_tileset, chesapeake_pair, gid15_fixture_stems, gid15_pairs
from tests.tiling.test_tile_cli import assert_bad_input

pytestmark = [
    pytest.mark.filterwarnings("ignore::rasterio.errors.NotGeoreferencedWarning"),
    pytest.mark.filterwarnings("ignore::rsaug.tiling.TilingWarning"),
    pytest.mark.timeout(600),
]
MAIN = "from rsaug.cli.main import cli; cli()"
#: 30 real GID-15 pairs cut into 112-px tiles at stride 56: 270 tiles in 90 tile rows (work units).
PAIRS = gid15_pairs(gid15_fixture_stems(per_class=2))
OPTS = {"tile_size": 112, "stride": 56, "scheme": "gid15", "max_unknown": 1.0}


def _n_images(out: Path) -> int:
    d = out / "images"
    return len([p for p in d.iterdir() if p.suffix == ".tif"]) if d.is_dir() else 0


@pytest.fixture(scope="module")
def local_gid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dask_tiling") / "local"
    tile_scenes(PAIRS, out, workers=2, **OPTS)
    return out


def test_distributed_run_equals_local_run_georeferenced(tmp_path: Path, dask_cluster) -> None:
    """The georeferenced Chesapeake tile (EPSG:26917, 4 bands), local in-process vs 2 Dask workers."""
    a = tile_scenes([chesapeake_pair()], tmp_path / "local", tile_size=64, scheme="chesapeake")
    b = tile_scenes(
        [chesapeake_pair()],
        tmp_path / "dask",
        tile_size=64,
        scheme="chesapeake",
        scheduler=dask_cluster.scheduler_address,
    )
    assert len(a) == len(b) == 16
    assert_same_tileset(tmp_path / "local", tmp_path / "dask")


def test_distributed_cli_equals_local_pool_and_survives_a_killed_worker(
    tmp_path: Path, local_gid: Path, dask_cluster
) -> None:
    """270 tiles through the CLI on the cluster; once 40 tiles are written, a worker process that is running units
    is SIGKILLed: Dask re-runs its units elsewhere (every tile is written atomically) and the tile set equals the
    local pool's."""
    import distributed

    out = tmp_path / "dask"
    client = distributed.Client(dask_cluster)
    killed: dict[str, object] = {}

    def kill_when_busy() -> None:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 300:
            if _n_images(out) >= 40:
                busy = [w for w, keys in client.processing().items() if keys]  # a worker running units now
                if busy:
                    killed["units"] = client.processing()[busy[0]]
                    os.kill(client.run(os.getpid, workers=[busy[0]])[busy[0]], signal.SIGKILL)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_when_busy, daemon=True)
    killer.start()
    csv = tmp_path / "pairs.csv"
    csv.write_text("scene,mask\n" + "".join(f"{s},{m}\n" for s, m in PAIRS))
    args = ["--pairs", csv, "-o", out, "--tile-size", 112, "--stride", 56, "--scheme", "gid15", "--max-unknown", 1.0]
    r = CliRunner().invoke(
        tile_command,
        [*map(str, args), "--scheduler", dask_cluster.scheduler_address, "--quiet"],
        prog_name="rsaug tile",
    )
    killer.join()
    client.close()
    assert r.exit_code == 0, r.output
    assert killed.get("units"), "the run ended before a busy worker could be killed"
    assert _n_images(out) == 270
    assert not list(out.rglob(".rsaug-tmp-*"))  # the killed worker's half-written temporary is removed
    assert_same_tileset(local_gid, out)


def test_resume_after_the_client_is_killed(tmp_path: Path, local_gid: Path, dask_cluster) -> None:
    """The client process dies (SIGKILL) in the middle of pass 2; ``--resume`` on the cluster completes the set,
    which equals the local run."""
    out = tmp_path / "dask"
    csv = tmp_path / "pairs.csv"
    csv.write_text("scene,mask\n" + "".join(f"{s},{m}\n" for s, m in PAIRS))
    args = ["tile", "--pairs", str(csv), "-o", str(out), "--tile-size", "112", "--stride", "56", "--scheme", "gid15"]
    args += ["--max-unknown", "1.0", "--scheduler", dask_cluster.scheduler_address, "--quiet"]
    proc = subprocess.Popen([sys.executable, "-c", MAIN, *args], stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while _n_images(out) < 30 and proc.poll() is None and time.monotonic() - t0 < 300:
        time.sleep(0.01)
    proc.kill()
    proc.wait()
    n = _n_images(out)
    assert 30 <= n < 270, f"{n} tiles when the client was killed"
    assert not (out / "index.gpkg").exists()
    time.sleep(1.0)  # tasks of the dead client that were running finish (atomically) or are dropped
    res = tile_scenes(PAIRS, out, resume=True, scheduler=dask_cluster.scheduler_address, **OPTS)
    summary = res.attrs["summary"]
    assert summary["written"] + summary["skipped_existing"] == 270 and summary["skipped_existing"] >= 30
    assert_same_tileset(local_gid, out)


def test_unreachable_scheduler_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    s, m = chesapeake_pair()
    out = tmp_path / "out"
    r = CliRunner().invoke(
        tile_command,
        [
            str(s),
            str(m),
            "-o",
            str(out),
            "--tile-size",
            "64",
            "--scheme",
            "chesapeake",
            "--scheduler",
            "tcp://127.0.0.1:9",
        ],
        prog_name="rsaug tile",
    )
    assert_bad_input(r, None, "cannot reach the Dask scheduler at tcp://127.0.0.1:9")
    assert not out.exists() or not any(p for p in out.iterdir() if p.name != ".rsaug.lock")


@pytest.mark.parametrize("spec", ["local:0", "local:x", "not a scheduler", "http://host:1/path"])
def test_bad_scheduler_value(tmp_path: Path, spec: str) -> None:
    s, m = chesapeake_pair()
    r = CliRunner().invoke(
        tile_command, [str(s), str(m), "-o", str(tmp_path / "o"), "--scheduler", spec], prog_name="rsaug tile"
    )
    assert_bad_input(r, None, "--scheduler")
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").glob("*.json"))


def test_scheduler_values_parse() -> None:
    assert parse_scheduler("local:3").workers == 3 and parse_scheduler("local:3").address is None
    assert parse_scheduler("10.0.0.5:8786").address == "tcp://10.0.0.5:8786"
    assert parse_scheduler("tcp://sched:8786").address == "tcp://sched:8786"


def test_paths_a_worker_cannot_see_are_refused(tmp_path: Path, dask_cluster) -> None:
    """The real check on the cluster's workers: a path that does not exist there is named with the worker; a
    read-only output folder is not writable there."""
    import distributed

    seen = tmp_path / "seen.tif"
    seen.write_bytes(b"x")
    with distributed.Client(dask_cluster) as client:
        check_paths(client, [(seen, "file"), (tmp_path, "writable-dir")])
        with pytest.raises(InputError, match=r"Dask worker tcp://.* cannot see this file") as e:
            check_paths(client, [(seen, "file"), (tmp_path / "only-on-the-client.tif", "file")])
        assert "only-on-the-client.tif" in str(e.value)
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            if not os.access(ro, os.W_OK):  # root ignores permission bits
                with pytest.raises(InputError, match="cannot see this writable directory"):
                    check_paths(client, [(ro, "writable-dir")])
        finally:
            ro.chmod(0o755)


def test_tile_set_of_a_worker_without_the_inputs_is_refused_before_writing(tmp_path: Path, monkeypatch) -> None:
    """``tile_scenes`` asks every worker for the scenes, masks and the output folder before pass 2; a worker on
    another host without the shared filesystem (simulated: its probe reports the scene missing) stops the run
    with one line naming the scene and the worker, before anything is written."""
    import rsaug.core.cluster as cluster

    s, m = chesapeake_pair()

    def blind_probe(paths):  # type: ignore[no-untyped-def]
        return [p for p, _ in paths if p.endswith("naip-new.tif")]

    monkeypatch.setattr(cluster, "_probe", blind_probe)
    out = tmp_path / "out"
    with pytest.raises(InputError, match="cannot see this file") as e:
        tile_scenes([(s, m)], out, tile_size=64, scheme="chesapeake", scheduler="local:1")
    assert str(Path(s).resolve()) in str(e.value)  # workers get resolved absolute paths
    assert not out.exists()


def test_relative_paths_reach_workers_with_another_working_directory(
    tmp_path: Path, dask_cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Workers started elsewhere (here: their working directory moved to /) get absolute paths: a relative
    ``out`` is written where the client means it."""
    import distributed

    with distributed.Client(dask_cluster) as client:
        client.run(os.chdir, "/")
    monkeypatch.chdir(tmp_path)
    tile_scenes([chesapeake_pair()], "local", tile_size=64, scheme="chesapeake")
    tile_scenes([chesapeake_pair()], "rel", tile_size=64, scheme="chesapeake", scheduler=dask_cluster.scheduler_address)
    assert not Path("/rel").exists()
    assert_same_tileset(tmp_path / "local", tmp_path / "rel")


def test_two_runs_share_one_cluster(tmp_path: Path, local_gid: Path, dask_cluster) -> None:
    """Two tiling runs at once on one scheduler keep their own state (scattered under unique keys)."""
    errors: list[BaseException] = []

    def run(pairs, out, **kw) -> None:  # type: ignore[no-untyped-def]
        try:
            tile_scenes(pairs, out, scheduler=dask_cluster.scheduler_address, **kw)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=run, args=(PAIRS, tmp_path / "gid"), kwargs=OPTS),
        threading.Thread(
            target=run, args=([chesapeake_pair()], tmp_path / "ches"), kwargs={"tile_size": 64, "scheme": "chesapeake"}
        ),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    tile_scenes([chesapeake_pair()], tmp_path / "ches-local", tile_size=64, scheme="chesapeake")
    assert_same_tileset(local_gid, tmp_path / "gid")
    assert_same_tileset(tmp_path / "ches-local", tmp_path / "ches")


def test_failures_of_the_cluster_itself_are_one_line_errors() -> None:
    """A unit whose workers kept dying, a lost scheduler, a worker without rsaug: one line for the user (exit 1)
    saying what to do; a work unit's own error is not rewritten."""
    import concurrent.futures

    from distributed import KilledWorker
    from distributed.comm.core import CommClosedError

    from rsaug.core.cluster import _cluster_failure

    assert "rerun with --resume" in str(_cluster_failure(KilledWorker("rsaug-tile-ab12-7", None, 3)))
    assert "rsaug-tile-ab12-7" in str(_cluster_failure(KilledWorker("rsaug-tile-ab12-7", None, 3)))
    assert "lost the Dask scheduler" in str(_cluster_failure(CommClosedError("x")))
    assert "lost the Dask scheduler" in str(_cluster_failure(concurrent.futures.CancelledError()))
    assert "install rsaug on every worker" in str(_cluster_failure(ModuleNotFoundError("no", name="rsaug")))
    assert _cluster_failure(InputError("a.tif", "corrupt")) is None and _cluster_failure(ValueError()) is None
