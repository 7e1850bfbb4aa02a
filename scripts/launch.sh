#!/usr/bin/env bash
# Starts wrenvnet on a bare-metal host: hugepages, the NIC on vfio-pci, a word on core
# isolation, then the daemon with the EAL arguments that match.
#
#   sudo scripts/launch.sh --config /etc/wrenvnet/wrenvnet.toml --pci 0000:3b:00.0 --lcores 2-3
#   sudo scripts/launch.sh --config cfg.toml --pci 0000:3b:00.0 --unbind ixgbe   # give the NIC back
#   scripts/launch.sh --dry-run --config cfg.toml --pci 0000:3b:00.0             # say, change nothing
#
# Options:
#   --config FILE        the daemon's config (required unless --unbind)
#   --pci ADDR           a NIC for DPDK (repeat); bound to vfio-pci if it is not already.
#                        Without any, the EAL gets --no-pci and no device is touched.
#   --lcores LIST        EAL -l (default 0-1): the first is the main (control/analysis)
#                        lcore, the rest run workers and should be isolated cores
#   --hugepages N        pages to reserve (default 1024 of 2M, 4 of 1G)
#   --hugepage-size S    2M (default) or 1G
#   --unbind DRIVER      bind the --pci devices back to DRIVER (e.g. ixgbe, i40e) and exit
#   --dry-run            print what would be done, change nothing, start nothing
#   -- ARGS              more EAL arguments, passed through
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
CONFIG=""; PCI=(); LCORES="0-1"; PAGES=""; SIZE="2M"; UNBIND=""; DRY=0; EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="$2"; shift 2 ;;
    --pci) PCI+=("$2"); shift 2 ;;
    --lcores) LCORES="$2"; shift 2 ;;
    --hugepages) PAGES="$2"; shift 2 ;;
    --hugepage-size) SIZE="$2"; shift 2 ;;
    --unbind) UNBIND="$2"; shift 2 ;;
    --dry-run) DRY=1; shift ;;
    --) shift; EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "launch: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
say() { printf '[launch] %s\n' "$*"; }
warn() { printf '[launch] warning: %s\n' "$*" >&2; }
die() { printf '[launch] error: %s\n' "$*" >&2; exit 1; }
run() { if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi; }

[ "$DRY" = 1 ] || [ "$(id -u)" -eq 0 ] || die "must run as root (hugepages, vfio): sudo $0 ..."
DEVBIND=$(command -v dpdk-devbind.py || command -v dpdk-devbind || true)
for p in "${PCI[@]}"; do
  [[ "$p" =~ ^[0-9a-fA-F]{4}:[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$ ]] ||
    die "--pci $p is not a PCI address like 0000:3b:00.0"
  [ -e "/sys/bus/pci/devices/$p" ] || die "no PCI device $p on this host (lspci -D lists them)"
done

if [ -n "$UNBIND" ]; then
  [ ${#PCI[@]} -gt 0 ] || die "--unbind needs the --pci devices to give back"
  [ -n "$DEVBIND" ] || die "dpdk-devbind.py not found (package dpdk)"
  for p in "${PCI[@]}"; do run "$DEVBIND" --bind="$UNBIND" "$p"; done
  exit 0
fi
[ -n "$CONFIG" ] || die "--config is required"
[ -r "$CONFIG" ] || die "cannot read $CONFIG"

# Hugepages.
case "$SIZE" in
  2M) kb=2048; PAGES="${PAGES:-1024}"; mnt=/dev/hugepages; opt="" ;;
  1G) kb=1048576; PAGES="${PAGES:-4}"; mnt=/dev/hugepages1G; opt="-o pagesize=1G" ;;
  *) die "--hugepage-size must be 2M or 1G" ;;
esac
nr="/sys/kernel/mm/hugepages/hugepages-${kb}kB/nr_hugepages"
[ -e "$nr" ] || die "this kernel has no ${SIZE} hugepages (for 1G: boot with hugepagesz=1G)"
have=$(cat "$nr")
if [ "$have" -lt "$PAGES" ]; then
  say "reserving $PAGES x $SIZE hugepages (have $have)"
  if [ "$DRY" = 1 ]; then say "would write $PAGES to $nr"; else
    echo "$PAGES" > "$nr"
    got=$(cat "$nr")
    [ "$got" -ge "$PAGES" ] || warn "only $got of $PAGES ${SIZE} pages could be reserved (memory is fragmented: reserve them at boot: hugepages=$PAGES hugepagesz=$SIZE)"
  fi
else
  say "hugepages: $have x $SIZE reserved"
fi
if ! grep -qs " $mnt hugetlbfs " /proc/mounts; then
  run mkdir -p "$mnt"
  # shellcheck disable=SC2086
  run mount -t hugetlbfs $opt nodev "$mnt"
fi

# The NICs on vfio-pci.
for p in "${PCI[@]}"; do
  drv=$(basename "$(readlink -f "/sys/bus/pci/devices/$p/driver" 2>/dev/null)" 2>/dev/null || true)
  if [ "$drv" = vfio-pci ]; then say "$p already on vfio-pci"; continue; fi
  [ -n "$DEVBIND" ] || die "dpdk-devbind.py not found (package dpdk)"
  [ -e /sys/kernel/iommu_groups/0 ] || warn "no IOMMU groups: enable the IOMMU (intel_iommu=on / amd_iommu=on) or vfio-pci will refuse $p"
  say "$p: ${drv:-no driver} -> vfio-pci (give it back with --unbind ${drv:-DRIVER})"
  run modprobe vfio-pci
  # dpdk-devbind refuses a device whose interface is up with routes: that is the point.
  run "$DEVBIND" --bind=vfio-pci "$p"
done

# Worker cores should be isolated from the scheduler (isolcpus / nohz_full / cpusets).
isolated=$(cat /sys/devices/system/cpu/isolated 2>/dev/null || true)
expand() { local out=() part a b; IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ "$part" == *-* ]]; then a=${part%-*}; b=${part#*-}; for ((i=a; i<=b; i++)); do out+=("$i"); done
    elif [ -n "$part" ]; then out+=("$part"); fi
  done; echo "${out[@]:-}"; }
read -ra cores <<<"$(expand "$LCORES")"
[ ${#cores[@]} -ge 2 ] || die "--lcores $LCORES: need a main lcore and at least one worker"
iso=" $(expand "$isolated") "
for c in "${cores[@]:1}"; do
  [[ "$iso" == *" $c "* ]] || warn "worker core $c is not isolated (isolcpus=/nohz_full= on the kernel command line): other tasks will steal its cycles"
done

EAL=(-l "$LCORES" --huge-dir "$mnt" --file-prefix wrenvnet)
for p in "${PCI[@]}"; do EAL+=(-a "$p"); done
[ ${#PCI[@]} -gt 0 ] || EAL+=(--no-pci)
BIN="${WRENVNET_BIN:-$(command -v wrenvnet || echo "$here/../target/release/wrenvnet")}"
[ "$DRY" = 1 ] || [ -x "$BIN" ] || die "wrenvnet binary not found (cargo build --release, or set WRENVNET_BIN)"
if [ "$DRY" = 1 ]; then
  say "would run: $BIN run --config $CONFIG -- ${EAL[*]} ${EXTRA[*]}"
  exit 0
fi
say "starting: $BIN run --config $CONFIG -- ${EAL[*]} ${EXTRA[*]}"
exec "$BIN" run --config "$CONFIG" -- "${EAL[@]}" "${EXTRA[@]}"
