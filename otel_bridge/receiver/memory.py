"""Keep a long-running receiver's memory flat: glibc allocator settings and an idle trim.

A long-running receiver frees what each eval used (sinks drop an evaluation's state once it is
confirmed), yet RSS climbed ~0.4 MB per eval while the Python heap grew ~57 KB
(docs/performance.md, "A long-running receiver's memory"). The cause is glibc's *dynamic* mmap
threshold: the first large buffer freed (weave's JSON batch bodies, request bodies) raises the
threshold to its size, so later large buffers come from the arenas instead of their own mmap,
and the arenas fragment around the small objects that stay. ``fix_mmap_threshold`` pins the
threshold at glibc's default (128 KiB), so large buffers go back to the OS when freed;
``release_free_memory`` (``malloc_trim(0)``) returns the arenas' free pages when idle. Elsewhere
(musl, macOS, Windows) both are no-ops.
"""

from __future__ import annotations

import ctypes
import sys
from typing import Any

M_MMAP_THRESHOLD = -3  # mallopt parameter (malloc.h); setting it also turns the dynamic threshold off
MMAP_THRESHOLD = 128 * 1024  # glibc's initial value, kept fixed

_libc: Any = None
_loaded = False


def _glibc() -> Any:
    """glibc's handle with ``malloc_trim`` and ``mallopt``, or None elsewhere."""
    global _libc, _loaded
    if not _loaded:
        _loaded = True
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None)
            except OSError:
                return None
            if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt"):  # else not glibc
                _libc = libc
    return _libc


def fix_mmap_threshold() -> bool:
    """Pin glibc's mmap threshold (no dynamic raise); True when glibc took it."""
    libc = _glibc()
    return libc is not None and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))


def release_free_memory() -> bool:
    """Hand the allocator's free pages back to the OS; True when glibc did it."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
