#!/usr/bin/env python3
"""Writes a pcap of TCP/IPv4 frames for replaying into a port (DPDK net_pcap with
infinite_rx=1): plain frames from a VM to a remote VM (what the switch encapsulates),
or the same wrapped in VXLAN from a peer host to this one (what it decapsulates).
Flows vary (source ports) so per-flow state is exercised; checksums are correct.

  gen_frames.py plain OUT.pcap [--size 1514] [--count 1024] [--dst-count N]
  gen_frames.py vxlan OUT.pcap --nic-mac 02:70:63:61:70:00 [--size 1514] [--count 1024]
"""
import argparse
import struct

VM_A, VM_B = bytes.fromhex("02000000aa01"), bytes.fromhex("02000000bb01")
IP_A, IP_B = bytes([198, 19, 0, 1]), bytes([198, 19, 0, 2])
HOST_A, HOST_B = bytes([198, 18, 100, 1]), bytes([198, 18, 100, 2])
PEER_MAC = bytes.fromhex("02000000ff02")
# net_pcap holds a replayed file in mbufs, at most the daemon's pool (16383) less its
# queues' share.
MAX_FRAMES = 8192


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def ipv4(src, dst, proto, payload, ident):
    h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0, src, dst)
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + payload


def tcp(src_ip, dst_ip, sport, dport, seq, payload):
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, 1, 5 << 4, 0x18, 65535, 0, 0)
    pseudo = src_ip + dst_ip + struct.pack("!BBH", 0, 6, len(h) + len(payload))
    c = csum(pseudo + h + payload)
    return h[:16] + struct.pack("!H", c) + h[18:] + payload


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["plain", "vxlan"])
    ap.add_argument("out")
    ap.add_argument("--size", type=int, default=1514, help="inner frame size in bytes (>= 54)")
    ap.add_argument("--count", type=int, default=1024)
    ap.add_argument("--nic-mac", default="02:70:63:61:70:00")
    ap.add_argument("--dst-count", type=int, default=0,
                    help="plain: frames to N remote VMs, 02:0c:00:00:00:00 on (testbed's "
                         "fleet_mac; the config's --rules): each of them in turn, or past "
                         "MAX_FRAMES of them, MAX_FRAMES spread over all N")
    a = ap.parse_args()
    size = max(a.size, 54)
    frames = []
    frames_n = max(a.count, min(a.dst_count, MAX_FRAMES))
    for i in range(frames_n):
        payload = bytes((i + k) & 0xFF for k in range(size - 54))
        if a.kind == "plain":
            seg = tcp(IP_A, IP_B, 40000 + i % 512, 5201, 1 + i * len(payload), payload)
            # A prime stride: distinct destinations, spread over the whole range.
            if a.dst_count == 0:
                k = 0
            elif a.dst_count <= MAX_FRAMES:
                k = i % a.dst_count
            else:
                k = i * 1000003 % a.dst_count
            dst = VM_B if a.dst_count == 0 else b"\x02\x0c" + struct.pack("!I", k)
            frames.append(dst + VM_A + b"\x08\x00" + ipv4(IP_A, IP_B, 6, seg, i & 0xFFFF))
        else:
            seg = tcp(IP_B, IP_A, 40000 + i % 512, 5201, 1 + i * len(payload), payload)
            inner = VM_A + VM_B + b"\x08\x00" + ipv4(IP_B, IP_A, 6, seg, i & 0xFFFF)
            vx = struct.pack("!II", 0x08000000, 42 << 8) + inner
            udp = struct.pack("!HHHH", 49152 + i % 4096, 4789, 8 + len(vx), 0) + vx
            nic = bytes.fromhex(a.nic_mac.replace(":", ""))
            frames.append(nic + PEER_MAC + b"\x08\x00" + ipv4(HOST_B, HOST_A, 17, udp, i & 0xFFFF))
    with open(a.out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for i, fr in enumerate(frames):
            f.write(struct.pack("<IIII", i // 1000000, i % 1000000, len(fr), len(fr)))
            f.write(fr)


if __name__ == "__main__":
    main()
