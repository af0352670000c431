#!/usr/bin/env python3
"""Failover timing for the link tests and bench: which link each packet of a flow arrives by, when.

  udp-arrivals.py sink PORT                           print "ready", then one line per change of
                                                      ingress interface of a flow (by source port),
                                                      with when the flow's packet before it arrived:
                                                      "<CLOCK_MONOTONIC ns> <sport> <ifname> <ns before>"
  udp-arrivals.py send SRC SPORT DST DPORT SECONDS    one 100-byte packet every millisecond

CLOCK_MONOTONIC is shared by every network namespace of the host, so the test compares these
times with its own (process.hrtime) directly.
"""
import socket
import sys
import time

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)


def sink(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
    s.bind(("0.0.0.0", port))
    print("ready", flush=True)
    last = {}
    seen = {}
    names = {}
    while True:
        _, anc, _, addr = s.recvmsg(2048, 256)
        now = time.monotonic_ns()
        ifindex = 0
        for level, kind, data in anc:
            if level == socket.IPPROTO_IP and kind == IP_PKTINFO:
                ifindex = int.from_bytes(data[0:4], sys.byteorder)
        if ifindex not in names:
            try:
                names[ifindex] = socket.if_indextoname(ifindex)
            except OSError:
                names[ifindex] = str(ifindex)
        name = names[ifindex]
        sport = addr[1]
        if last.get(sport) != name:
            last[sport] = name
            print(f"{now} {sport} {name} {seen.get(sport, 0)}", flush=True)
        seen[sport] = now


def send(src, sport, dst, dport, seconds):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((src, sport))
    payload = b"f" * 100
    end = time.monotonic() + seconds
    nxt = time.monotonic()
    while time.monotonic() < end:
        try:
            s.sendto(payload, (dst, dport))
        except OSError:
            pass  # no route for a moment: keep the pace
        nxt += 0.001
        delay = nxt - time.monotonic()
        if delay > 0:
            time.sleep(delay)


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "sink":
        sink(int(sys.argv[2]))
    elif cmd == "send":
        send(sys.argv[2], int(sys.argv[3]), sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
    else:
        sys.exit(f"unknown command {cmd}")
