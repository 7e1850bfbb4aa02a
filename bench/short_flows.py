#!/usr/bin/env python3
"""Many short TCP transfers, for checking Wren on an application that never reaches
steady state: the client opens a connection, sends BYTES, half-closes, waits for the
server to close, and starts over, for SECONDS.

  short_flows.py server PORT
  short_flows.py client HOST PORT BYTES SECONDS [CC]   # prints: transfers bytes seconds
"""
import socket
import sys
import time


def server(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port))
    s.listen(64)
    while True:
        c, _ = s.accept()
        with c:
            while c.recv(65536):
                pass


def client(host, port, size, seconds, cc=None):
    payload = b"\0" * size
    n, end, t0 = 0, time.time() + seconds, time.time()
    while time.time() < end:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as c:
            if cc:
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
            c.connect((host, port))
            c.sendall(payload)
            c.shutdown(socket.SHUT_WR)
            c.recv(1)  # the server's close
        n += 1
    print(n, n * size, round(time.time() - t0, 3))


if __name__ == "__main__":
    if sys.argv[1] == "server":
        server(int(sys.argv[2]))
    else:
        cc = sys.argv[6] if len(sys.argv) > 6 else None
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), cc)
