"""``DaskMap`` on a real LocalCluster: results in unit order, and the client's own work overlaps the cluster's."""

from __future__ import annotations

import time

import pytest

from rsaug.core.cluster import DaskMap


def test_after_submit_runs_once_with_the_tasks_already_queued(dask_cluster) -> None:
    import distributed

    seen: list[int] = []
    with distributed.Client(dask_cluster) as client:
        dmap = DaskMap(client, "test-after-submit")
        # time.sleep(u) returns None; the tasks still run when after_submit looks
        out = dmap.map(time.sleep, [0.5, 0.5, 0.5], after_submit=lambda: seen.append(len(client.futures)))
    assert out == [None, None, None]
    assert len(seen) == 1 and seen[0] >= 1, f"after_submit ran before any task was queued: {seen}"


def test_an_error_of_after_submit_cancels_the_queued_tasks(dask_cluster) -> None:
    import distributed

    def fail() -> None:
        raise RuntimeError("client-side work failed")

    with distributed.Client(dask_cluster) as client:
        dmap = DaskMap(client, "test-after-submit-error", in_flight=2)
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match="client-side work failed"):
            dmap.map(time.sleep, [0.5] * 20, after_submit=fail)
        # only the tasks already running are waited for, not the 20 x 0.5 s of the whole map
        assert time.perf_counter() - t0 < 4.0
