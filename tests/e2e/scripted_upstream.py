"""A small threaded HTTP/1.1 upstream whose behaviour a test scripts per request, for what
zproxy-test-backend cannot do: close a keep-alive connection when the next request arrives
(a pooled connection the upstream had closed), listen with TCP Fast Open and report, per
accepted connection, whether the SYN carried data (tcp_info), and so on.

    up = ScriptedUpstream(answer)        # answer(conn, index, method, target, body) -> bytes|None
    ...
    up.conns                             # [Accepted], in accept order
    up.close()

`answer` returns the raw response to send, or None to close the connection without answering
(after reading the whole request, so the close is a FIN, not a reset). A response with
`Connection: close` closes the connection after it is sent.

`answer` may also return a `Script`: steps run in order, bytes are sent, a number is a pause
(seconds), CLOSE ends the connection with a FIN, RESET with a TCP reset; a script that ends
without either keeps the connection open for the next request. The steps may be a generator
(an endless drip or flood): it stops when the proxy closes the connection.

`early(conn, index, method, target, content_length)`, if given, runs when a request head has
arrived, before its body is read: bytes (or a Script) it returns are sent at once (an early
response); with `drain_early=False` the body is then not read at all.
"""

import socket
import struct
import threading

TCPI_OPT_SYN_DATA = 32  # tcp_info.tcpi_options: data in the SYN was acked (TCP Fast Open)


class Accepted:
    def __init__(self, index, peer, tcpi_options):
        self.index = index
        self.peer = peer
        self.tcpi_options = tcpi_options  # read right after accept
        self.requests = []  # [(method, target)] in arrival order
        self.closed_by_peer = threading.Event()  # the client side (zproxy) closed it
        self.early_hold = threading.Event()  # set by close(): ends a held early connection

    @property
    def syn_data(self):
        return bool(self.tcpi_options & TCPI_OPT_SYN_DATA)


CLOSE = "close"
RESET = "reset"


class Script:
    def __init__(self, *steps):
        # One generator/iterable argument, or the steps themselves.
        self.steps = steps[0] if len(steps) == 1 and not isinstance(
            steps[0], (bytes, int, float, str)) else steps


def response(status=200, body=b"ok\n", close=False, headers=()):
    h = ["HTTP/1.1 %d X" % status, "Content-Length: %d" % len(body)]
    h += ["%s: %s" % kv for kv in headers]
    if close:
        h.append("Connection: close")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


class ScriptedUpstream:
    def __init__(self, answer, host="127.0.0.1", tfo_queue=0, early=None, drain_early=True):
        self.answer = answer
        self.early = early
        self.drain_early = drain_early
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if tfo_queue:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_FASTOPEN, tfo_queue)
        self.sock.bind((host, 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.addr = ("[%s]:%d" if family == socket.AF_INET6 else "%s:%d") % (host, self.port)
        self.conns = []
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    def _accept_loop(self):
        while not self.stopped:
            try:
                s, peer = self.sock.accept()
            except OSError:
                return
            info = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
            with self.lock:
                rec = Accepted(len(self.conns), peer, struct.unpack_from("B", info, 5)[0])
                self.conns.append(rec)
            threading.Thread(target=self._serve, args=(s, rec), daemon=True).start()

    def _serve(self, s, rec):
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = s.recv(65536)
                    if not data:
                        rec.closed_by_peer.set()
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                if self.early is not None:
                    out = self.early(rec, len(rec.requests), method, target, length)
                    if out is not None:
                        with self.lock:
                            rec.requests.append((method, target))
                        if isinstance(out, Script):
                            if not self._run(s, rec, out):
                                return
                        else:
                            s.sendall(out)
                        if not self.drain_early:
                            # Hold the connection, reading nothing more, until the proxy
                            # closes it (or the test ends).
                            import select
                            p = select.poll()
                            p.register(s, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
                            deadline = 30
                            while deadline > 0 and not rec.early_hold.is_set():
                                if p.poll(100):
                                    rec.closed_by_peer.set()
                                    break
                                deadline -= 0.1
                            return
                        while length > 0:  # read and drop the body
                            take = min(length, len(buf))
                            buf, length = buf[take:], length - take
                            if length and not buf:
                                buf = s.recv(65536)
                                if not buf:
                                    rec.closed_by_peer.set()
                                    return
                        continue
                while len(buf) < length:
                    data = s.recv(65536)
                    if not data:
                        rec.closed_by_peer.set()
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                with self.lock:
                    index = len(rec.requests)
                    rec.requests.append((method, target))
                out = self.answer(rec, index, method, target, body)
                if out is None:
                    return  # close without answering (finally)
                if isinstance(out, Script):
                    if not self._run(s, rec, out):
                        return
                    continue
                s.sendall(out)
                if b"\r\nConnection: close\r\n" in out.split(b"\r\n\r\n", 1)[0] + b"\r\n":
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):  # until the proxy closes its side
                        pass
                    rec.closed_by_peer.set()
                    return
        except OSError:
            rec.closed_by_peer.set()  # EPIPE / ECONNRESET: the proxy closed it
        finally:
            s.close()

    def _run(self, s, rec, script):
        """Runs a Script's steps on s; False once the connection is closed (by a step)."""
        import time
        for step in script.steps:
            if isinstance(step, bytes):
                s.sendall(step)
            elif step == CLOSE:
                s.shutdown(socket.SHUT_WR)
                s.settimeout(10)
                try:
                    while s.recv(65536):  # until the proxy closes its side
                        pass
                except OSError:
                    pass
                rec.closed_by_peer.set()
                return False
            elif step == RESET:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return False  # the caller's finally closes: an RST
            else:
                time.sleep(step)
        return True

    def requests(self):
        """[(conn index, method, target)] of every request, by connection then order."""
        with self.lock:
            return [(c.index, m, t) for c in self.conns for m, t in c.requests]

    def close(self):
        self.stopped = True
        with self.lock:
            for c in self.conns:
                c.early_hold.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)
