// Record-level I/O on a socket with kTLS installed (ktls.h): what the data plane needs
// besides plain send/recv of application data.
//
// Sending: the kernel seals every send() as application data. Alerts (close_notify before
// closing, fatal alerts on errors) are sent as control records with a TLS_SET_RECORD_TYPE
// cmsg.
//
// Receiving: the kernel hands application data to recv() and stops at a record of any other
// type; recv() without room for a cmsg then fails with EIO and leaves that record queued.
// RecvRecord() reads with a TLS_GET_RECORD_TYPE cmsg and says what arrived. Post-handshake
// messages in TLS 1.3:
//   - NewSessionTicket (a server's tickets, seen on upstream connections): harmless, dropped
//     (the connection just cannot be resumed from it); reading continues.
//   - KeyUpdate: the peer switches to new keys for every record after it. Kernels before 6.14
//     (the ktls-vm runs 6.1) cannot re-key RX: the next record would fail to decrypt
//     (EBADMSG). Policy: RecvRecord returns kKeyUpdate and the caller ends the connection
//     cleanly: SendCloseNotify() (our TX keys are still valid) and close. Connections whose
//     peer never sends KeyUpdate (the usual case for HTTP clients) are unaffected.
//   - anything else (renegotiation attempts, fragments of a handshake message split across
//     records): kUnexpectedHandshake, the caller closes (send a fatal unexpected_message).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>

namespace zproxy::ktls {

// TLS record content types (RFC 8446 section 5.1; the same values in TLS 1.2).
enum class RecordType : uint8_t {
  kChangeCipherSpec = 20,
  kAlert = 21,
  kHandshake = 22,
  kApplicationData = 23,
};

// Alert levels and the descriptions the data plane sends (RFC 8446 section 6).
inline constexpr uint8_t kAlertWarning = 1;
inline constexpr uint8_t kAlertFatal = 2;
inline constexpr uint8_t kAlertCloseNotify = 0;
inline constexpr uint8_t kAlertUnexpectedMessage = 10;
inline constexpr uint8_t kAlertInternalError = 80;

// Largest record payload (2^14); RecvRecord needs a buffer this big to classify a control
// record in one call.
inline constexpr size_t kMaxRecordPayload = 16384;

// Sends `len` bytes as one record of `type` (TLS_SET_RECORD_TYPE). Returns 0 or an errno
// (EAGAIN on a full non-blocking socket: nothing was sent, retry when writable).
int SendControlRecord(int fd, RecordType type, const void* data, size_t len);
int SendAlert(int fd, uint8_t level, uint8_t description);
inline int SendCloseNotify(int fd) { return SendAlert(fd, kAlertWarning, kAlertCloseNotify); }

enum class RxKind : uint8_t {
  kData,                 // `bytes` bytes of application data in the buffer
  kEof,                  // TCP FIN without close_notify (truncation: the peer did not close TLS)
  kCloseNotify,          // the peer's close_notify: clean end of its stream
  kAlert,                // any other alert (alert_level/alert_description): close
  kNewSessionTicket,     // TLS 1.3 ticket(s): dropped, keep reading
  kKeyUpdate,            // TLS 1.3 KeyUpdate: cannot re-key here; close cleanly (see above)
  kUnexpectedHandshake,  // other handshake message or an unknown record type: close
  kWouldBlock,           // EAGAIN on a non-blocking socket
  kError,                // recvmsg failed: errno in `error` (EBADMSG: record failed to open)
};

struct RxResult {
  RxKind kind = RxKind::kError;
  size_t bytes = 0;  // kData: plaintext bytes; control kinds: payload size of the record
  int error = 0;
  uint8_t alert_level = 0;
  uint8_t alert_description = 0;
  bool key_update_requested = false;  // kKeyUpdate: the peer asked for our KeyUpdate too
};

// One recvmsg() with room for the record-type cmsg. `flags` as for recvmsg (MSG_DONTWAIT).
// Application data may span several records in one call; a control record always comes
// alone. `len` should be >= kMaxRecordPayload so a control record fits.
RxResult RecvRecord(int fd, void* buf, size_t len, int flags);

// Classifies the payload of a decrypted handshake record (exposed for tests).
RxKind ClassifyHandshake(const uint8_t* data, size_t len, bool* key_update_requested);

}  // namespace zproxy::ktls
