// Kernel-side interface settings the daemon needs for its own devices:
// administrative up/down, MTU, ifindex. Plain SIOC* ioctls on an AF_INET
// datagram socket, so they act on the calling thread's network namespace.
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "state.h"

namespace tapstack {

namespace {

class IfSocket {
 public:
  explicit IfSocket(Napi::Env env) : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    if (fd_ < 0) throw ErrnoError(env, errno, "socket", "AF_INET");
  }
  ~IfSocket() { close(fd_); }
  int fd() const { return fd_; }

 private:
  int fd_;
};

ifreq NamedReq(const Napi::CallbackInfo& info, std::string* name) {
  if (!info[0].IsString()) throw Napi::TypeError::New(info.Env(), "name must be a string");
  *name = info[0].As<Napi::String>().Utf8Value();
  if (name->empty() || name->size() >= IFNAMSIZ)
    throw ErrnoError(info.Env(), name->empty() ? EINVAL : ENAMETOOLONG, "ioctl", *name);
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name->data(), name->size());
  return ifr;
}

void Ioctl(Napi::Env env, int fd, unsigned long req, ifreq* ifr, const char* what, const std::string& name) {
  if (ioctl(fd, req, ifr) < 0) {
    int e = errno;
    throw ErrnoError(env, e, what, name, PrivilegeHint(e));
  }
}

// setLinkUp(name, up): SIOCSIFFLAGS with IFF_UP set or cleared, other flags kept.
Napi::Value SetLinkUp(const Napi::CallbackInfo& info) {
  std::string name;
  ifreq ifr = NamedReq(info, &name);
  bool up = info[1].ToBoolean().Value();
  IfSocket s(info.Env());
  Ioctl(info.Env(), s.fd(), SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS", name);
  short flags = up ? static_cast<short>(ifr.ifr_flags | IFF_UP) : static_cast<short>(ifr.ifr_flags & ~IFF_UP);
  if (flags != ifr.ifr_flags) {
    ifr.ifr_flags = flags;
    Ioctl(info.Env(), s.fd(), SIOCSIFFLAGS, &ifr, "SIOCSIFFLAGS", name);
  }
  return info.Env().Undefined();
}

// getLinkFlags(name): the IFF_* flags word (IFF_UP = 1, IFF_RUNNING = 0x40, ...).
Napi::Value GetLinkFlags(const Napi::CallbackInfo& info) {
  std::string name;
  ifreq ifr = NamedReq(info, &name);
  IfSocket s(info.Env());
  Ioctl(info.Env(), s.fd(), SIOCGIFFLAGS, &ifr, "SIOCGIFFLAGS", name);
  return Napi::Number::New(info.Env(), static_cast<unsigned short>(ifr.ifr_flags));
}

// setMtu(name, mtu)
Napi::Value SetMtu(const Napi::CallbackInfo& info) {
  std::string name;
  ifreq ifr = NamedReq(info, &name);
  if (!info[1].IsNumber()) throw Napi::TypeError::New(info.Env(), "mtu must be a number");
  double mtu = info[1].As<Napi::Number>().DoubleValue();
  if (!(mtu >= 0 && mtu <= 2147483647.0) || mtu != static_cast<double>(static_cast<int>(mtu)))
    throw Napi::RangeError::New(info.Env(), "mtu must be a non-negative integer");
  ifr.ifr_mtu = static_cast<int>(mtu);
  IfSocket s(info.Env());
  Ioctl(info.Env(), s.fd(), SIOCSIFMTU, &ifr, "SIOCSIFMTU", name);
  return info.Env().Undefined();
}

// getMtu(name)
Napi::Value GetMtu(const Napi::CallbackInfo& info) {
  std::string name;
  ifreq ifr = NamedReq(info, &name);
  IfSocket s(info.Env());
  Ioctl(info.Env(), s.fd(), SIOCGIFMTU, &ifr, "SIOCGIFMTU", name);
  return Napi::Number::New(info.Env(), ifr.ifr_mtu);
}

// getIfindex(name)
Napi::Value GetIfindex(const Napi::CallbackInfo& info) {
  std::string name;
  ifreq ifr = NamedReq(info, &name);
  IfSocket s(info.Env());
  Ioctl(info.Env(), s.fd(), SIOCGIFINDEX, &ifr, "SIOCGIFINDEX", name);
  return Napi::Number::New(info.Env(), ifr.ifr_ifindex);
}

}  // namespace

void RegisterNetif(Napi::Env env, Napi::Object exports) {
  exports.Set("setLinkUp", Napi::Function::New<SetLinkUp>(env, "setLinkUp"));
  exports.Set("getLinkFlags", Napi::Function::New<GetLinkFlags>(env, "getLinkFlags"));
  exports.Set("setMtu", Napi::Function::New<SetMtu>(env, "setMtu"));
  exports.Set("getMtu", Napi::Function::New<GetMtu>(env, "getMtu"));
  exports.Set("getIfindex", Napi::Function::New<GetIfindex>(env, "getIfindex"));
}

}  // namespace tapstack
