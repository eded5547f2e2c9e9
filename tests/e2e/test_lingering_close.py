"""A rejected request whose client is still sending must still get its error response.

Closing a socket with unread input makes the kernel answer with RST, which can destroy
the response before the client reads it. zproxy shuts down its side, drains what the
client still sends, and only then closes (nginx calls this lingering close)."""

import socket
import threading

import httpraw


def _send_and_read(port, head, body_len):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    payload = head + b"x" * body_len

    def sender():
        try:
            s.sendall(payload)
        except OSError:
            pass  # the proxy may close once it has drained enough: expected

    t = threading.Thread(target=sender)
    t.start()
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except ConnectionResetError:
        data += b"<RST>"
    t.join(10)
    s.close()
    return data


def test_error_response_survives_client_still_sending(stack):
    # A smuggling-shaped head (CL+TE) followed by 4 MB of body the proxy will never read.
    head = (b"POST /echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 4000000\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    for _ in range(3):
        data = _send_and_read(stack.port, head, 4_000_000)
        assert data.startswith(b"HTTP/1.1 400 "), data[:200]
        assert b"<RST>" not in data, data[-200:]
        assert b"content_length_with_transfer_encoding" in data


def test_413_survives_client_still_sending(make_proxy, backends):
    from conftest import catch_all, cluster, listener
    from procs import base_config
    cfg = base_config([listener("web", catch_all("app"), max_body_bytes=1000)],
                      [cluster("app", backends["a"].addr)])
    z = make_proxy(cfg)
    head = b"POST /echo HTTP/1.1\r\nHost: test.local\r\nContent-Length: 3000000\r\n\r\n"
    data = _send_and_read(z.port, head, 3_000_000)
    assert data.startswith(b"HTTP/1.1 413 "), data[:200]
    assert b"<RST>" not in data, data[-200:]
