"""The receiver's pinned mmap threshold really hands large freed buffers back to the OS (glibc).

The soak test (tests/test_receiver_soak.py) shows the effect over 50 evals in ~2.5 min; this
checks the mechanism in a second. A fresh Python frees a 4 MiB buffer, which raises glibc's
dynamic mmap threshold above 512 KiB, then allocates and frees a 512 KiB buffer. The oracle is
the kernel's ``/proc/self/maps``: is the freed buffer's address still mapped? With the threshold
pinned it is not (own mmap, unmapped on free). Without the pin (the control) the buffer came
from the heap and stays mapped, which is the fragmentation the soak used to see.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

PROBE = """
import ctypes, sys
from otel_bridge.receiver.memory import fix_mmap_threshold

def mapped(addr):
    for line in open("/proc/self/maps"):
        lo, hi = (int(x, 16) for x in line.split()[0].split("-"))
        if lo <= addr < hi:
            return True
    return False

if sys.argv[1] == "pinned":
    assert fix_mmap_threshold()
big = bytes(4 << 20)
del big  # a freed mmapped chunk: glibc's dynamic threshold rises to its size
buf = bytearray(512 * 1024)
view = (ctypes.c_char * len(buf)).from_buffer(buf)
addr = ctypes.addressof(view) + len(buf) // 2
del view, buf
print("mapped" if mapped(addr) else "unmapped")
"""


def _glibc() -> bool:
    try:
        return sys.platform.startswith("linux") and hasattr(ctypes.CDLL(None), "mallopt")
    except OSError:
        return False


@pytest.mark.skipif(not _glibc(), reason="glibc only: elsewhere fix_mmap_threshold is a no-op")
@pytest.mark.parametrize(("mode", "expected"), [("pinned", "unmapped"), ("dynamic", "mapped")])
def test_a_large_freed_buffer_goes_back_to_the_os_only_with_the_pin(mode: str, expected: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=60, check=True
    )
    assert out.stdout.strip() == expected, out.stderr
