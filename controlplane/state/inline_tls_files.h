// The data plane drops every privilege after start (dataplane/privileges): as uid 0
// without CAP_DAC_OVERRIDE, or as dataplane_user, it may not be able to open the TLS
// certificates and keys a later config names (root's 0600 keys, an ACME client's files).
// So zproxyd, which validated those files anyway, reads them and sends their contents in
// the config the data plane gets (TlsCertificate.cert_pem/key_pem, ClusterTls.*_pem).
#pragma once

#include "zproxy/v1/config.pb.h"

namespace zproxy::state {

// Fills the *_pem fields from the files named beside them. A file zproxyd cannot read
// is left out: the data plane then opens it itself and its error names the file.
void InlineTlsFiles(zproxy::v1::Config* config);

}  // namespace zproxy::state
