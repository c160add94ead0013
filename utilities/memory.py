"""Process memory: keep glibc from giving every driver thread its own malloc arena, and Arrow's
buffers in that same allocator."""

from __future__ import annotations

import os
import sys

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc mallopt parameters
MMAP_THRESHOLD = 1 << 20  # buffers of 1 MiB and more are mapped, and given back to the OS when freed
ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"  # Arrow C++ reads it at its first allocation


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


def prefer_system_arrow_pool() -> bool:
    """Arrow's buffers from glibc malloc (as tuned by :func:`limit_malloc_arenas`) instead of the jemalloc
    bundled with pyarrow, unless ``ARROW_DEFAULT_MEMORY_POOL`` is already set (the user's choice wins).

    jemalloc keeps freed pages for a while and maps arenas of its own: on the MariaDB -> PostgreSQL
    Arrow path (1M rows of the bench's sales table) peak RSS was 160-167 MB with it and 150-155 MB with
    glibc, at the same speed. Linux only (elsewhere Arrow's default, mimalloc or jemalloc, stays);
    effective only before Arrow's first allocation, so it is called before anything imports pyarrow.
    Returns True when the system pool is the one Arrow will use."""
    if not sys.platform.startswith("linux"):
        return False
    os.environ.setdefault(ARROW_POOL_VARIABLE, "system")
    return os.environ[ARROW_POOL_VARIABLE] == "system"
