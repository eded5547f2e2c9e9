"""A small authoritative DNS server for e2e tests (UDP, A/AAAA only), and a command prefix
that runs zproxyd in its own mount namespace with /etc/resolv.conf pointing at it: the data
plane's getaddrinfo then really talks DNS, to a server whose answers, delays and query counts
the test controls. Names not in the table get NXDOMAIN."""

import os
import random
import socket
import struct
import tempfile
import threading
import time


class FakeDns:
    def __init__(self):
        # A random loopback address: resolv.conf takes no port, so the server is on :53.
        self.ip = "127.77.%d.%d" % (random.randint(1, 254), random.randint(1, 254))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.ip, 53))
        self.records = {}  # name -> {"A": [ip], "AAAA": [ip6], "delay": seconds}
        self.queries = {}  # (name, "A"|"AAAA") -> count
        self.lock = threading.Lock()
        fd, self.resolv_conf = tempfile.mkstemp(prefix="zp-resolv-")
        with os.fdopen(fd, "w") as f:
            # One try, short timeout: a test never waits on retransmissions.
            f.write("nameserver %s\noptions timeout:5 attempts:1\n" % self.ip)
        os.chmod(self.resolv_conf, 0o644)
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def add(self, name, a=(), aaaa=(), delay=0.0, ttl=60):
        """Sets (or replaces) a name's records; `ttl` is what every answer record carries."""
        self.records[name.lower()] = {"A": list(a), "AAAA": list(aaaa), "delay": delay, "ttl": ttl}

    def remove(self, name):
        """The name is gone: NXDOMAIN from now on."""
        self.records.pop(name.lower(), None)

    # While True, queries are read and counted but never answered (a dead server).
    silent = False

    def count(self, name, qtype="A"):
        with self.lock:
            return self.queries.get((name.lower(), qtype), 0)

    def wrapper(self):
        """Command prefix for Zproxy(wrapper=...): zproxyd (and its data plane) see this
        server's resolv.conf; nothing else on the machine does."""
        return ["unshare", "-m", "sh", "-c",
                'mount --bind "$0" /etc/resolv.conf && exec "$@"', self.resolv_conf]

    def close(self):
        self._stop = True
        self.sock.close()
        os.unlink(self.resolv_conf)

    def _serve(self):
        while not self._stop:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            threading.Thread(target=self._answer, args=(data, peer), daemon=True).start()

    def _answer(self, data, peer):
        try:
            qid, _flags, qd = struct.unpack("!HHH", data[:6])
            pos, labels = 12, []
            while data[pos]:
                n = data[pos]
                labels.append(data[pos + 1:pos + 1 + n].decode("ascii"))
                pos += 1 + n
            qtype, _qclass = struct.unpack("!HH", data[pos + 1:pos + 5])
            question = data[12:pos + 5]
        except (IndexError, struct.error, UnicodeDecodeError):
            return
        name = ".".join(labels).lower()
        kind = {1: "A", 28: "AAAA"}.get(qtype)
        with self.lock:
            self.queries[(name, kind)] = self.queries.get((name, kind), 0) + 1
        if self.silent:
            return
        rec = self.records.get(name)
        if rec and rec["delay"]:
            time.sleep(rec["delay"])
        answers = b""
        count = 0
        rcode = 3  # NXDOMAIN
        if rec is not None:
            rcode = 0
            for addr in rec.get(kind, []) if kind else []:
                rdata = socket.inet_pton(socket.AF_INET if kind == "A" else socket.AF_INET6, addr)
                answers += struct.pack("!HHHIH", 0xC00C, qtype, 1, rec.get("ttl", 60),
                                       len(rdata)) + rdata
                count += 1
        head = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, count, 0, 0)
        try:
            self.sock.sendto(head + question + answers, peer)
        except OSError:
            pass
