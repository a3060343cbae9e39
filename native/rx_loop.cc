// The receive path: every started device fd sits in one epoll set per Node
// environment, and one uv_poll watches that set. A wakeup reads up to `slots`
// frames from each ready device straight into the receive buffer JS gave at
// open, then makes a single JS call saying which devices got how many frames.
#include <sys/epoll.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "errors.h"
#include "state.h"

namespace tapstack {

namespace {

// Devices served per wakeup at most; the rest stay ready (level-triggered)
// and are served on the next one.
constexpr int kMaxEvents = 64;

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
// error. The buffers are looked up through their references on every wakeup
// rather than cached, so a detached (transferred) ArrayBuffer is noticed
// instead of written through a stale pointer.
uint32_t ReadBurst(napi_env env, Dev* d, int* err) {
  napi_value v;
  void* base = nullptr;
  size_t bufLen = 0;
  void* lensData = nullptr;
  size_t lensLen = 0;
  napi_typedarray_type type;
  if (napi_get_reference_value(env, d->rxBuf, &v) != napi_ok ||
      napi_get_arraybuffer_info(env, v, &base, &bufLen) != napi_ok ||
      napi_get_reference_value(env, d->rxLens, &v) != napi_ok ||
      napi_get_typedarray_info(env, v, &type, &lensLen, &lensData, nullptr, nullptr) != napi_ok ||
      bufLen / d->slotSize < d->slots || lensLen < d->slots || base == nullptr) {
    *err = EFAULT;
    return 0;
  }
  uint8_t* slots = static_cast<uint8_t*>(base);
  uint32_t* lens = static_cast<uint32_t*>(lensData);
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
  State* st = static_cast<State*>(h->data);
  napi_env env = st->env;
  if (st->epfd < 0) return;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  napi_value readyVal;
  napi_typedarray_type type;
  size_t readyLen = 0;
  void* readyData = nullptr;
  if (napi_get_reference_value(env, st->ready, &readyVal) != napi_ok ||
      napi_get_typedarray_info(env, readyVal, &type, &readyLen, &readyData, nullptr, nullptr) != napi_ok)
    readyLen = 0;
  uint32_t* ready = static_cast<uint32_t*>(readyData);
  int maxEv = static_cast<int>(std::min<size_t>(kMaxEvents, readyLen / 3));
  if (maxEv == 0) {
    // The ready list was detached: nothing can be reported, and leaving the
    // devices in the set would spin. Stop them all and say why.
    for (Dev* d : st->devs)
      if (d) StopPolling(d);
    napi_value msg, err;
    napi_create_string_utf8(env, "tapstack: receive ready list is gone (detached ArrayBuffer)", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, nullptr, msg, &err);
    napi_fatal_exception(env, err);
    napi_close_handle_scope(env, scope);
    return;
  }

  epoll_event evs[kMaxEvents];
  int n;
  if (st->sole != nullptr) {
    // One device in the set: the wakeup says it is the ready one, so spare
    // the epoll_wait (a syscall per wakeup). Should the wakeup be stale, the
    // read finds nothing and no JS call is made.
    evs[0].data.u64 = 0;
    evs[0].data.u32 = st->sole->id;
    n = 1;
  } else {
    do {
      n = epoll_wait(st->epfd, evs, maxEv, 0);
    } while (n < 0 && errno == EINTR);
  }
  uint32_t nready = 0;
  for (int i = 0; i < n; i++) {
    uint32_t id = evs[i].data.u32;
    Dev* d = id < st->devs.size() ? st->devs[id] : nullptr;
    if (d == nullptr || !d->polling) continue;
    int err = 0;
    uint32_t count = ReadBurst(env, d, &err);
    if (count == 0 && err == 0) continue;
    ready[3 * nready] = id;
    ready[3 * nready + 1] = count;
    ready[3 * nready + 2] = static_cast<uint32_t>(err);
    nready++;
    // A broken fd (device deleted: EBADFD) stays readable forever under
    // level-triggered epoll; take it out and let JS decide.
    if (err) StopPolling(d);
  }

  if (nready > 0) {
    napi_value cb, recv, arg, result;
    napi_get_reference_value(env, st->onRx, &cb);
    napi_get_global(env, &recv);  // node::MakeCallback wants an object receiver
    napi_create_uint32(env, nready, &arg);
    // make_callback (not call_function) so nextTicks and promise jobs queued
    // by the receivers run before we return to the event loop.
    st->inCallback = true;
    napi_status s = napi_make_callback(env, st->actx, recv, cb, 1, &arg, &result);
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
  }
  napi_close_handle_scope(env, scope);
}

// Keeps State::sole in step with the set after a device joined or left it.
void UpdateSole(State* st) {
  st->sole = nullptr;
  if (st->polled != 1) return;
  for (Dev* d : st->devs)
    if (d != nullptr && d->polling) st->sole = d;
}

}  // namespace

void StartPolling(Dev* d) {
  State* st = d->st;
  if (d->polling || st == nullptr) return;
  Napi::Env env(st->env);
  if (st->onRx == nullptr) throw Napi::Error::New(env, "tapstack native: init() must be called before start()");
  if (st->epfd < 0) {
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (st->epfd < 0) throw ErrnoError(env, errno, "epoll_create1", "");
  }
  epoll_event ev;
  ev.events = EPOLLIN;
  ev.data.u64 = 0;
  ev.data.u32 = d->id;
  if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, d->fd, &ev) < 0) {
    int e = errno;
    ReleaseLoop(st);
    throw ErrnoError(env, e, "epoll_ctl", d->name);
  }
  d->polling = true;
  st->polled++;
  UpdateSole(st);
  if (st->poll == nullptr) {
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(st->env, &loop);
    uv_poll_t* h = new uv_poll_t;
    int r = uv_poll_init(loop, h, st->epfd);
    if (r == 0) {
      h->data = st;
      r = uv_poll_start(h, UV_READABLE, OnPoll);
      st->poll = h;
    } else {
      delete h;
    }
    if (r != 0) {
      StopPolling(d);
      throw ErrnoError(env, -r, "uv_poll_start", d->name);
    }
  }
}

void StopPolling(Dev* d) {
  State* st = d->st;
  if (!d->polling || st == nullptr) return;
  epoll_ctl(st->epfd, EPOLL_CTL_DEL, d->fd, nullptr);
  d->polling = false;
  st->polled--;
  UpdateSole(st);
  ReleaseLoop(st);
}

// With no device left to watch, close the uv_poll (so it no longer keeps the
// process alive) and the epoll fd. libuv drops the fd from its own set inside
// uv_close, so the epoll fd can be closed right after.
void ReleaseLoop(State* st) {
  if (st->polled > 0) return;
  if (st->poll) {
    st->closingHandles++;
    uv_close(reinterpret_cast<uv_handle_t*>(st->poll), OnClosed);
    st->poll = nullptr;
  }
  if (st->epfd >= 0) {
    close(st->epfd);
    st->epfd = -1;
  }
}

// init(onRx: (nready) => void, ready: Uint32Array): the one receive callback
// and the list it reads: ready[3i] = device id, ready[3i+1] = frames in that
// device's slots, ready[3i+2] = errno that stopped the device (0 = none).
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State* st = env.GetInstanceData<State>();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "onRx must be a function");
  if (!info[1].IsTypedArray() || info[1].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[1].As<Napi::Uint32Array>().ElementLength() < 3)
    throw Napi::TypeError::New(env, "ready must be a Uint32Array of at least 3 entries");
  if (st->onRx) napi_delete_reference(env, st->onRx);
  if (st->ready) napi_delete_reference(env, st->ready);
  napi_create_reference(env, info[0], 1, &st->onRx);
  napi_create_reference(env, info[1], 1, &st->ready);
  if (st->actx == nullptr) {
    napi_value resource = Napi::Object::New(env);
    napi_value name = Napi::String::New(env, "tapstack:rx");
    napi_async_init(env, resource, name, &st->actx);
  }
  return env.Undefined();
}

}  // namespace tapstack
