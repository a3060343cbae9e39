#include "errors.h"

#include <uv.h>

#include <cctype>
#include <cerrno>
#include <cstring>

namespace tapstack {

namespace {

// libuv error codes are negated errnos on Unix, and its strings are the ones
// Node's own system errors use. libuv does not know every errno, though:
// EBADFD, which a TUN fd returns once its device is deleted, is one it lacks,
// so fall back to the C library for those.
bool UvKnows(int err) {
  char buf[64];
  uv_err_name_r(-err, buf, sizeof buf);
  return strncmp(buf, "Unknown", 7) != 0;
}

std::string ErrName(int err) {
  char buf[64];
  if (UvKnows(err)) return uv_err_name_r(-err, buf, sizeof buf);
  const char* n = strerrorname_np(err);
  return n ? n : uv_err_name_r(-err, buf, sizeof buf);
}

std::string ErrText(int err) {
  char buf[256];
  if (UvKnows(err)) return uv_strerror_r(-err, buf, sizeof buf);
  std::string text = strerror_r(err, buf, sizeof buf);
  if (!text.empty()) text[0] = static_cast<char>(tolower(static_cast<unsigned char>(text[0])));
  return text;
}

std::string Message(int err, const char* syscall, const std::string& subject,
                    const std::string& hint) {
  std::string msg = ErrName(err) + ": " + ErrText(err) + ", " + syscall;
  if (!subject.empty()) msg += " '" + subject + "'";
  if (!hint.empty()) msg += " (" + hint + ")";
  return msg;
}

}  // namespace

std::string PrivilegeHint(int err) {
  if (err == EPERM || err == EACCES)
    return "TAP/TUN devices need root or CAP_NET_ADMIN";
  return "";
}

Napi::Error ErrnoError(Napi::Env env, int err, const char* syscall,
                       const std::string& subject, const std::string& hint) {
  Napi::Error e = Napi::Error::New(env, Message(err, syscall, subject, hint));
  Napi::Object o = e.Value();
  o.Set("code", Napi::String::New(env, ErrName(err)));
  o.Set("errno", Napi::Number::New(env, -err));
  o.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

}  // namespace tapstack
