/* Maps only: the shared upstream health region (common/health_region.h) as a pinned,
 * mmapable BPF array. zproxyd's checker writes it, the data plane maps it read-only; no
 * program touches it, but BPF gives it BTF (bpftool prints the fields) and a pin. */
#include <linux/bpf.h>

#define ZPROXY_HEALTH_MAPS
#include "zproxy_maps.h"

char LICENSE[] SEC("license") = "GPL";
