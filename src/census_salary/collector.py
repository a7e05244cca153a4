"""The garbage collector's settings, for processes that load large libraries and then
work on many rows.

- `paused`: no collections while a command imports what it works with and loads its
  model. Importing makes hundreds of thousands of objects and next to no garbage, and
  collections walking them over and over take a tenth of the time (~0.18 s of `census
  train`'s imports).
- `settle` (for good: a server once its app and model are loaded, ~55 ms sooner to its
  first answer when collections were paused until then) and `settled` (for a while:
  `census train`, `predict`, `evaluate`, `slice-report` and `monitor` as they work) move
  every object there is out of the collector's view (`gc.freeze`: a full collection no
  longer walks the ~65,000 objects of the imported libraries and the model, a ~45 ms
  pause) and let the young generation grow larger, since a batch of rows makes thousands
  of objects that all die with it. Settling right after `paused` also spares the one
  long collection that would otherwise walk everything the pause let pile up.
- `freeze_at_exit`: as the console script ends, the interpreter's last collection would
  walk every object the command imported or made only to free nothing (~0.4 s after
  `census train`); frozen, they go with the process.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Objects allocated, less those freed, before the collector looks at the youngest ones
# (Python's default is 700): a 1,000-row request makes ~15,000 that all die with it.
YOUNG_GENERATION_THRESHOLD = 10_000


def settle() -> None:
    """Once the app and model are loaded, for good; collections are on from here. No
    collection first: it would delay the first request ~35 ms to free ~40 objects."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)
    gc.enable()


@contextmanager
def paused() -> Iterator[None]:
    """No collections inside, until `settle` turns them on; the collector is put back as
    it was on the way out. A server runs inside `paused` and settles once its app and
    model are loaded (or stops, and the collector is back as it was)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextmanager
def settled() -> Iterator[None]:
    """`settle` for a while: the collector is put back as it was on the way out (so a
    command run inside another program, a test say, leaves it as it found it)."""
    enabled, threshold = gc.isenabled(), gc.get_threshold()
    settle()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
        if not enabled:
            gc.disable()


def freeze_at_exit() -> None:
    """As the console script ends (see above). Files are closed by then, each written
    inside a `with`, and atexit handlers still run."""
    gc.freeze()
