#pragma once
#include <napi.h>

#include <string>

namespace tapstack {

// A JS Error shaped like Node's own system errors, so callers can branch on
// `.code` the same way they do for fs or net failures:
//   message "EPERM: operation not permitted, TUNSETIFF 'tap0'"
//   .code "EPERM", .errno -1 (negative, as Node and util.getSystemErrorName use),
//   .syscall "TUNSETIFF".
// `hint` is appended to the message when non-empty.
Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string& subject, const std::string& hint = "");

// Opening or configuring a TUN device without privileges fails with EPERM
// (TUNSETIFF) or EACCES (/dev/net/tun is often mode 0600); say what is missing.
std::string PrivilegeHint(int err);

}  // namespace tapstack
