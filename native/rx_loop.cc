// The receive path: every started device fd has its own uv_poll, so libuv's
// epoll watches the TAP/TUN fds directly. A wakeup reads up to `slots` frames
// from the device straight into the receive buffer JS gave at open, then
// makes one JS call saying how many frames it got.
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>

#include "errors.h"
#include "state.h"

namespace tapstack {

namespace {

// A device's uv_poll is freed here, once libuv is done with it; its data was
// switched to the State at uv_close, as the device may be gone by now.
void OnClosed(uv_handle_t* h) {
  State* st = static_cast<State*>(h->data);
  delete reinterpret_cast<uv_poll_t*>(h);
  st->closingHandles--;
  if (st->tearingDown && st->closingHandles == 0) {
    napi_async_cleanup_hook_handle hook = st->cleanupHook;
    delete st;
    napi_remove_async_cleanup_hook(hook);
  }
}

// Reads frames until the device has none left, its slots are full, or an
// error. The buffer is looked up through its reference on every wakeup
// rather than cached, so a detached (transferred) ArrayBuffer is noticed
// instead of written through a stale pointer.
uint32_t ReadBurst(napi_env env, Dev* d, int* err) {
  napi_value v;
  void* base = nullptr;
  size_t bufLen = 0;
  if (napi_get_reference_value(env, d->rxBuf, &v) != napi_ok ||
      napi_get_arraybuffer_info(env, v, &base, &bufLen) != napi_ok || base == nullptr ||
      bufLen < RxBufferBytes(d->slots, d->slotSize)) {
    *err = EFAULT;
    return 0;
  }
  // ArrayBuffer memory is aligned for any typed array.
  uint32_t* lens = static_cast<uint32_t*>(base);
  uint8_t* slots = static_cast<uint8_t*>(base) + 4 * static_cast<size_t>(d->slots);
  const size_t slotSize = d->slotSize;
  uint8_t hdr[16];
  // One byte past the slot: a frame that reaches it did not fit. Kernels
  // differ on what read() returns for a truncated frame (the full length or
  // just what was copied), so the spill byte is what tells.
  uint8_t spill;
  uint32_t count = 0;
  // Bounded by `slots` attempts so oversize frames cannot keep us here.
  for (uint32_t attempt = 0; attempt < d->slots; attempt++) {
    uint8_t* slot = slots + static_cast<size_t>(count) * slotSize;
    ssize_t r;
    if (d->vnetLen) {
      // The header goes to scratch space, the frame to the slot: JS never
      // sees the header and nothing is moved afterwards.
      iovec iov[3] = {{hdr, d->vnetLen}, {slot, slotSize}, {&spill, 1}};
      r = readv(d->fd, iov, 3);
      if (r >= 0) r -= d->vnetLen;
    } else {
      iovec iov[2] = {{slot, slotSize}, {&spill, 1}};
      r = readv(d->fd, iov, 2);
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) *err = errno;
      break;
    }
    if (static_cast<size_t>(r) > slotSize) {
      d->rxOversize++;
      continue;
    }
    lens[count++] = static_cast<uint32_t>(r);
  }
  return count;
}

void OnPoll(uv_poll_t* h, int status, int events) {
  Dev* d = static_cast<Dev*>(h->data);
  State* st = d->st;
  if (st == nullptr || !d->polling) return;
  napi_env env = st->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  int err = 0;
  uint32_t count = ReadBurst(env, d, &err);
  // libuv saw an error condition on the fd that a read did not report.
  if (count == 0 && err == 0 && status < 0) err = -status;
  if (count == 0 && err == 0) {
    napi_close_handle_scope(env, scope);
    return;
  }
  const uint32_t id = d->id;
  // A broken fd (device deleted: EBADFD) stays readable forever under
  // level-triggered polling; stop it and let JS decide.
  if (err) StopPolling(d);

  napi_value cb, recv, args[3], result;
  napi_get_reference_value(env, st->onRx, &cb);
  napi_get_global(env, &recv);  // node::MakeCallback wants an object receiver
  napi_create_uint32(env, id, &args[0]);
  napi_create_uint32(env, count, &args[1]);
  napi_create_uint32(env, static_cast<uint32_t>(err), &args[2]);
  // make_callback (not call_function) so nextTicks and promise jobs queued
  // by the receivers run before we return to the event loop. The device may
  // be closed, even collected, by the time it returns: `d` is not used again.
  st->inCallback = true;
  napi_status s = napi_make_callback(env, st->actx, recv, cb, 3, args, &result);
  st->inCallback = false;
  st->freeIds.insert(st->freeIds.end(), st->heldIds.begin(), st->heldIds.end());
  st->heldIds.clear();
  if (s == napi_pending_exception) {
    // Nothing of ours is on the stack to catch it: hand it to Node's
    // uncaughtException machinery like any other callback's exception.
    napi_value exc;
    napi_get_and_clear_last_exception(env, &exc);
    napi_fatal_exception(env, exc);
  }
  napi_close_handle_scope(env, scope);
}

}  // namespace

void StartPolling(Dev* d) {
  State* st = d->st;
  if (d->polling || st == nullptr) return;
  Napi::Env env(st->env);
  if (st->onRx == nullptr) throw Napi::Error::New(env, "tapstack native: init() must be called before start()");
  if (d->poll == nullptr) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(st->env, &loop);
    uv_poll_t* h = new uv_poll_t;
    int r = uv_poll_init(loop, h, d->fd);
    if (r != 0) {
      delete h;
      throw ErrnoError(env, -r, "uv_poll_init", d->name);
    }
    h->data = d;
    d->poll = h;
  }
  int r = uv_poll_start(d->poll, UV_READABLE, OnPoll);
  if (r != 0) throw ErrnoError(env, -r, "uv_poll_start", d->name);
  d->polling = true;
}

// An inactive uv_poll no longer keeps the process alive; the handle is kept
// for the next start and closed with the device.
void StopPolling(Dev* d) {
  if (!d->polling) return;
  uv_poll_stop(d->poll);
  d->polling = false;
}

// Before the fd is closed: libuv takes it out of its epoll set inside uv_close.
void ClosePoll(Dev* d) {
  StopPolling(d);
  if (d->poll == nullptr) return;
  State* st = d->st;
  d->poll->data = st;
  st->closingHandles++;
  uv_close(reinterpret_cast<uv_handle_t*>(d->poll), OnClosed);
  d->poll = nullptr;
}

// init(onRx: (id, count, errno) => void): the one receive callback. Each
// wakeup of a device calls it with the device's id, the frames now in its
// slots and the errno that stopped it (0 = none).
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State* st = env.GetInstanceData<State>();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "onRx must be a function");
  if (st->onRx) napi_delete_reference(env, st->onRx);
  napi_create_reference(env, info[0], 1, &st->onRx);
  if (st->actx == nullptr) {
    napi_value resource = Napi::Object::New(env);
    napi_value name = Napi::String::New(env, "tapstack:rx");
    napi_async_init(env, resource, name, &st->actx);
  }
  return env.Undefined();
}

}  // namespace tapstack
