"""How much memory there is, for the estimates that refuse work that cannot fit before it starts."""

from __future__ import annotations

import os


def available_memory() -> int:
    """Bytes of memory this process could still get: Linux's MemAvailable, else physical memory."""
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: refuse nothing


def size_text(n: int) -> str:
    """Bytes as a short figure: 12.3 MB, 4.5 GB."""
    return f"{n / 1e9:,.1f} GB" if n >= 1e8 else f"{n / 1e6:,.1f} MB"
