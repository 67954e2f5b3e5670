"""Give memory the sinks freed back to the OS when the receiver goes idle (glibc only).

A long-running receiver frees what each eval used (sinks drop an evaluation's state once it is
confirmed), but glibc keeps freed memory in its per-thread arenas — the receiver's worker,
weave's batch threads and each flush thread allocate in their own — so RSS climbs with every eval
though the Python heap does not (docs/performance.md, "A long-running receiver's memory").
``malloc_trim(0)`` returns the free pages; elsewhere (musl, macOS, Windows) this is a no-op.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Callable

_trim: Callable[[int], int] | None = None
_loaded = False


def _malloc_trim() -> Callable[[int], int] | None:
    global _trim, _loaded
    if not _loaded:
        _loaded = True
        if sys.platform.startswith("linux"):
            try:
                _trim = ctypes.CDLL(None).malloc_trim
            except (OSError, AttributeError):  # not glibc
                _trim = None
    return _trim


def release_free_memory() -> bool:
    """Hand the allocator's free pages back to the OS; True when glibc did it."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
