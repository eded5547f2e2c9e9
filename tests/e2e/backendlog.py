"""Reads a zproxy-test-backend --log file: "conn <peer>" and "req METHOD TARGET" lines."""

import time
import uuid


class BackendLog:
    def __init__(self, path):
        self.path = path

    def _lines(self):
        try:
            with open(self.path, "rb") as f:
                return f.read().decode("latin-1").splitlines()
        except FileNotFoundError:
            return []

    def mark(self):
        """A position; lines_since(mark) returns what was logged after it."""
        return len(self._lines())

    def lines_since(self, mark):
        return self._lines()[mark:]

    def reqs_since(self, mark):
        """[(method, target)] of request heads the backend parsed since mark."""
        out = []
        for line in self.lines_since(mark):
            if line.startswith("req "):
                parts = line.split(" ", 2)
                out.append((parts[1], parts[2] if len(parts) > 2 else ""))
        return out

    def conns_since(self, mark):
        return [l[5:] for l in self.lines_since(mark) if l.startswith("conn ")]

    def wait_for_req(self, mark, target, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(t == target for _, t in self.reqs_since(mark)):
                return True
            time.sleep(0.02)
        return False


def canary_target():
    return "/canary-" + uuid.uuid4().hex[:12]
