"""Certificates for the TLS tests, made with the openssl CLI: a CA and leaf certificates
(ECDSA P-256 and RSA), a wildcard, an expired and a self-signed one."""

import os
import subprocess


def _openssl(*args, cwd=None):
    r = subprocess.run(["openssl"] + list(args), capture_output=True, text=True, cwd=cwd,
                       timeout=60)
    assert r.returncode == 0, (args, r.stderr)
    return r


class Certs:
    """A CA and leaf certificates made with the openssl CLI."""

    def __init__(self, d):
        self.dir = d
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                 "-keyout", self.path("ca.key"), "-out", self.path("ca.pem"), "-days", "30",
                 "-subj", "/CN=zproxy test CA")
        self.ecdsa = self.leaf("ecdsa", ["example.com", "www.example.com"], "ec")
        self.rsa = self.leaf("rsa", ["example.com", "www.example.com"], "rsa")
        self.wild = self.leaf("wild", ["*.wild.test"], "ec")
        self.other = self.leaf("other", ["other.test"], "ec")
        self.upstream = self.leaf("upstream", ["upstream.test"], "ec")
        self.expired = self.leaf("expired", ["upstream.test"], "ec", days="-1")
        self.client = self.leaf("client", ["client.test"], "ec")
        self.selfsigned = self.self_signed("selfsigned", "upstream.test")

    def path(self, name):
        return os.path.join(self.dir, name)

    def self_signed(self, name, cn):
        key, pem = self.path(name + ".key"), self.path(name + ".pem")
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-nodes", "-keyout", key, "-out", pem, "-days", "30", "-subj", "/CN=" + cn,
                 "-addext", "subjectAltName=DNS:" + cn)
        return {"cert": pem, "key": key}

    def leaf(self, name, names, kind, days="30"):
        key, csr, pem = self.path(name + ".key"), self.path(name + ".csr"), self.path(name + ".pem")
        if kind == "ec":
            newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
        else:
            newkey = ["-newkey", "rsa:2048"]
        _openssl("req", "-new", *newkey, "-nodes", "-keyout", key, "-out", csr,
                 "-subj", "/CN=" + names[0])
        ext = self.path(name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=" + ",".join("DNS:" + n for n in names) + "\n")
        _openssl("x509", "-req", "-in", csr, "-CA", self.path("ca.pem"), "-CAkey",
                 self.path("ca.key"), "-CAcreateserial", "-out", pem, "-extfile", ext,
                 "-days", days)  # -1: expired yesterday
        return {"cert": pem, "key": key}
