"""Helper processes: work that runs beside this process's own, on the machine's other cores.

`census train` fits most of the threshold's folds, saves the model and draws half the
figures in a helper while this process fits the final model and evaluates it: the same
bundle, about a second sooner on two cores (README, Speed). Threads cannot do it:
a scikit-learn fit holds the interpreter lock for most of its work, and OpenMP gives a
single fit little from a second core.

A helper is a fresh interpreter (the "spawn" start method, on every platform), never a
fork: a process that has run OpenMP code deadlocks in its fork's first OpenMP call. It
imports `preload` as it starts, and `census train` starts it before importing the same
libraries itself, so the two imports overlap. Each helper runs its OpenMP code on one
thread, as this process does while helpers work, so that two processes do not contend
for each core.

`Helpers(0)` has no process: each call then runs here when its result is asked for, so
callers have one code path. If a helper process dies (killed, out of memory), the calls
it had not finished run here instead, with a warning: training never fails for it.
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from census_salary.config import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")


class Pending(Generic[T]):
    """The result of `fn(*args)`, from a helper, or computed here when it is asked for."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], future: Future[T] | None):
        self._fn, self._args, self._future = fn, args, future

    def result(self) -> T:
        """The helper's result, once it has run; computed here now if no helper has
        started on it (none was asked, all are busy or late, or one died)."""
        if self._future is not None and not self._future.cancel():
            try:
                return self._future.result()
            except BrokenProcessPool:
                logger.warning(
                    "a helper process stopped before it finished %s; doing it here instead",
                    getattr(self._fn, "__name__", "its work"),
                )
        return self._fn(*self._args)


class Helpers:
    """`count` helper processes (0: none), each importing `preload` as it starts.

    Use it as a context manager: leaving it ends the processes. Arguments and results
    travel between the processes pickled, as they do to scikit-learn's own workers.
    """

    def __init__(self, count: int, preload: str | None = None) -> None:
        self.count = count
        self._pool: ProcessPoolExecutor | None = None
        if count > 0:
            self._pool = ProcessPoolExecutor(
                max_workers=count,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start,
                initargs=(preload,),
            )
            # Processes start with the first call: start them now, importing at once.
            for _ in range(count):
                self._pool.submit(int)

    def run(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """`fn(*args)` in a helper, or here later if there is none. `fn` must be a
        module-level function, and `args` picklable, for a helper to run it."""
        if self._pool is None:
            return Pending(fn, args, None)
        try:
            return Pending(fn, args, self._pool.submit(fn, *args))
        except BrokenProcessPool:
            return Pending(fn, args, None)

    def sharing_cores(self) -> AbstractContextManager[object]:
        """While helpers work too: this process's OpenMP code on one thread."""
        if self._pool is None:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def training_helpers(settings: Settings) -> Helpers:
    """The helpers `census_salary.train` uses, importing it as they start."""
    return Helpers(training_helper_count(settings), "census_salary.train")


def training_helper_count(settings: Settings) -> int:
    """[train] processes - 1, but no more than training has work for: each threshold fold
    is a piece of work, and saving and drawing another."""
    folds = settings.threshold.cv if settings.threshold.objective != "fixed" else 0
    return min(settings.train.processes - 1, max(folds, 1))


def _start(preload: str | None) -> None:
    """A helper process's first step: the imports, then OpenMP on one thread (a limit
    reaches only the libraries loaded by then)."""
    from threadpoolctl import threadpool_limits

    from census_salary.collector import paused, settle

    with paused():
        if preload:
            importlib.import_module(preload)
    threadpool_limits(1)
    settle()
