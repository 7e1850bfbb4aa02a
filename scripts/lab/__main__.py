"""Entry point: `python3 -m lab` (scripts/lab.sh runs it with scripts/ on the path)."""
import sys

from .scenario import main

sys.exit(main(sys.argv[1:]))
