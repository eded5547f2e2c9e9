#!/bin/sh
# Runs in the ktls-vm guest (busybox sh, cwd /guest, binaries copied there by
# tools/ktls-vm-test). One VM boot covers:
#   1. ktls_loopback_test: the dataplane/ktls unit of work on a kernel with kTLS;
#   2. the proxy end to end: zproxyd + zproxy-dataplane with a TLS listener in front of
#      zproxy-test-backend, driven by ktls_proxy_client, which requires the workers to have
#      handed every TLS connection to the kernel (zproxy_tls_offload_total{outcome="installed"}).
# Exit 0 only if both pass. Arguments go to ktls_loopback_test.
set -u
cd /guest
./ktls_loopback_test "$@"
unit=$?
echo "ktls-vm: ktls_loopback_test exit $unit"

mkdir -p /tmp/zp
./zproxy-test-backend --listen 127.0.0.1:18080 --name vm >/tmp/zp/backend.out 2>&1 &
backend=$!
cat >/tmp/zp/zproxy.yaml <<CFG
listeners:
  - name: https
    address: 127.0.0.1:18443
    routes:
      - match: { prefix: / }
        cluster: app
    tls:
      certificates:
        - { cert: /guest/ktls-cert.pem, key: /guest/ktls-key.pem }
clusters:
  - name: app
    endpoints: [ 127.0.0.1:18080 ]
workers: 1
metrics_address: 127.0.0.1:19901
admin_address: unix:/tmp/zp/admin.sock
state_dir: /tmp/zp/state
bpffs_path: /sys/fs/bpf/zproxy
CFG
./zproxyd --config /tmp/zp/zproxy.yaml >/tmp/zp/zproxyd.out 2>&1 &
zproxyd=$!
./ktls_proxy_client --port 18443 --metrics-port 19901
e2e=$?
echo "ktls-vm: proxy end to end exit $e2e"
if [ "$e2e" != 0 ]; then
  echo "----- zproxyd + data plane log (tail)"
  tail -40 /tmp/zp/zproxyd.out
fi
grep -i "ktls" /tmp/zp/zproxyd.out | head -3
kill "$zproxyd" "$backend" 2>/dev/null
wait 2>/dev/null
[ "$unit" = 0 ] && [ "$e2e" = 0 ]
