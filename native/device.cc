// TAP/TUN file descriptors as JS handle objects: open (create or attach by
// name), batched writes, and close. Receiving lives in rx_loop.cc.
#include <fcntl.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "errors.h"
#include "state.h"

#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

namespace tapstack {

namespace {

// Frames read by the device's last receive wakeup from which the JS thread
// counts as behind (Dev::rxLast): its single small frames go to the
// transmit ring then. One connection waiting for each answer can bring two
// (a pure ACK and the next request), so the bar is above that.
constexpr uint32_t kRxBusy = 4;

// Zeros for the virtio_net_hdr in front of every written frame when
// IFF_VNET_HDR is on: no checksum offload, no GSO. Large enough for the
// 12-byte (mergeable rx buffers) variant.
const uint8_t kZeroVnetHdr[16] = {0};
// Most payload views one writeGather frame may have (the stack sends at most 16).
constexpr uint32_t kMaxGatherParts = 32;

std::string OpenHint(int err) {
  if (err == EPERM || err == EACCES) return PrivilegeHint(err);
  if (err == EBUSY) return "already attached to another file descriptor";
  if (err == EINVAL)
    return "not a valid interface name, or the name belongs to a device of another kind";
  return "";
}

uint32_t ArgU32(const Napi::CallbackInfo& info, size_t i, const char* what) {
  if (!info[i].IsNumber()) throw Napi::TypeError::New(info.Env(), std::string(what) + " must be a number");
  double v = info[i].As<Napi::Number>().DoubleValue();
  if (!(v >= 0 && v <= 4294967295.0) || v != static_cast<double>(static_cast<uint32_t>(v)))
    throw Napi::RangeError::New(info.Env(), std::string(what) + " must be an unsigned 32-bit integer");
  return static_cast<uint32_t>(v);
}

}  // namespace

class DeviceHandle : public Napi::ObjectWrap<DeviceHandle> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(
        env, "DeviceHandle",
        {
            InstanceMethod<&DeviceHandle::Start>("start"),
            InstanceMethod<&DeviceHandle::Stop>("stop"),
            InstanceMethod<&DeviceHandle::Close>("close"),
            InstanceMethod<&DeviceHandle::WriteBatch>("writeBatch"),
            InstanceMethod<&DeviceHandle::Write>("write"),
            InstanceMethod<&DeviceHandle::WriteGather>("writeGather"),
            InstanceMethod<&DeviceHandle::KernelName>("kernelName"),
            InstanceMethod<&DeviceHandle::SetOffload>("setOffload"),
            InstanceMethod<&DeviceHandle::SetTxHeaderInline>("setTxHeaderInline"),
            InstanceMethod<&DeviceHandle::SetTxThread>("setTxThread"),
            InstanceMethod<&DeviceHandle::TxStats>("txStats"),
            InstanceAccessor<&DeviceHandle::GetId>("id"),
            InstanceAccessor<&DeviceHandle::GetFd>("fd"),
            InstanceAccessor<&DeviceHandle::GetName>("name"),
            InstanceAccessor<&DeviceHandle::GetVnetLen>("vnetHdrLength"),
            InstanceAccessor<&DeviceHandle::GetRxOversize>("rxOversize"),
            InstanceAccessor<&DeviceHandle::GetClosed>("closed"),
        });
  }

  // Constructed empty (closed) by Open(), which then hands over the fd; a
  // handle made with `new` from JS stays closed and harmless.
  explicit DeviceHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<DeviceHandle>(info) {}

  // Garbage collection or environment teardown without close(): release the
  // fd and the epoll membership here so nothing leaks.
  ~DeviceHandle() override { CloseDev(&dev_); }

  Dev* dev() { return &dev_; }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "epoll_ctl", dev_.name);
    StartPolling(&dev_);
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    StopPolling(&dev_);
    return info.Env().Undefined();
  }

  Napi::Value Close(const Napi::CallbackInfo& info) {
    CloseDev(&dev_);
    return info.Env().Undefined();
  }

  // writeBatch(frames: Uint8Array[], count): one write() per frame, since a
  // TAP/TUN fd takes exactly one frame per write. Returns how many went out;
  // EAGAIN ends the batch early (the caller drops and counts the rest), any
  // other errno throws with `.written` set.
  Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "write", dev_.name);
    if (!info[0].IsArray()) throw Napi::TypeError::New(env, "frames must be an array of Uint8Array");
    napi_value arr = info[0];
    uint32_t count = ArgU32(info, 1, "count");
    if (dev_.txThread && (count >= dev_.txMinBatch || dev_.rxLast >= kRxBusy || dev_.txPending.load(std::memory_order_acquire) != 0))
      return Napi::Number::New(env, Enqueue(env, arr, count));
    return Napi::Number::New(env, WriteEach(env, arr, count));
  }

  // writeGather(heads: Uint8Array[], parts: Uint8Array[], partCounts: Uint32Array, count):
  // writeBatch where frame i is heads[i] followed by the next partCounts[i] entries of
  // parts, written with one writev() (headers from the stack's buffer, payload from the
  // socket's send buffer, no copy in between). Written directly, never through the
  // transmit thread, which takes whole frames.
  Napi::Value WriteGather(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "writev", dev_.name);
    if (dev_.txThread) throw Napi::Error::New(env, "writeGather: the device's frames go through the transmit thread");
    if (!info[0].IsArray() || !info[1].IsArray()) throw Napi::TypeError::New(env, "heads and parts must be arrays of Uint8Array");
    napi_value heads = info[0];
    napi_value parts = info[1];
    napi_typedarray_type type;
    size_t nCounts;
    void* countsData;
    if (napi_get_typedarray_info(env, info[2], &type, &nCounts, &countsData, nullptr, nullptr) != napi_ok || type != napi_uint32_array)
      throw Napi::TypeError::New(env, "partCounts must be a Uint32Array");
    uint32_t count = ArgU32(info, 3, "count");
    if (count > nCounts) throw Napi::RangeError::New(env, "count is larger than partCounts");
    const uint32_t* counts = static_cast<const uint32_t*>(countsData);
    iovec iov[2 + kMaxGatherParts];
    uint32_t written = 0;
    uint32_t next = 0;
    for (; written < count; written++) {
      int k = 0;
      if (dev_.vnetLen && !dev_.txHdrInline) iov[k++] = {const_cast<uint8_t*>(kZeroVnetHdr), dev_.vnetLen};
      TxFrame h = FrameAt(env, heads, written, "heads");
      iov[k++] = {const_cast<void*>(h.data), h.len};
      uint32_t np = counts[written];
      if (np > kMaxGatherParts) throw Napi::RangeError::New(env, "partCounts[" + std::to_string(written) + "] is above " + std::to_string(kMaxGatherParts));
      for (uint32_t j = 0; j < np; j++) {
        TxFrame f = FrameAt(env, parts, next++, "parts");
        iov[k++] = {const_cast<void*>(f.data), f.len};
      }
      ssize_t r;
      do {
        r = writev(dev_.fd, iov, k);
      } while (r < 0 && errno == EINTR);
      if (r >= 0) continue;
      int err = errno == EWOULDBLOCK ? EAGAIN : errno;
      if (err == EAGAIN) break;
      throw WriteError(env, err, written);
    }
    return Napi::Number::New(env, written);
  }

  // frames[i] of a writeBatch call (or of the array `what` of a writeGather call), which must be a Uint8Array.
  static TxFrame FrameAt(napi_env env, napi_value arr, uint32_t i, const char* what = "frames") {
    napi_value el;
    napi_typedarray_type type;
    size_t len;
    void* data;
    if (napi_get_element(env, arr, i, &el) != napi_ok ||
        napi_get_typedarray_info(env, el, &type, &len, &data, nullptr, nullptr) != napi_ok ||
        type != napi_uint8_array)
      throw Napi::TypeError::New(env, std::string(what) + "[" + std::to_string(i) + "] is not a Uint8Array");
    return {data, len};
  }

  // The direct path: one write() per frame, in the caller's thread.
  uint32_t WriteEach(napi_env env, napi_value arr, uint32_t count) {
    uint32_t written = 0;
    for (; written < count; written++) {
      TxFrame f = FrameAt(env, arr, written);
      int err = WriteFrame(f.data, f.len);
      if (err == EAGAIN) break;
      if (err != 0) throw WriteError(env, err, written);
    }
    return written;
  }

  // write(frame: Uint8Array): writeBatch of one frame without the array, the
  // common case of a receive batch answered by one reply. Returns 1, or 0 on
  // EAGAIN.
  Napi::Value Write(const Napi::CallbackInfo& info) {
    napi_env env = info.Env();
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "write", dev_.name);
    napi_typedarray_type type;
    size_t len;
    void* data;
    if (info.Length() < 1 || napi_get_typedarray_info(env, info[0], &type, &len, &data, nullptr, nullptr) != napi_ok ||
        type != napi_uint8_array)
      throw Napi::TypeError::New(env, "frame is not a Uint8Array");
    // Behind frames of this device still in the transmit ring, or while
    // requests queue up (rxLast): to the ring too.
    if (dev_.txThread && ((dev_.rxLast >= kRxBusy && len <= dev_.txMaxMean) || dev_.txPending.load(std::memory_order_acquire) != 0)) {
      TxFrame f = {data, len};
      return Napi::Number::New(env, TxEnqueue(&dev_, &f, 1));
    }
    int err = WriteFrame(data, len);
    if (err != 0 && err != EAGAIN) throw WriteError(env, err, 0);
    return Napi::Number::New(env, err == 0 ? 1 : 0);
  }

  // The transmit thread's path: every frame checked first (a TypeError
  // queues nothing), then copied to the ring. Returns how many it took.
  // Large frames (TSO super-frames) are written directly while none of the
  // device's frames are queued: copying them costs the JS thread about what
  // the kernel's share of their write() would, and the writer would compete
  // for the other core with the receiving application.
  uint32_t Enqueue(napi_env env, napi_value arr, uint32_t count) {
    std::vector<TxFrame>& fs = txScratch_;
    fs.resize(count);
    size_t bytes = 0;
    for (uint32_t i = 0; i < count; i++) {
      fs[i] = FrameAt(env, arr, i);
      bytes += fs[i].len;
    }
    if (bytes > static_cast<size_t>(count) * dev_.txMaxMean && dev_.txPending.load(std::memory_order_acquire) == 0)
      return WriteEach(env, arr, count);
    return TxEnqueue(&dev_, fs.data(), count);
  }

  // One frame, one write(): 0, EAGAIN (also for EWOULDBLOCK) or the errno.
  int WriteFrame(const void* data, size_t len) {
    ssize_t r;
    do {
      if (dev_.vnetLen && !dev_.txHdrInline) {
        iovec iov[2] = {{const_cast<uint8_t*>(kZeroVnetHdr), dev_.vnetLen}, {const_cast<void*>(data), len}};
        r = writev(dev_.fd, iov, 2);
      } else {
        r = write(dev_.fd, data, len);
      }
    } while (r < 0 && errno == EINTR);
    if (r >= 0) return 0;
    return errno == EWOULDBLOCK ? EAGAIN : errno;
  }

  Napi::Error WriteError(Napi::Env env, int err, uint32_t written) {
    Napi::Error e = ErrnoError(env, err, "write", dev_.name);
    e.Value().Set("written", Napi::Number::New(env, written));
    return e;
  }

  // The name the kernel uses now (it follows `ip link set NAME name NEW`).
  Napi::Value KernelName(const Napi::CallbackInfo& info) {
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "TUNGETIFF", dev_.name);
    ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    if (ioctl(dev_.fd, TUNGETIFF, &ifr) < 0) throw ErrnoError(info.Env(), errno, "TUNGETIFF", dev_.name);
    return Napi::String::New(info.Env(), ifr.ifr_name);
  }

  // setOffload(flags): TUNSETOFFLOAD with TUN_F_* bits (what the kernel may
  // hand us: partial checksums, TSO/USO super-packets). Returns 0 or the
  // errno (EINVAL for bits this kernel does not know), so the caller can try
  // a smaller set.
  Napi::Value SetOffload(const Napi::CallbackInfo& info) {
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "TUNSETOFFLOAD", dev_.name);
    uint32_t flags = ArgU32(info, 0, "flags");
    int r = ioctl(dev_.fd, TUNSETOFFLOAD, static_cast<unsigned long>(flags));
    return Napi::Number::New(info.Env(), r < 0 ? errno : 0);
  }

  // setTxHeaderInline(on): frames given to write/writeBatch start with their
  // own virtio_net_hdr (vnetHdrLength bytes). Only with IFF_VNET_HDR.
  Napi::Value SetTxHeaderInline(const Napi::CallbackInfo& info) {
    bool on = info[0].ToBoolean().Value();
    if (on && dev_.vnetLen == 0) throw Napi::Error::New(info.Env(), "the device was opened without a virtio_net_hdr");
    dev_.txHdrInline = on;
    return info.Env().Undefined();
  }

  // setTxThread(on, minBatch = 2, maxMeanBytes = 4096): with `on`, batches
  // of at least minBatch frames of at most maxMeanBytes on average (and any
  // frame while this device has some queued) go to the transmit thread
  // (tx_thread.cc); the others are written at once, as without it. Turning
  // it off waits for the queued frames to be written.
  Napi::Value SetTxThread(const Napi::CallbackInfo& info) {
    if (dev_.fd < 0) throw ErrnoError(info.Env(), EBADF, "setTxThread", dev_.name);
    bool on = info[0].ToBoolean().Value();
    uint32_t minBatch = info.Length() > 1 && !info[1].IsUndefined() ? ArgU32(info, 1, "minBatch") : 2;
    uint32_t maxMean = info.Length() > 2 && !info[2].IsUndefined() ? ArgU32(info, 2, "maxMeanBytes") : 4096;
    TxEnable(&dev_, on, minBatch);
    dev_.txMaxMean = maxMean;
    return info.Env().Undefined();
  }

  // txStats(): the transmit thread's counters for this device. Frames in
  // `queued` were reported as taken by write/writeBatch; the writer's drops
  // among them are `busy` (EAGAIN), `linkDown` (EIO), `errors` (any other
  // errno, the last in `errno`) and `discarded` (the device closed first).
  Napi::Value TxStats(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    Napi::Object o = Napi::Object::New(env);
    auto num = [&](const char* k, double v) { o.Set(k, Napi::Number::New(env, v)); };
    num("queued", static_cast<double>(dev_.txQueued));
    num("pending", dev_.txPending.load());
    num("written", static_cast<double>(dev_.txWritten.load()));
    num("busy", static_cast<double>(dev_.txBusy.load()));
    num("linkDown", static_cast<double>(dev_.txLinkDown.load()));
    num("errors", static_cast<double>(dev_.txErrors.load()));
    num("errno", dev_.txErrno.load());
    num("discarded", static_cast<double>(dev_.txDiscarded.load()));
    o.Set("on", Napi::Boolean::New(env, dev_.txThread));
    return o;
  }

  Napi::Value GetId(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dev_.id); }
  Napi::Value GetFd(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dev_.fd); }
  Napi::Value GetName(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), dev_.name); }
  Napi::Value GetVnetLen(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), dev_.vnetLen); }
  Napi::Value GetRxOversize(const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(dev_.rxOversize));
  }
  Napi::Value GetClosed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), dev_.fd < 0); }

  Dev dev_;
  std::vector<TxFrame> txScratch_;
};

Napi::Function DefineDeviceHandle(Napi::Env env, State* st) { return DeviceHandle::Define(env); }

void CloseDev(Dev* d) {
  if (d->fd < 0) return;
  State* st = d->st;
  StopPolling(d);
  TxForget(d);
  d->txThread = false;
  close(d->fd);
  d->fd = -1;
  if (st) {
    if (d->rxBuf) napi_delete_reference(st->env, d->rxBuf);
    if (d->id < st->devs.size() && st->devs[d->id] == d) {
      st->devs[d->id] = nullptr;
      (st->inCallback ? st->heldIds : st->freeIds).push_back(d->id);
    }
  }
  d->rxBuf = nullptr;
  d->st = nullptr;
}

// open(name, tap, vnetHdr, rxBuffer, slots, slotSize[, rxHeadroom]) ->
// DeviceHandle. The receive buffer holds the frame lengths first (`slots`
// host-order uint32s), then the slots: frame i at 4 * slots + i * slotSize
// (+ rxHeadroom, with the virtio_net_hdr in the bytes right before it).
Napi::Value Open(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State* st = env.GetInstanceData<State>();
  if (!info[0].IsString()) throw Napi::TypeError::New(env, "name must be a string");
  std::string name = info[0].As<Napi::String>().Utf8Value();
  bool tap = info[1].ToBoolean().Value();
  bool vnet = info[2].ToBoolean().Value();
  if (!info[3].IsArrayBuffer()) throw Napi::TypeError::New(env, "rxBuffer must be an ArrayBuffer");
  Napi::ArrayBuffer rxBuf = info[3].As<Napi::ArrayBuffer>();
  uint32_t slots = ArgU32(info, 4, "slots");
  uint32_t slotSize = ArgU32(info, 5, "slotSize");
  if (slots == 0 || slotSize == 0) throw Napi::RangeError::New(env, "slots and slotSize must be positive");
  uint32_t rxHeadroom = info.Length() > 6 && !info[6].IsUndefined() ? ArgU32(info, 6, "rxHeadroom") : 0;
  if (rxHeadroom >= slotSize || (rxHeadroom & 3) != 0)
    throw Napi::RangeError::New(env, "rxHeadroom must be a multiple of 4 below slotSize");
  if (rxBuf.ByteLength() < RxBufferBytes(slots, slotSize))
    throw Napi::RangeError::New(env, "rxBuffer is smaller than slots * (4 + slotSize)");
  // IFNAMSIZ counts the terminating NUL; the kernel would silently see a
  // truncated name, so refuse it here.
  if (name.size() >= IFNAMSIZ) throw ErrnoError(env, ENAMETOOLONG, "TUNSETIFF", name, "interface names have at most 15 bytes");
  if (name.find('\0') != std::string::npos) throw ErrnoError(env, EINVAL, "TUNSETIFF", name);

  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    throw ErrnoError(env, e, "open", "/dev/net/tun", e == ENOENT ? "the tun module is not loaded" : OpenHint(e));
  }
  ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  ifr.ifr_flags = static_cast<short>((tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0));
  memcpy(ifr.ifr_name, name.data(), name.size());
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, e, "TUNSETIFF", name, OpenHint(e));
  }
  int vnetLen = 0;
  if (vnet && ioctl(fd, TUNGETVNETHDRSZ, &vnetLen) < 0) {
    int e = errno;
    close(fd);
    throw ErrnoError(env, e, "TUNGETVNETHDRSZ", name);
  }
  if (vnetLen < 0 || vnetLen > static_cast<int>(sizeof kZeroVnetHdr) || (rxHeadroom != 0 && rxHeadroom < static_cast<uint32_t>(vnetLen))) {
    close(fd);
    throw ErrnoError(env, EINVAL, "TUNGETVNETHDRSZ", name, "unexpected virtio_net_hdr size");
  }

  Napi::Object obj;
  try {
    obj = st->deviceCtor.New({});
  } catch (...) {
    close(fd);
    throw;
  }
  Dev* d = DeviceHandle::Unwrap(obj)->dev();
  d->st = st;
  d->fd = fd;
  d->tap = tap;
  d->vnetLen = static_cast<uint32_t>(vnetLen);
  d->slots = slots;
  d->slotSize = slotSize;
  d->rxHeadroom = rxHeadroom;
  memcpy(d->name, ifr.ifr_name, IFNAMSIZ);
  d->name[IFNAMSIZ - 1] = 0;
  napi_create_reference(env, rxBuf, 1, &d->rxBuf);
  if (!st->freeIds.empty()) {
    d->id = st->freeIds.back();
    st->freeIds.pop_back();
    st->devs[d->id] = d;
  } else {
    d->id = static_cast<uint32_t>(st->devs.size());
    st->devs.push_back(d);
  }
  return obj;
}

}  // namespace tapstack
