#!/usr/bin/env bash
# Builds the lab's real VM image: Debian's cloud kernel and an initramfs with busybox,
# iperf3 (with the libraries ldd names) and the virtio-net modules. The guest's /init
# reads its role from the kernel command line (wv.role=server|serve|client|ping, wv.ip,
# wv.peer, wv.secs), runs it, prints the results on the serial console and powers off
# (`serve`: an iperf3 server that stays up, for a guest that migrates), so a test can
# run a guest without interaction.
#
#   scripts/guest-image.sh [OUTDIR]     # default build/guest; writes vmlinuz and initrd.gz
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-build/guest}"
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
VERSION=2   # the init's roles; an image of another version is built again
if [ -s "$OUT/vmlinuz" ] && [ -s "$OUT/initrd.gz" ] && [ "$(cat "$OUT/version" 2>/dev/null)" = "$VERSION" ]; then
  echo "[guest-image] $OUT already built"; exit 0
fi
for t in busybox iperf3; do command -v "$t" >/dev/null || { echo "[guest-image] error: $t missing (scripts/setup.sh installs it)" >&2; exit 1; }; done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
kernel_pkg() { apt-cache depends linux-image-cloud-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-cloud-amd64\)$/\1/p' | head -1; }
kpkg=$(kernel_pkg)
if [ -z "$kpkg" ]; then apt-get update -q >/dev/null 2>&1 || true; kpkg=$(kernel_pkg); fi
[ -n "$kpkg" ] || { echo "[guest-image] error: cannot name the cloud kernel package (apt-get update failed?)" >&2; exit 1; }
echo "[guest-image] kernel package $kpkg"
(cd "$work" && apt-get download -q "$kpkg" >/dev/null)
dpkg -x "$work"/"$kpkg"_*.deb "$work/k"
kver=${kpkg#linux-image-}
cp "$work/k/boot/vmlinuz-$kver" "$OUT/vmlinuz"

root="$work/root"
mkdir -p "$root"/{bin,sbin,lib,lib64,proc,sys,dev,tmp,mods,usr/bin,usr/lib}
cp "$(command -v busybox)" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
cp "$(command -v iperf3)" "$root/usr/bin/iperf3"
for lib in $(ldd "$(command -v iperf3)" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"; cp -L "$lib" "$root$lib"
done
mdir="$work/k/lib/modules/$kver/kernel"
for m in virtio virtio_ring virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net; do
  f=$(find "$mdir" -name "$m.ko*" | head -1)
  [ -n "$f" ] || { echo "[guest-image] error: module $m not in $kpkg" >&2; exit 1; }
  case "$f" in *.xz) xz -dc "$f" > "$root/mods/$m.ko" ;; *) cp "$f" "$root/mods/$m.ko" ;; esac
done
cat > "$root/init" <<'INIT'
#!/bin/busybox sh
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev 2>/dev/null
# No modules.dep: load in passes until everything is in (the order between virtio and
# virtio_ring differs across kernel versions).
for pass in 1 2 3; do
  for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci failover net_failover virtio_net; do
    grep -q "^$m " /proc/modules || insmod /mods/$m.ko 2>/dev/null
  done
done
arg() { sed -n "s/.*wv\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
role=$(arg role); ip=$(arg ip); peer=$(arg peer); secs=$(arg secs); secs=${secs:-5}
ip link set lo up; ip link set eth0 mtu 1450; ip link set eth0 up; ip addr add "$ip/24" dev eth0
echo "WV-UP $role $ip"; ip -o link; ip -o addr
case "$role" in
  server) iperf3 -s -1 ;;
  serve) iperf3 -s ;;
  client)
    i=0; until ping -c 1 -W 1 "$peer" >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i+1)); done
    ping -c 3 "$peer"
    iperf3 -c "$peer" -t "$secs" ;;
  ping) i=0; until ping -c 1 -W 1 "$peer" >/dev/null 2>&1 || [ $i -ge 60 ]; do i=$((i+1)); done; ping -c 5 "$peer" ;;
esac
echo WV-DONE
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1 > "$OUT/initrd.gz")
echo "$VERSION" > "$OUT/version"
echo "[guest-image] built $OUT/vmlinuz ($(du -h "$OUT/vmlinuz" | cut -f1)) and $OUT/initrd.gz ($(du -h "$OUT/initrd.gz" | cut -f1))"
