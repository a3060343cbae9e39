#include "errors.h"

#include <uv.h>

#include <cerrno>

namespace tapstack {

namespace {

std::string Message(int err, const char* syscall, const std::string& subject,
                    const std::string& hint) {
  char name[64];
  char text[256];
  // libuv error codes are negated errnos on Unix; these give the same strings
  // as Node's own system errors.
  uv_err_name_r(-err, name, sizeof name);
  uv_strerror_r(-err, text, sizeof text);
  std::string msg = std::string(name) + ": " + text + ", " + syscall;
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
  char name[64];
  uv_err_name_r(-err, name, sizeof name);
  Napi::Error e = Napi::Error::New(env, Message(err, syscall, subject, hint));
  Napi::Object o = e.Value();
  o.Set("code", Napi::String::New(env, name));
  o.Set("errno", Napi::Number::New(env, -err));
  o.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

}  // namespace tapstack
