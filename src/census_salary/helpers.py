"""Helper processes: work that runs beside this process's own, on the machine's other cores.

`census train` fits most of the threshold's folds, saves the model, measures the
permutation importance and draws half the figures in a helper while this process fits the
final model and evaluates it: the same bundle, about a second sooner on two cores (README,
Speed). Threads cannot do it: a scikit-learn fit holds the interpreter lock for most of its
work, and OpenMP gives a single fit little from a second core.

A helper is a fresh interpreter, never a fork (a fork of a process that has run OpenMP
code deadlocks in its first OpenMP call), started by loky, the executor scikit-learn's
own `n_jobs` uses (joblib's): unlike the standard library's "spawn", it does not run the
caller's main script again in the helper, so a script that trains needs no `if __name__
== "__main__"` guard. A helper imports `preload` as it starts, and `census train` starts
it before importing the same libraries itself, so the two imports overlap. Each helper
runs its OpenMP and BLAS code on one thread, as this process does while helpers work
(`sharing_cores`), so that two processes do not contend for each core.

`Helpers(0)` has no process: each call then runs here when its result is asked for, so
callers have one code path. If a helper process dies (killed, out of memory), the calls
it had not finished run here instead, with a warning: training never fails for it.
"""

from __future__ import annotations

import importlib
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool  # loky's is a subclass
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from census_salary.config import Settings

logger = logging.getLogger(__name__)

T = TypeVar("T")
PARENT_CHECK_SECONDS = 1.0  # how often a helper looks whether the process it helps is gone


class Pending(Generic[T]):
    """The result of `fn(*args)`: from a helper once one has taken the call, else computed
    here when it is asked for."""

    def __init__(self, fn: Callable[..., T], args: tuple[Any, ...], helpers: Helpers) -> None:
        self.fn, self.args, self._helpers = fn, args, helpers
        self.future: Future[T] | None = None  # once a helper has the call
        self.sent = threading.Event()  # set once a helper has it, or it is to be done here

    def result(self) -> T:
        """The helper's result; computed here now if no helper has taken the call (there
        is none, all are busy or late), or the one that had it died."""
        if not self._helpers.take_back(self):
            self.sent.wait()
            if self.future is not None:
                try:
                    return self.future.result()
                except BrokenProcessPool:
                    logger.warning(
                        "a helper process stopped before it finished %s; doing it here instead",
                        getattr(self.fn, "__name__", "its work"),
                    )
        return self.fn(*self.args)


class Helpers:
    """`count` helper processes (0: none), each importing `preload` as it starts.

    A helper is given one call at a time, the oldest waiting, when it is free; this process
    takes back a call still waiting when its result is asked for, so nothing is ever
    cancelled and nothing waits behind a busy or late helper. Use it as a context manager:
    leaving it ends the processes. Arguments and results travel between the processes
    pickled, as they do to scikit-learn's own workers.
    """

    def __init__(self, count: int, preload: str | None = None) -> None:
        self.count = count
        self._pool: Any = None
        self._lock = threading.Lock()
        self._waiting: deque[Pending[Any]] = deque()
        self._free = count  # helpers without a call of ours
        if count > 0:
            from joblib.externals.loky.process_executor import ProcessPoolExecutor

            self._pool = ProcessPoolExecutor(
                max_workers=count,
                initializer=_start,
                initargs=(preload,),
                env={"OMP_NUM_THREADS": "1"},  # set before any library loads
            )
            # Processes start with the first call: start them now, importing at once.
            for _ in range(count):
                self._pool.submit(int)

    def run(self, fn: Callable[..., T], *args: Any) -> Pending[T]:
        """`fn(*args)` in a helper, or here if none takes it first. `fn` must be a
        module-level function, and `args` picklable, for a helper to run it."""
        pending = Pending(fn, args, self)
        with self._lock:
            if self._pool is None:
                pending.sent.set()  # with no future: here
                return pending
            self._waiting.append(pending)
        self._dispatch()
        return pending

    def take_back(self, pending: Pending[Any]) -> bool:
        """Whether `pending` was still waiting for a helper (it is no longer)."""
        with self._lock:
            if pending in self._waiting:
                self._waiting.remove(pending)
                return True
            return False

    def _dispatch(self) -> None:
        """Give each free helper the oldest waiting call."""
        while True:
            with self._lock:
                if not (self._free and self._waiting and self._pool is not None):
                    return
                pending, pool = self._waiting.popleft(), self._pool
                self._free -= 1
            try:
                pending.future = pool.submit(pending.fn, *pending.args)
            except (BrokenProcessPool, RuntimeError):  # dead, or shut down: done here
                pending.sent.set()
                continue
            pending.sent.set()
            pending.future.add_done_callback(self._finished)

    def _finished(self, _: Future[Any]) -> None:  # (in the executor's thread)
        with self._lock:
            self._free += 1
        self._dispatch()

    def sharing_cores(self) -> AbstractContextManager[object]:
        """While helpers work too: this process's OpenMP and BLAS code on one thread."""
        if self._pool is None:
            return nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(1)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            waiting, self._waiting = list(self._waiting), deque()
        for pending in waiting:  # (asked for later, each is computed here)
            pending.sent.set()
        if pool is not None:
            pool.shutdown(wait=True, kill_workers=True)  # its work is done or unwanted

    def __enter__(self) -> Helpers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def training_helpers(settings: Settings) -> Helpers:
    """The helpers `census_salary.train` uses, importing it as they start."""
    return Helpers(training_helper_count(settings), "census_salary.train")


def training_helper_count(settings: Settings) -> int:
    """[train] processes - 1, but no more than training has work for: each threshold fold
    is a piece of work, and saving the model, its importance and drawing another."""
    folds = settings.threshold.cv if settings.threshold.objective != "fixed" else 0
    return min(settings.train.processes - 1, max(folds, 1))


def _start(preload: str | None) -> None:
    """A helper process's first step: its imports, with the collector paused; and a
    watch on the process that started it, so that it never outlives it."""
    from census_salary.collector import paused, settle

    parent = os.getppid()
    threading.Thread(target=_end_with, args=(parent,), name="census-parent", daemon=True).start()
    with paused():
        if preload:
            importlib.import_module(preload)
    settle()


def _end_with(parent: int) -> None:
    """End this helper once `parent` is gone (killed, say: it had no time to end its
    helpers), rather than wait for work that will never come."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_SECONDS)
    os._exit(1)
