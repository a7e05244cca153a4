"""Dask (`pip install census-salary[dask]`): `map_partitions` over a Dask DataFrame of the
input's files, one partition per file, each scored by `partition.run_tasks` on a worker,
on a local cluster or the scheduler at an address (whose workers need census-salary
installed, and the files and output folder at the same paths)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from census_salary.bundle import ScorerChoice, bundle_files, load_bundle_files
from census_salary.errors import InputError
from census_salary.partition import PROBLEM_COLUMNS, Job, run_tasks, score_partition
from census_salary.writers import PREDICTION, PROBABILITY

PROBLEMS_META = pd.DataFrame(
    {
        name: pd.Series(dtype="int64" if name in ("row", "rows") else object)
        for name in PROBLEM_COLUMNS
    }
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
        problems = files.map_partitions(_run_tasks_on, job, meta=PROBLEMS_META)
        try:
            return client.compute(problems).result()
        except Exception as exc:  # a failed task or worker: our message, not a traceback
            raise InputError(f"Dask could not score the input: {exc}") from None


def _run_tasks_on(tasks: pd.DataFrame, job: Job) -> pd.DataFrame:
    return run_tasks(job, tasks)


@contextlib.contextmanager
def _client(scheduler: str | None) -> Iterator[Any]:
    """The current client, or one to `scheduler`, or to a new local cluster (closed after)."""
    from distributed import Client, LocalCluster, default_client

    current = None
    if scheduler is None:
        with contextlib.suppress(ValueError):  # (there is none)
            current = default_client()
    if current is not None:
        yield current
        return
    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(processes=True, dashboard_address=":0")
        client = Client(scheduler if cluster is None else cluster, timeout="10s")
    except Exception as exc:  # refused, timed out, or workers that did not start
        if cluster is not None:
            cluster.close()
        where = f"the scheduler {scheduler}" if scheduler else "a local cluster"
        raise InputError(f"Dask could not reach {where}: {exc}") from None
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def score_dataframe(
    frame: Any,
    bundle_dir: Path,
    *,
    scorer: ScorerChoice = "trees",
    threshold: float | None = None,
    skip_bad: bool = False,
) -> Any:
    """A Dask DataFrame's rows with `prediction` and `probability` added, scored on the
    workers by `partition.score_partition` (`map_partitions`; lazy, as Dask is). A bad row
    fails the computation with our InputError (rows numbered within their partition)
    unless `skip_bad`, which leaves it out; `census predict --engine dask` lists them."""
    shipped = bundle_files(bundle_dir, scorer)
    load_bundle_files(shipped, str(bundle_dir), scorer)  # fail here, before the cluster
    meta = frame._meta.assign(
        **{PREDICTION: pd.Series(dtype=object), PROBABILITY: pd.Series(dtype="float64")}
    )
    return frame.map_partitions(
        _score_frame, shipped, str(bundle_dir), scorer, threshold, skip_bad, meta=meta
    )


def _score_frame(
    frame: pd.DataFrame,
    shipped: dict[str, bytes],
    source: str,
    scorer: ScorerChoice,
    threshold: float | None,
    skip_bad: bool,
    partition_info: dict[str, Any] | None = None,
) -> pd.DataFrame:
    bundle = load_bundle_files(shipped, source, scorer)  # checked on the worker
    where = f"partition {partition_info['number']}" if partition_info else "a partition"
    scored, _ = score_partition(bundle, frame, threshold=threshold, skip_bad=skip_bad, source=where)
    return scored
