#!/bin/sh
# Live migration of a QEMU guest between two wrenvnet daemons, the controller's
# migrate_command:
#   migrate_command = "scripts/migrate-qemu.sh --run-dir /run/wrenvnet {vm} {port} {from} {to}"
# scripts/migrate-qemu.py says what it does and what it expects of the guests' QEMU.
exec python3 "$(dirname "$0")/migrate-qemu.py" "$@"
