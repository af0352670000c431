#!/usr/bin/env python3
"""TCP sessions as users have them, for the internet-link lab, tests, benchmarks and demo: an
upload and a download per connection, the address the far end saw, and a client that reconnects
when its connection breaks (python3: starts fast under nsenter, and can set IP_TOS/IPV6_TCLASS).

  sessions.py server PORT
      listen on every address (IPv4 and IPv6); print "ready". Per connection: read the request
      line "<up> <down>\\n", answer "<peer address>\\n", read <up> bytes, send <down> bytes.
      A request of "0 0" is a keep-alive ping, answered with the peer line alone; a connection
      carries requests until the client closes it.

  sessions.py exchange DST PORT UP DOWN [TOS] [SRC] [SPORT]
      one connection, one request; print JSON {"seen": the peer address the server saw,
      "up": bytes sent, "down": bytes received}. Exit 1 with {"error": ...} on failure.
      SPORT (here and in loop): the client's source port, so a test knows the 5-tuple.

  sessions.py loop DST PORT MS UP DOWN [TOS] [SRC] [CONN_MS] [SPORT]
      for MS milliseconds: a request every 20 ms, each sending UP bytes and reading DOWN bytes,
      on one connection (a new one every CONN_MS milliseconds when given, as web clients do);
      when a connection fails (a reset, 1 s without an answer), reconnect at once. One JSON line
      per event, times in CLOCK_MONOTONIC ns (shared by every network namespace of the host):
      {"event": "first-byte", "t": ..., "seen": ...} (the first answer on each connection, with
      the address the server saw), {"event": "error", "t": ..., "error": ...}, and at the end
      {"event": "done", "requests": n, "up": bytes, "down": bytes}.

TOS is the whole byte (DSCP << 2 | ECN).
"""
import json
import socket
import sys
import threading
import time


def family(addr):
    return socket.AF_INET6 if ":" in addr else socket.AF_INET


def connect(dst, port, tos, src, timeout, sport=0):
    fam = family(dst)
    s = socket.socket(fam, socket.SOCK_STREAM)
    if sport:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if tos:
        if fam == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_TCLASS, tos)
        else:
            s.setsockopt(socket.IPPROTO_IP, socket.IP_TOS, tos)
    if src or sport:
        s.bind((src or "", sport))
    s.settimeout(timeout)
    s.connect((dst, port))
    return s


def read_line(s):
    line = b""
    while not line.endswith(b"\n"):
        chunk = s.recv(1)
        if not chunk:
            raise ConnectionError("closed by the server")
        line += chunk
    return line.decode().strip()


def read_exactly(s, n):
    got = 0
    while got < n:
        chunk = s.recv(min(65536, n - got))
        if not chunk:
            raise ConnectionError("closed by the server")
        got += len(chunk)
    return got


def server(port):
    srv = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    srv.bind(("::", port))
    srv.listen(256)
    print("ready", flush=True)
    payload = b"d" * 65536

    def serve(c, peer):
        peer = peer[0][7:] if peer[0].startswith("::ffff:") else peer[0]
        try:
            with c:
                while True:
                    up, down = (int(x) for x in read_line(c).split())
                    c.sendall((peer + "\n").encode())
                    read_exactly(c, up)
                    while down > 0:
                        n = min(down, len(payload))
                        c.sendall(payload[:n])
                        down -= n
        except (ConnectionError, OSError, ValueError):
            pass

    while True:
        c, peer = srv.accept()
        threading.Thread(target=serve, args=(c, peer), daemon=True).start()


def exchange(dst, port, up, down, tos, src, sport=0):
    try:
        s = connect(dst, port, tos, src, 10, sport)
        s.sendall(f"{up} {down}\n".encode())
        seen = read_line(s)
        s.sendall(b"u" * up)
        got = read_exactly(s, down)
        s.close()
        print(json.dumps({"seen": seen, "up": up, "down": got}), flush=True)
    except OSError as e:
        print(json.dumps({"error": str(e)}), flush=True)
        sys.exit(1)


def loop(dst, port, ms, up, down, tos, src, conn_ms, sport=0):
    end = time.monotonic() + ms / 1000
    requests = 0
    total = 0
    sent = 0
    upload = b"u" * up
    emit = lambda **e: print(json.dumps(e), flush=True)
    while time.monotonic() < end:
        try:
            s = connect(dst, port, tos, src, 1, sport)
        except OSError as e:
            emit(event="error", t=time.monotonic_ns(), error=f"connect: {e}")
            time.sleep(0.01)
            continue
        first = True
        renew = time.monotonic() + conn_ms / 1000 if conn_ms else end
        try:
            while time.monotonic() < min(end, renew):
                s.sendall(f"{up} {down}\n".encode())
                seen = read_line(s)
                if first:
                    emit(event="first-byte", t=time.monotonic_ns(), seen=seen)
                    first = False
                s.sendall(upload)
                sent += up
                total += read_exactly(s, down)
                requests += 1
                time.sleep(0.02)
        except OSError as e:
            emit(event="error", t=time.monotonic_ns(), error=str(e) or type(e).__name__)
        finally:
            s.close()
    emit(event="done", requests=requests, up=sent, down=total)


def main():
    mode, a = sys.argv[1], sys.argv[2:]
    opt = lambda i, conv, default: conv(a[i]) if len(a) > i and a[i] != "" else default
    if mode == "server":
        server(int(a[0]))
    elif mode == "exchange":
        exchange(a[0], int(a[1]), int(a[2]), int(a[3]), opt(4, int, 0), opt(5, str, None), opt(6, int, 0))
    elif mode == "loop":
        loop(a[0], int(a[1]), int(a[2]), int(a[3]), int(a[4]), opt(5, int, 0), opt(6, str, None), opt(7, int, 0), opt(8, int, 0))
    else:
        sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
