"""``DaskMap`` on a real LocalCluster: results in unit order, and the client's own work overlaps the cluster's;
an error of that work cancels the queued tasks and is not mistaken for a failure of the cluster."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from rsaug.core.cluster import DaskMap


def test_after_submit_runs_once_with_the_tasks_already_queued(dask_cluster) -> None:
    import distributed

    seen: list[int] = []
    with distributed.Client(dask_cluster) as client:
        dmap = DaskMap(client, "test-after-submit")
        # the first unit finishes last: results still come back in unit order
        out = dmap.map(
            lambda u: (time.sleep(0.2 * u), -u)[1],
            [3, 1, 2],
            after_submit=lambda: seen.append(len(client.futures)),
        )
    assert out == [-3, -1, -2]
    assert len(seen) == 1 and seen[0] >= 1, f"after_submit ran before any task was queued: {seen}"


def test_an_error_of_after_submit_cancels_the_queued_tasks(dask_cluster, tmp_path: Path) -> None:
    import distributed

    def fail() -> None:
        raise RuntimeError("client-side work failed")

    units = [str(tmp_path / f"ran-{i}") for i in range(20)]
    with distributed.Client(dask_cluster) as client:
        dmap = DaskMap(client, "test-after-submit-error", in_flight=20)  # 18 of 20 queued behind 2 workers
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="client-side work failed"):
            dmap.map(lambda p: (time.sleep(0.5), Path(p).touch()), units, after_submit=fail)
        # only the tasks already running are waited for, not the 20 x 0.5 s / 2 workers of the whole map
        assert time.perf_counter() - t0 < 4.0
        time.sleep(6.0)  # long enough for all 20 tasks, had the queued ones not been cancelled
    ran = list(tmp_path.glob("ran-*"))
    assert 1 <= len(ran) <= 4, f"{len(ran)} of 20 tasks ran: the queued ones were not cancelled"


def test_a_missing_module_on_the_client_is_not_blamed_on_the_workers(dask_cluster) -> None:
    import distributed

    def missing() -> None:
        raise ModuleNotFoundError("No module named 'geopandas'", name="geopandas")

    with distributed.Client(dask_cluster) as client:
        dmap = DaskMap(client, "test-after-submit-import", in_flight=2)
        with pytest.raises(ModuleNotFoundError, match="geopandas"):
            dmap.map(time.sleep, [0.1, 0.1], after_submit=missing)
