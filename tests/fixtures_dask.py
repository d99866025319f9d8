"""Session fixture of the distributed tests: a real ``distributed.LocalCluster`` of 2 worker processes.

``dask_cluster`` is shared by every test that needs a cluster (starting one takes seconds); tests that kill a
worker leave the cluster to its nannies, which restart the worker.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def dask_cluster() -> Iterator[Any]:
    """A LocalCluster of 2 single-threaded worker processes (the address is ``dask_cluster.scheduler_address``)."""
    import distributed

    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=logging.ERROR
    )
    yield cluster
    cluster.close()
