"""The garbage collector's settings for a process that scores many rows: the server's
workers once the model is loaded (`settle`), and `census predict` while it streams a file
(`settled`).

Both move every object there is out of the collector's view (`gc.freeze`: a full
collection no longer walks the ~65,000 objects of the imported libraries and the model,
a ~45 ms pause) and let the young generation grow larger, since a batch of rows makes
thousands of objects that all die with it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# Objects allocated, less those freed, before the collector looks at the youngest ones
# (Python's default is 700): a 1,000-row request makes ~15,000 that all die with it.
YOUNG_GENERATION_THRESHOLD = 10_000


def settle() -> None:
    """Once the app and model are loaded, for good. No collection first: it would delay
    the first request ~35 ms to free ~40 objects."""
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, middle, old)


@contextmanager
def settled() -> Iterator[None]:
    """`settle` for a while: the collector is put back as it was on the way out (so a
    command run inside another program, a test say, leaves it as it found it)."""
    threshold = gc.get_threshold()
    settle()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()
