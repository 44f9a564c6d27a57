"""edgelearn.engine.allocator: freed arrays are reused instead of mapped afresh."""

import subprocess
import sys

import pytest

from edgelearn.engine import allocator

glibc = pytest.mark.skipif(
    not sys.platform.startswith("linux") or allocator._mallopt() is None,
    reason="needs glibc's mallopt",
)

# Each case runs in a fresh process: malloc's settings are the process's, and in this one
# earlier tests leave free chunks in the heap that malloc would hand out whatever they say.
FAULTS = """
import resource, sys
import numpy as np
import edgelearn as el
from edgelearn.engine import allocator

def faults(count=5, size=64 << 20):  # above glibc's largest adaptive mmap threshold (32 MiB)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        array = np.empty(size, dtype=np.uint8)
        array[::4096] = 1  # touch every page
        del array
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

setting = sys.argv[1]
if setting != "model":
    allocator.keep_freed_memory(setting == "keep")
assert allocator._chosen is (None if setting == "model" else setting == "keep")
el.Sequential([el.layers.Input((2,)), el.layers.Dense(1)]).predict(np.ones((1, 2)))
faults(1)  # the heap grows once, if it keeps what is freed
print(faults())
"""


def _page_faults(setting: str) -> int:
    result = subprocess.run(
        [sys.executable, "-c", FAULTS, setting], capture_output=True, text=True, check=True
    )
    return int(result.stdout)


@glibc
def test_freed_arrays_are_reused_without_page_faults():
    # glibc's own settings, left untouched: each array mapped anew, hundreds of faults each
    # (the kernel maps 16 pages a fault).
    fresh = _page_faults("glibc")
    assert fresh >= 5 * 256
    assert _page_faults("keep") < fresh / 20
    # A model's first run keeps freed memory unless keep_freed_memory(False) came first.
    assert _page_faults("model") < fresh / 20


def test_keep_freed_memory_checks_its_limit():
    with pytest.raises(ValueError, match="Received: limit=0"):
        allocator.keep_freed_memory(limit=0)
