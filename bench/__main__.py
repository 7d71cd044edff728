"""Run every benchmark in one process: ``python -m bench`` (``make bench``).

Each module measures metercom side by side with its peers in the same run and prints ratios,
so the figures are comparable on any machine.
"""

from __future__ import annotations

import importlib
import sys
import time

MODULES = [
    "bench.iec21_readout",
    "bench.hdlc_decode",
    "bench.axdr_profile",
    "bench.acse",
    "bench.security",
    "bench.dlms_profile_read",
    "bench.dlms_fleet",
    "bench.load_model",
    "bench.modbus_bus",
    "bench.headend",
    "bench.forward",
]


def main(argv: list[str]) -> int:
    wanted = [m for m in MODULES if not argv or any(a in m for a in argv)]
    for name in wanted:
        module = importlib.import_module(name)
        print(f"\n=== {name} ===", flush=True)
        start = time.perf_counter()
        sys.argv = [name]  # each benchmark parses its own (empty) command line
        module.main()
        print(f"({time.perf_counter() - start:.1f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
