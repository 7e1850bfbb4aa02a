#!/usr/bin/env bash
# Host setup for wrenvnet on Debian 12, idempotent: packages, hugepages, hugetlbfs.
#
#   sudo scripts/setup.sh                 # 1024 x 2 MiB hugepages (2 GiB)
#   HUGEPAGES=2048 sudo scripts/setup.sh  # more
#   HUGEPAGE_SIZE=1G HUGEPAGES=4 sudo scripts/setup.sh
#   SKIP_APT=1 scripts/setup.sh           # hugepages only
set -euo pipefail

HUGEPAGES="${HUGEPAGES:-1024}"
HUGEPAGE_SIZE="${HUGEPAGE_SIZE:-2M}"
HUGE_MNT="${HUGE_MNT:-/dev/hugepages}"

PACKAGES=(
  # DPDK and what dpdk-sys builds with
  dpdk dpdk-dev libdpdk-dev clang libclang-dev pkg-config build-essential
  # the tests and the lab
  iproute2 iperf3 tcpdump tshark ethtool iputils-ping procps psmisc
  # a hostile guest for the fault tests: SYN floods to random ports
  hping3
  # real applications for VTTIF (MPI) and a second opinion on RTTs (tcptrace)
  openmpi-bin libopenmpi-dev tcptrace
  # real VMs: QEMU guests (TCG) over vhost-user, and what scripts/guest-image.sh packs
  qemu-system-x86 busybox-static xz-utils
  # the cluster's state (etcd v3) and what the etcd client's gRPC code is generated with
  etcd-server etcd-client protobuf-compiler libprotobuf-dev
)

say() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "must run as root (hugepages, packages): sudo $0"

if [ "${SKIP_APT:-0}" != 1 ]; then
  missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    say "packages: all present"
  fi
  # Debian's etcd-server enables a member on 127.0.0.1:2379 as a service; wrenvnet's
  # tests and lab start their own members, on their own ports and data dirs.
  if command -v systemctl >/dev/null && systemctl is-enabled etcd >/dev/null 2>&1; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

command -v cargo >/dev/null || die "cargo not found: wrenvnet needs a Rust toolchain (1.88 or newer, e.g. from rustup)"
pkg-config --atleast-version=22.11 libdpdk || die "libdpdk >= 22.11 not found by pkg-config after install"

case "$HUGEPAGE_SIZE" in
  2M|2m) kb=2048 ;;
  1G|1g) kb=1048576 ;;
  *) die "HUGEPAGE_SIZE must be 2M or 1G, got $HUGEPAGE_SIZE" ;;
esac
nr="/sys/kernel/mm/hugepages/hugepages-${kb}kB/nr_hugepages"
[ -e "$nr" ] || die "this kernel/CPU offers no ${HUGEPAGE_SIZE} hugepages ($nr missing)"
have=$(cat "$nr")
if [ "$have" -lt "$HUGEPAGES" ]; then
  echo "$HUGEPAGES" > "$nr" || true
  have=$(cat "$nr")
fi
if [ "$have" -lt "$HUGEPAGES" ]; then
  die "asked for $HUGEPAGES x $HUGEPAGE_SIZE hugepages, the kernel gave $have (memory fragmented? try fewer, or reserve at boot with hugepages=$HUGEPAGES on the kernel command line)"
fi
say "hugepages: $have x $HUGEPAGE_SIZE reserved"

mkdir -p "$HUGE_MNT"
if ! mountpoint -q "$HUGE_MNT"; then
  mount -t hugetlbfs -o "pagesize=${HUGEPAGE_SIZE}" nodev "$HUGE_MNT" || die "cannot mount hugetlbfs on $HUGE_MNT"
fi
say "hugetlbfs: mounted on $HUGE_MNT"
say "done"
