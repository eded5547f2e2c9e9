"""The canary: what this machine's kernel offers, probed once per pytest run, directly
(syscalls through ctypes), never by asking zproxy. Tests compare it with what zproxy reports:
where the machine has a feature, zproxy falling back from it is a failure (`fallback`); only
where the machine lacks it is the test skipped, naming what is missing (DESIGN.md, Testing).

Features (`get()[name]` is (present, detail)):
  io_uring          io_uring_setup works (not disabled by sysctl or seccomp)
  io_uring_splice   IORING_OP_SPLICE and IORING_OP_POLL_ADD (splice pass-through, tunnels)
  send_zc           IORING_OP_SEND_ZC
  fd_install        IORING_OP_FIXED_FD_INSTALL (direct descriptor -> fd: tunnels leave copy)
  bpf               root-equivalent bpf(): a SOCKHASH map plus an sk_skb stream verdict
                    program attached to it (what zproxy's sockmap splicing loads)
  bpffs             /sys/fs/bpf is a writable bpf filesystem (pinned maps, health map)
  sockmap           bpf and bpffs: zproxyd can create, pin and hand over the SOCKHASH
  pidfd_getfd       pidfd_open + pidfd_getfd on this process (zproxyd's adoption hand-over)
  ktls              setsockopt(TCP_ULP, "tls") on a connected loopback TCP socket
"""

import ctypes
import errno
import os
import socket
import struct

import pytest

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

# x86_64 syscall numbers (the only architecture zproxy builds for).
SYS_BPF, SYS_IO_URING_SETUP, SYS_IO_URING_REGISTER = 321, 425, 427
SYS_PIDFD_OPEN, SYS_PIDFD_GETFD = 434, 438

IORING_REGISTER_PROBE = 8
IORING_OP_POLL_ADD, IORING_OP_SPLICE, IORING_OP_SEND_ZC, IORING_OP_FIXED_FD_INSTALL = 6, 30, 47, 54
IO_URING_OP_SUPPORTED = 1

BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_PROG_ATTACH = 0, 5, 8
BPF_MAP_TYPE_SOCKHASH, BPF_PROG_TYPE_SK_SKB, BPF_SK_SKB_STREAM_VERDICT = 18, 14, 5
BPF_FS_MAGIC = 0xCAFE4A11


def _sys(*args):
    r = _libc.syscall(*[ctypes.c_long(a) if isinstance(a, int) else a for a in args])
    return r, ctypes.get_errno()


def _err(e):
    return "%s (%s)" % (errno.errorcode.get(e, e), os.strerror(e))


def _io_uring_ops():
    """(set of supported opcodes, None) or (None, why)."""
    params = ctypes.create_string_buffer(120)  # struct io_uring_params, flags 0
    fd, e = _sys(SYS_IO_URING_SETUP, 4, params)
    if fd < 0:
        return None, "io_uring_setup: " + _err(e)
    try:
        probe = ctypes.create_string_buffer(16 + 256 * 8)  # io_uring_probe + 256 ops
        r, e = _sys(SYS_IO_URING_REGISTER, fd, IORING_REGISTER_PROBE, probe, 256)
        if r < 0:
            return None, "IORING_REGISTER_PROBE: " + _err(e)
        ops_len = probe.raw[1]
        ops = set()
        for i in range(ops_len):
            op, _, flags, _ = struct.unpack_from("BBHI", probe.raw, 16 + 8 * i)
            if flags & IO_URING_OP_SUPPORTED:
                ops.add(op)
        return ops, None
    finally:
        os.close(fd)


def _bpf(cmd, attr):
    buf = ctypes.create_string_buffer(attr, 128)
    return _sys(SYS_BPF, cmd, buf, 128)


def _probe_bpf():
    """(True, detail) when a SOCKHASH map and an sk_skb verdict program attached to it work."""
    mfd, e = _bpf(BPF_MAP_CREATE, struct.pack("IIII", BPF_MAP_TYPE_SOCKHASH, 8, 8, 16))
    if mfd < 0:
        return False, "BPF_MAP_CREATE(SOCKHASH): " + _err(e)
    fds = [mfd]
    try:
        # r0 = 1 (SK_PASS); exit
        insns = ctypes.create_string_buffer(bytes.fromhex("b700000001000000" "9500000000000000"))
        lic = ctypes.create_string_buffer(b"GPL")
        pfd, e = _bpf(BPF_PROG_LOAD, struct.pack(
            "IIQQ", BPF_PROG_TYPE_SK_SKB, 2, ctypes.addressof(insns), ctypes.addressof(lic)))
        if pfd < 0:
            return False, "BPF_PROG_LOAD(SK_SKB): " + _err(e)
        fds.append(pfd)
        # union bpf_attr for BPF_PROG_ATTACH: target_fd, attach_bpf_fd, attach_type
        r, e = _bpf(BPF_PROG_ATTACH, struct.pack("III", mfd, pfd, BPF_SK_SKB_STREAM_VERDICT))
        if r < 0:
            return False, "BPF_PROG_ATTACH(SK_SKB_STREAM_VERDICT): " + _err(e)
        return True, "SOCKHASH + sk_skb stream verdict attach"
    finally:
        for fd in fds:
            os.close(fd)


def _probe_bpffs():
    class Statfs(ctypes.Structure):
        _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]
    st = Statfs()
    if _libc.statfs(b"/sys/fs/bpf", ctypes.byref(st)) != 0:
        return False, "statfs /sys/fs/bpf: " + _err(ctypes.get_errno())
    if st.f_type & 0xFFFFFFFF != BPF_FS_MAGIC:
        return False, "/sys/fs/bpf is not a bpf filesystem"
    if not os.access("/sys/fs/bpf", os.W_OK):
        return False, "/sys/fs/bpf is not writable"
    return True, "/sys/fs/bpf"


def _probe_pidfd_getfd():
    pidfd, e = _sys(SYS_PIDFD_OPEN, os.getpid(), 0)
    if pidfd < 0:
        return False, "pidfd_open: " + _err(e)
    try:
        r, w = os.pipe()
        try:
            fd, e = _sys(SYS_PIDFD_GETFD, pidfd, r, 0)
            if fd < 0:
                return False, "pidfd_getfd: " + _err(e)
            os.close(fd)
            return True, "pidfd_getfd"
        finally:
            os.close(r)
            os.close(w)
    finally:
        os.close(pidfd)


def _probe_ktls():
    TCP_ULP = 31
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(1)
        with socket.create_connection(srv.getsockname()) as c:
            peer, _ = srv.accept()
            peer.close()
            try:
                c.setsockopt(socket.IPPROTO_TCP, TCP_ULP, b"tls")
                return True, "TCP_ULP tls"
            except OSError as e:
                return False, "setsockopt(TCP_ULP, tls): " + _err(e.errno)


def probe():
    """Runs every probe; {feature: (present, detail)}."""
    f = {}
    ops, why = _io_uring_ops()
    f["io_uring"] = (ops is not None, why or "io_uring_setup")

    def op(*want):
        if ops is None:
            return False, why
        missing = [o for o in want if o not in ops]
        return (not missing, "opcodes %s %s" % (list(want), "missing %s" % missing if missing
                                                else "supported"))
    f["io_uring_splice"] = op(IORING_OP_SPLICE, IORING_OP_POLL_ADD)
    f["send_zc"] = op(IORING_OP_SEND_ZC)
    f["fd_install"] = op(IORING_OP_FIXED_FD_INSTALL)
    f["bpf"] = _probe_bpf()
    f["bpffs"] = _probe_bpffs()
    f["sockmap"] = (f["bpf"][0] and f["bpffs"][0],
                    "; ".join(d for _, d in (f["bpf"], f["bpffs"])))
    f["pidfd_getfd"] = _probe_pidfd_getfd()
    f["ktls"] = _probe_ktls()
    return f


_features = None


def get():
    """The probe results, computed once per pytest process (the session fixture `machine`
    in conftest.py runs it first and prints it)."""
    global _features
    if _features is None:
        _features = probe()
    return _features


def has(feature):
    return get()[feature][0]


def _missing(features):
    return ["%s (%s)" % (f, get()[f][1]) for f in features if not get()[f][0]]


def skip_unless(*features):
    """Skips, naming each missing feature and why the canary found it missing."""
    missing = _missing(features)
    if missing:
        pytest.skip("machine lacks " + ", ".join(missing))


def fallback(features, what):
    """zproxy fell back (`what` says from what to what) from a path that needs `features`
    (a name or a tuple): a failure where the canary found all of them on this machine, a
    skip naming the missing ones where it did not."""
    features = (features,) if isinstance(features, str) else tuple(features)
    missing = _missing(features)
    if not missing:
        pytest.fail("zproxy fell back (%s) although this machine has %s (canary: %s)"
                    % (what, ", ".join(features), "; ".join(get()[f][1] for f in features)),
                    pytrace=False)
    pytest.skip("machine lacks %s: %s" % (", ".join(missing), what))


def summary():
    return ", ".join("%s=%s" % (k, "yes" if v[0] else "no (%s)" % v[1])
                     for k, v in get().items())
