"""Where ``cim-bench``'s sweep points run when they run in parallel: tasks
on a ``dask.distributed`` cluster.

``--jobs N`` starts a local cluster of ``N`` single-threaded worker
processes for the sweep and closes it after; ``--scheduler ADDRESS``
submits to a cluster that is already running (``dask scheduler`` and
``dask worker ADDRESS`` on any machines that have cimflow installed and
can read the sweep's ONNX files at the same paths). Workers only compute:
the result cache is read before submitting and written as results come
back, by the process that runs ``cim-bench``, so it lives on that
machine's disk whatever the cluster.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from distributed import Client, Future, LocalCluster, as_completed

from cimflow.errors import CimError

Item = TypeVar("Item")
Result = TypeVar("Result")

CONNECT_TIMEOUT_S = 10.0
"""How long ``--scheduler ADDRESS`` waits for the scheduler to answer, and
then for a first worker."""


@contextmanager
def cluster_client(jobs: int, scheduler: str | None) -> Generator[Client]:
    """A client of the cluster at ``scheduler``, or of a local cluster of
    ``jobs`` worker processes (one thread each, no memory limit: a worker
    holds one compilation at a time, as a process of its own would)."""
    if scheduler is not None:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as error:
            first = str(error).strip().splitlines()
            reason = first[0] if first else type(error).__name__
            raise CimError(
                f"--scheduler {scheduler}: cannot reach the scheduler ({reason})"
            ) from None
        with client:
            try:
                client.wait_for_workers(1, timeout=CONNECT_TIMEOUT_S)
            except TimeoutError:
                raise CimError(
                    f"--scheduler {scheduler}: the cluster has no workers "
                    f"(none joined within {CONNECT_TIMEOUT_S:g} s)"
                ) from None
            yield client
        return
    # a dict: distributed annotates dashboard_address as str, and None is
    # what turns the dashboard off
    options: dict[str, Any] = {
        "n_workers": jobs,
        "threads_per_worker": 1,
        "processes": True,
        "memory_limit": 0,
        "dashboard_address": None,
        "silence_logs": logging.ERROR,
    }
    cluster = LocalCluster(**options)
    with cluster, Client(cluster) as client:
        yield client


def run_tasks(
    client: Client,
    function: Callable[[Item], Result],
    items: Sequence[Item],
) -> Iterator[tuple[Item, Result | BaseException]]:
    """Each item with ``function(item)`` as it finishes on the cluster, or
    with the exception that ended its task (a worker that died included)."""
    futures: list[Future[Result]] = client.map(function, items, pure=False)
    item_of = {future.key: item for future, item in zip(futures, items, strict=True)}
    for future in cast(Iterator[Future[Result]], as_completed(futures)):
        item = item_of[future.key]
        try:
            outcome: Result | BaseException = future.result()
        except Exception as error:
            outcome = error
        future.release()
        yield item, outcome
