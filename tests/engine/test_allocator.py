"""edgelearn.engine.allocator: freed arrays are reused instead of mapped afresh."""

import subprocess
import sys

import pytest

from edgelearn.engine import allocator

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or allocator._mallopt() is None,
    reason="needs glibc's mallopt",
)


# Run in a fresh process: in this one, earlier tests leave free chunks in the heap that
# malloc would hand out whatever the thresholds say.
FAULTS_IN_A_FRESH_PROCESS = """
import resource, sys
import numpy as np
from edgelearn.engine import allocator

def faults(count=10, size=16 << 20):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        array = np.empty(size, dtype=np.uint8)
        array[::4096] = 1  # touch every page
        del array
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

keep = sys.argv[1] == "keep"
assert allocator.keep_freed_memory(keep)
faults(1)  # the heap grows once, if it keeps what is freed
print(faults())
"""


def _page_faults(setting: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS_IN_A_FRESH_PROCESS, setting],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(result.stdout)


@glibc
def test_freed_arrays_are_reused_without_page_faults():
    # Each array mapped anew: hundreds of faults each (the kernel maps 16 pages a fault).
    fresh = _page_faults("glibc")
    assert fresh >= 10 * 64
    assert _page_faults("keep") < fresh / 20


def test_keep_freed_memory_checks_its_limit():
    with pytest.raises(ValueError, match="Received: limit=0"):
        allocator.keep_freed_memory(limit=0)
