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

    @property
    def syn_data(self):
        return bool(self.tcpi_options & TCPI_OPT_SYN_DATA)


def response(status=200, body=b"ok\n", close=False, headers=()):
    h = ["HTTP/1.1 %d X" % status, "Content-Length: %d" % len(body)]
    h += ["%s: %s" % kv for kv in headers]
    if close:
        h.append("Connection: close")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


class ScriptedUpstream:
    def __init__(self, answer, host="127.0.0.1", tfo_queue=0):
        self.answer = answer
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
                s.sendall(out)
                if b"\r\nConnection: close\r\n" in out.split(b"\r\n\r\n", 1)[0] + b"\r\n":
                    s.shutdown(socket.SHUT_WR)
                    while s.recv(65536):  # until the proxy closes its side
                        pass
                    rec.closed_by_peer.set()
                    return
        except OSError:
            pass
        finally:
            s.close()

    def requests(self):
        """[(conn index, method, target)] of every request, by connection then order."""
        with self.lock:
            return [(c.index, m, t) for c in self.conns for m, t in c.requests]

    def close(self):
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(2)
