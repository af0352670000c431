#!/usr/bin/env python3
"""A WAN delay line for the lab, where the kernel has no sch_netem (nor fq/etf, nor nftables'
queue): added delay and jitter on the frames a device sends.

  delay-line.py DEV OBJ    print "ready", then read commands on stdin, one per line:
      DELAY_MS [JITTER_MS]     hold each frame DEV sends for DELAY + uniform(0, JITTER) ms, never
                               releasing one before an earlier one (no reordering); "0" ends
                               the fault (frames already held still wait their time)

How: OBJ (build/bpf/lab_delay.bpf.o) on DEV's tc egress turns every unreleased unicast frame
around into DEV's own ingress, where the stack drops it (it is addressed to the peer) but this
process's packet socket sees it first. After the delay the frame is sent again on DEV with the
release mark, which the program lets through. The program is attached only while a delay is
set, and removed on exit, so the link never black-holes because this process is gone.
"""
import collections
import errno
import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_VNET_HDR = 15
VNET_HDR_LEN = 10  # struct virtio_net_hdr
PACKET_OUTGOING = 4
SO_MARK = 36
RELEASED = 0x5D1A7  # WS_LAB_RELEASED in bpf/lab_delay.bpf.c


def tc(*args):
    subprocess.run(["tc", *args], check=True, capture_output=True)


class DelayLine:
    def __init__(self, dev, obj):
        self.dev, self.obj = dev, obj
        self.attached = False
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_MARK, RELEASED)
        # Frames come with, and go back with, their offload state (a checksum left to the
        # device, a GSO size): sent back as bare bytes, a UDP reply would carry a partial checksum.
        self.sock.setsockopt(SOL_PACKET, PACKET_VNET_HDR, 1)
        self.sock.bind((dev, 0))
        self.mac = self.sock.getsockname()[4]  # (not /sys/class/net: that is the mount's netns)

    def attach(self, on):
        if on == self.attached:
            return
        if on:
            subprocess.run(["tc", "qdisc", "add", "dev", self.dev, "clsact"], capture_output=True)
            tc("filter", "replace", "dev", self.dev, "egress", "pref", "1", "handle", "1", "bpf", "da", "obj", self.obj, "sec", "tc")
        else:
            tc("filter", "del", "dev", self.dev, "egress", "pref", "1")
        self.attached = on

    def release(self, frame):
        try:
            self.sock.send(frame)
        except OSError as err:
            if err.errno not in (errno.ENETDOWN, errno.ENXIO, errno.ENOBUFS):
                raise  # a link that is down loses what it held, as a real one would

    def turned_around(self):
        """Frames of ours the program sent back to our ingress (not real incoming ones)."""
        while True:
            try:
                frame, addr = self.sock.recvfrom(1 << 17, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno == errno.ENETDOWN:  # the device went down (a carrier test): told once
                    continue
                raise
            src = frame[VNET_HDR_LEN + 6 : VNET_HDR_LEN + 12]
            if addr[2] != PACKET_OUTGOING and src == self.mac:
                yield frame


def main():
    line = DelayLine(sys.argv[1], sys.argv[2])
    delay, jitter = 0.0, 0.0
    held = collections.deque()  # (due, frame), due never decreasing
    pending = b""
    print("ready", flush=True)
    try:
        while True:
            timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
            ready, _, _ = select.select([line.sock, 0], [], [], timeout)
            now = time.monotonic()
            if line.sock in ready:
                for frame in line.turned_around():
                    due = now + (delay + random.uniform(0, jitter)) / 1000
                    held.append((max(due, held[-1][0]) if held else due, frame))
            if 0 in ready:
                chunk = os.read(0, 4096)
                if not chunk:
                    break  # our parent is gone
                *lines, pending = (pending + chunk).split(b"\n")
                for cmd in lines:
                    parts = cmd.split()
                    delay = float(parts[0]) if parts else 0.0
                    jitter = float(parts[1]) if len(parts) > 1 else 0.0
                    line.attach(delay > 0 or jitter > 0)
                    print(f"delay {delay} jitter {jitter}", flush=True)
            while held and held[0][0] <= now:
                line.release(held.popleft()[1])
    finally:
        if line.attached:
            line.attach(False)
        for _, frame in held:
            line.release(frame)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
