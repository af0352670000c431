#!/usr/bin/env python3
"""Real traffic for the namespace tests and benchmarks (python3: starts fast under nsenter,
and can set IP_TOS / IPV6_TCLASS, which Node cannot).

  traffic.py tcp-server PORT                        listen on all addresses, print "ready", sink data
  traffic.py udp-server PORT                        same for UDP (IPv4 and IPv6)
  traffic.py tcp-client SRC SPORT DST DPORT BYTES [TOS]
  traffic.py udp-client SRC SPORT DST DPORT COUNT [TOS]
  traffic.py tcp-stream SRC SPORT DST DPORT MS [TOS]  1 KiB every 5 ms for MS milliseconds

Clients bind the given source address and port, so a test knows each flow's exact 5-tuple.
TOS is the whole byte (DSCP << 2 | ECN).
"""
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def set_tos(s, fam, tos):
    if tos is None:
        return
    if fam == socket.AF_INET6:
        s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
    else:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)


def tcp_server(port):
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    srv.listen(128)
    print("ready", flush=True)

    def sink(c):
        with c:
            while c.recv(65536):
                pass

    while True:
        c, _ = srv.accept()
        threading.Thread(target=sink, args=(c,), daemon=True).start()


def udp_server(port):
    socks = []
    for fam, host in ((socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")):
        s = socket.socket(fam, socket.SOCK_DGRAM)
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        s.bind((host, port))
        socks.append(s)
    print("ready", flush=True)

    def sink(s):
        while True:
            s.recv(65536)

    for s in socks[1:]:
        threading.Thread(target=sink, args=(s,), daemon=True).start()
    sink(socks[0])


def client(kind, src, sport, dst, dport, amount, tos):
    fam = family(dst)
    s = socket.socket(fam, socket.SOCK_STREAM if kind != "udp" else socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    set_tos(s, fam, tos)
    s.bind((src, sport))
    if kind == "udp":
        for _ in range(amount):
            s.sendto(b"c" * 200, (dst, dport))
            time.sleep(0.002)
    else:
        s.settimeout(10)
        s.connect((dst, dport))
        if kind == "tcp":
            s.sendall(b"a" * amount)
        else:
            end = time.monotonic() + amount / 1000
            chunk = b"b" * 1024
            while time.monotonic() < end:
                s.sendall(chunk)
                time.sleep(0.005)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
    s.close()


def main():
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "tcp-server":
        tcp_server(int(args[0]))
    elif mode == "udp-server":
        udp_server(int(args[0]))
    elif mode in ("tcp-client", "udp-client", "tcp-stream"):
        src, sport, dst, dport, amount = args[0], int(args[1]), args[2], int(args[3]), int(args[4])
        tos = int(args[5]) if len(args) > 5 else None
        client({"tcp-client": "tcp", "udp-client": "udp", "tcp-stream": "stream"}[mode], src, sport, dst, dport, amount, tos)
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
