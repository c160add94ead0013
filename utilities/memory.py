"""Process memory: keep glibc from giving every driver thread its own malloc arena."""

from __future__ import annotations

import sys

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc mallopt parameters
MMAP_THRESHOLD = 1 << 20  # buffers of 1 MiB and more are mapped, and given back to the OS when freed


def limit_malloc_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas (default 8 per core) and fix its mmap threshold.

    Native readers such as connectorx allocate from worker threads; with one arena each, freed
    batches stay mapped and peak RSS climbs with the number of reads. And glibc raises its mmap
    threshold after each large free, so later multi-megabyte batch buffers come from the heap,
    fragment it and are never returned: RSS creeps up with the table size. A fixed threshold keeps
    large buffers mapped. Returns False where there is no glibc (Windows, macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # not ctypes.util: its find_library costs more than the rest of a dry run's imports

    try:
        libc = ctypes.CDLL(None)  # the process's own symbols: the C library Python is linked with
        return bool(libc.mallopt(M_ARENA_MAX, count)) and bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD))
    except (OSError, AttributeError):
        return False
