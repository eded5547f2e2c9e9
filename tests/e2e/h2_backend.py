"""An HTTP/2 (h2c, prior knowledge) test upstream on python3-h2, one thread per connection.

    python3 h2_backend.py PORT_FILE

Writes its port to PORT_FILE when listening. Endpoints:
    /bytes/N          N pattern bytes (byte i = (i * 31 + 7) & 0xff), content-length
    /stream/N         the same bytes without content-length, in 1000-byte DATA frames
    /echo             200 JSON {"method", "path", "authority", "headers", "body_len",
                      "body_sha256"} after reading the whole request body
    /trailers         "ok" then trailers x-checksum: abc, grpc-status: 0
    /reset            RST_STREAM (INTERNAL_ERROR) without answering
    /goaway/N         answers, then GOAWAY with last stream id N... (refuses newer ones)
    /slow/MS          200 after MS milliseconds
Every connection and request is appended to PORT_FILE + ".log" ("conn", "req PATH").
"""

import hashlib
import json
import socket
import sys
import threading
import time

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings


def pattern(n):
    return bytes(((i * 31 + 7) & 0xFF) for i in range(n))


class Conn:
    def __init__(self, sock, log):
        self.sock = sock
        self.log = log
        self.lock = threading.Lock()
        cfg = h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        self.h2 = h2.connection.H2Connection(config=cfg)
        self.requests = {}
        self.bodies = {}
        self.pending = {}

    def send(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def run(self):
        self.h2.initiate_connection()
        self.h2.update_settings({h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 50})
        self.send()
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            with self.lock:
                for ev in self.h2.receive_data(data):
                    self.on_event(ev)
                self.pump()

    def on_event(self, ev):
        if isinstance(ev, h2.events.RequestReceived):
            self.requests[ev.stream_id] = dict(ev.headers)
            self.bodies[ev.stream_id] = bytearray()
            self.log("req %s" % self.requests[ev.stream_id].get(":path"))
            # Answered on StreamEnded (h2 reports it separately, also for HEADERS).
        elif isinstance(ev, h2.events.DataReceived):
            self.bodies[ev.stream_id].extend(ev.data)
            self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, h2.events.StreamEnded):
            self.answer(ev.stream_id)
        elif isinstance(ev, h2.events.StreamReset):
            self.log("reset %d" % ev.stream_id)

    def respond(self, sid, status, body, headers=(), length=True):
        hdrs = [(":status", str(status))] + list(headers)
        if length:
            hdrs.append(("content-length", str(len(body))))
        self.h2.send_headers(sid, hdrs, end_stream=not body)
        if body:
            self.send_body(sid, body)

    def send_body(self, sid, body, frame=16384, end=True):
        # Sent as the flow-control windows allow: pump() runs after every batch of events
        # (WINDOW_UPDATEs included).
        self.pending[sid] = [body, 0, frame, end]
        self.pump()

    def pump(self):
        for sid in list(self.pending):
            body, off, frame, end = self.pending[sid]
            try:
                while off < len(body):
                    window = min(self.h2.local_flow_control_window(sid),
                                 self.h2.max_outbound_frame_size)
                    if window <= 0:
                        break
                    n = min(window, frame, len(body) - off)
                    self.h2.send_data(sid, body[off:off + n])
                    off += n
                if off == len(body):
                    del self.pending[sid]
                    if end:
                        self.h2.end_stream(sid)
                else:
                    self.pending[sid][1] = off
            except Exception:  # reset meanwhile
                self.pending.pop(sid, None)
        self.send()

    def answer(self, sid):
        req = self.requests[sid]
        path = req.get(":path", "")
        if path.startswith("/bytes/"):
            self.respond(sid, 200, pattern(int(path[7:])))
        elif path.startswith("/stream/"):
            self.h2.send_headers(sid, [(":status", "200")])
            self.send_body(sid, pattern(int(path[8:])), frame=1000)
        elif path == "/echo":
            body = bytes(self.bodies[sid])
            echo = {"method": req.get(":method"), "path": path,
                    "authority": req.get(":authority"),
                    "headers": [[k, v] for k, v in req.items() if not k.startswith(":")],
                    "body_len": len(body), "body_sha256": hashlib.sha256(body).hexdigest()}
            self.respond(sid, 200, json.dumps(echo).encode(),
                         [("content-type", "application/json")])
        elif path == "/trailers":
            self.h2.send_headers(sid, [(":status", "200")])
            self.h2.send_data(sid, b"ok")
            self.h2.send_headers(sid, [("x-checksum", "abc"), ("grpc-status", "0")],
                                 end_stream=True)
            self.send()
        elif path == "/reset":
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.INTERNAL_ERROR)
        elif path.startswith("/goaway/"):
            self.respond(sid, 200, b"bye")
            self.h2.close_connection(last_stream_id=int(path[8:]))
        elif path.startswith("/slow/"):
            ms = int(path[6:])

            def later():
                time.sleep(ms / 1000.0)
                with self.lock:
                    try:
                        self.respond(sid, 200, b"slow")
                        self.pump()
                    except Exception:  # the stream was reset meanwhile
                        pass
            threading.Thread(target=later, daemon=True).start()
        else:
            self.respond(sid, 200, b"hello from h2\n")


def main():
    port_file = sys.argv[1]
    log_lock = threading.Lock()

    def log(line):
        with log_lock, open(port_file + ".log", "a") as f:
            f.write(line + "\n")

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(128)
    with open(port_file + ".tmp", "w") as f:
        f.write(str(srv.getsockname()[1]))
    import os
    os.rename(port_file + ".tmp", port_file)
    while True:
        sock, _ = srv.accept()
        log("conn")
        threading.Thread(target=Conn(sock, log).run, daemon=True).start()


if __name__ == "__main__":
    main()
