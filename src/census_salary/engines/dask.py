"""Dask (`pip install census-salary[dask]`): `map_partitions` over a Dask DataFrame of the
input's files, one partition per file, each scored by `partition.run_tasks` on a worker,
on a local cluster or the scheduler at an address (whose workers need census-salary
installed, and the files and output folder at the same paths)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import pandas as pd

from census_salary.errors import InputError
from census_salary.partition import PROBLEM_COLUMNS, Job, run_tasks

PROBLEMS_META = pd.DataFrame(
    {name: pd.Series(dtype="int64" if name == "row" else object) for name in PROBLEM_COLUMNS}
)


def run(job: Job, tasks: pd.DataFrame, scheduler: str | None = None) -> pd.DataFrame:
    """Score the tasks' files on Dask; the problems they gave back. `scheduler` is the
    cluster's address (default: the current client's, else a new local cluster)."""
    try:
        import dask.dataframe as dd
    except ImportError:
        raise InputError(
            "--engine dask needs dask and distributed: pip install 'census-salary[dask]'."
        ) from None
    with _client(scheduler) as client:
        files = dd.from_pandas(tasks, npartitions=max(len(tasks), 1), sort=False)
        problems = files.map_partitions(run_tasks_on, job, meta=PROBLEMS_META)
        try:
            return client.compute(problems).result()
        except Exception as exc:  # a failed task or worker: our message, not a traceback
            raise InputError(f"Dask could not score the input: {exc}") from None


def run_tasks_on(tasks: pd.DataFrame, job: Job) -> pd.DataFrame:
    return run_tasks(job, tasks)


@contextlib.contextmanager
def _client(scheduler: str | None) -> Iterator[Any]:
    """The current client, or one to `scheduler`, or to a new local cluster (closed after)."""
    from distributed import Client, LocalCluster, default_client

    if scheduler is None:
        with contextlib.suppress(ValueError):
            yield default_client()
            return
    try:
        if scheduler is None:
            cluster = LocalCluster(processes=True, dashboard_address=":0")
            client = Client(cluster)
        else:
            cluster, client = None, Client(scheduler, timeout="10s")
    except OSError as exc:
        raise InputError(f"Dask could not reach the scheduler {scheduler}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
