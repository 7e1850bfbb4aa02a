#!/bin/sh
# The lab: wrenvnet closing the loop on one machine (scripts/lab/; `scripts/lab.sh --help`).
export PYTHONPATH="$(dirname "$0")${PYTHONPATH:+:$PYTHONPATH}"
exec python3 -B -P -m lab "$@"
