"""bpf_skeleton(name): NAME.bpf.c -> NAME.bpf.o (clang -target bpf, with BTF) ->
NAME.skel.h (bpftool gen skeleton) -> cc_library NAME_skel.

Absolute tool paths: /usr/sbin is not on the action PATH (shared/notes/build.md)."""

_HDRS = ["zproxy_consts.h", "zproxy_maps.h", "zproxy_structs.h"]

def bpf_skeleton(name):
    native.genrule(
        name = name + "_obj",
        srcs = [name + ".bpf.c"] + _HDRS,
        outs = [name + ".bpf.o"],
        # -g: BTF, without which libbpf refuses .maps and bpftool cannot name fields.
        cmd = ("/usr/bin/clang -O2 -g -Wall -Werror -target bpf -D__TARGET_ARCH_x86 " +
               "-I/usr/include/x86_64-linux-gnu -c $(location %s.bpf.c) -o $@") % name,
    )
    native.genrule(
        name = name + "_skel_h",
        srcs = [name + ".bpf.o"],
        outs = [name + ".skel.h"],
        cmd = "/usr/sbin/bpftool gen skeleton $< name %s > $@" % name,
    )
    native.cc_library(
        name = name + "_skel",
        hdrs = [name + ".skel.h"],
        deps = [
            ":shared_headers",
            "//bazel/system:libbpf",
        ],
    )
