"""Process memory: keep glibc from giving every driver thread its own malloc arena."""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(count: int = 2) -> bool:
    """Cap glibc's malloc arenas (default 8 per core). Native readers such as connectorx allocate
    from worker threads; with one arena each, freed batches stay mapped and peak RSS climbs with the
    number of reads. Returns False where there is no glibc (Windows, macOS, musl): nothing to do."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    if not name:
        return False
    try:
        return bool(ctypes.CDLL(name).mallopt(M_ARENA_MAX, count))
    except (OSError, AttributeError):
        return False
