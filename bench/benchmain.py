"""How the control-plane benchmarks (bench/cluster.py, bench/fleet.py) run their main,
shared so both start, stop and clean up alike: the wrenvnet binary must be built, and
SIGTERM ends a run as an exit (status 143), so that every process it started is still
stopped by PID and its folder removed."""
import os
import signal
import sys


def run(main, cleanup, wrenvnet):
    """Runs `main()` if `wrenvnet` is an executable, then `cleanup()` however it ended."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        if not os.access(wrenvnet, os.X_OK):
            raise SystemExit(f"{wrenvnet} missing: cargo build --release")
        main()
    finally:
        cleanup()
