// The receive path: every started device fd sits in one epoll set per Node
// environment, and one uv_poll watches that set. A wakeup reads up to `slots`
// frames from each ready device straight into the receive buffer JS gave at
// open (frame lengths at its front), then makes a single JS call for all of
// them: onRx(id, count, errno) when one device got frames, or
// onRx(-1, nready, 0) with [id, count, errno] triples in the ready list.
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

// The uv_poll is freed here, once libuv is done with it.
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
    if (d->rxHeadroom) {
      // The header lands right before the frame, inside the slot: JS reads
      // it there, and a forwarded frame carries it in its headroom.
      const size_t room = d->rxHeadroom;
      iovec iov[3] = {{slot + room - d->vnetLen, d->vnetLen}, {slot + room, slotSize - room}, {&spill, 1}};
      r = readv(d->fd, d->vnetLen ? iov : iov + 1, d->vnetLen ? 3 : 2);
      if (r >= 0) {
        r -= d->vnetLen;
        if (static_cast<size_t>(r) > slotSize - room) {
          d->rxOversize++;
          continue;
        }
      }
    } else if (d->vnetLen) {
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
  d->rxLast = count;
  return count;
}

// One frame-bearing device of a wakeup.
struct Served {
  uint32_t id, count, err;
};

// The ready list's capacity in devices (0 when it is gone) and its memory.
uint32_t ReadyList(napi_env env, State* st, uint32_t** out) {
  napi_value v;
  napi_typedarray_type type;
  size_t len = 0;
  void* data = nullptr;
  if (st->ready == nullptr || napi_get_reference_value(env, st->ready, &v) != napi_ok ||
      napi_get_typedarray_info(env, v, &type, &len, &data, nullptr, nullptr) != napi_ok || data == nullptr)
    return 0;
  *out = static_cast<uint32_t*>(data);
  return static_cast<uint32_t>(std::min<size_t>(kMaxEvents, len / 3));
}

void OnPoll(uv_poll_t* h, int status, int events) {
  State* st = static_cast<State*>(h->data);
  if (st->poll != h || st->epfd < 0) return;
  napi_env env = st->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  epoll_event evs[kMaxEvents];
  uint32_t* ready = nullptr;
  int n;
  if (st->sole != nullptr) {
    // One device in the set: the wakeup says it is the ready one, so spare
    // the epoll_wait (a syscall per wakeup). Should the wakeup be stale, the
    // read finds nothing and no JS call is made.
    evs[0].data.u64 = 0;
    evs[0].data.u32 = st->sole->id;
    n = 1;
  } else {
    // Never ask for more devices than the ready list can report: a device
    // whose frames were read must be reported in this callback.
    int maxEv = static_cast<int>(ReadyList(env, st, &ready));
    if (maxEv == 0) {
      // The ready list was detached: nothing can be reported, and leaving
      // the devices in the set would spin. Stop them all and say why.
      for (Dev* d : std::vector<Dev*>(st->devs))
        if (d) StopPolling(d);
      napi_value msg, err;
      napi_create_string_utf8(env, "tapstack: receive ready list is gone (detached ArrayBuffer)", NAPI_AUTO_LENGTH, &msg);
      napi_create_error(env, nullptr, msg, &err);
      napi_fatal_exception(env, err);
      napi_close_handle_scope(env, scope);
      return;
    }
    do {
      n = epoll_wait(st->epfd, evs, maxEv, 0);
    } while (n < 0 && errno == EINTR);
  }

  Served served[kMaxEvents];
  uint32_t nready = 0;
  for (int i = 0; i < n; i++) {
    uint32_t id = evs[i].data.u32;
    Dev* d = id < st->devs.size() ? st->devs[id] : nullptr;
    if (d == nullptr || !d->polling) continue;
    int err = 0;
    uint32_t count = ReadBurst(env, d, &err);
    if (count == 0 && err == 0) continue;
    served[nready++] = {id, count, static_cast<uint32_t>(err)};
    // A broken fd (device deleted: EBADFD) stays readable forever under
    // level-triggered epoll; take it out and let JS decide.
    if (err) StopPolling(d);
  }
  if (nready == 0) {
    napi_close_handle_scope(env, scope);
    return;
  }

  napi_value cb, recv, args[3], result;
  napi_get_reference_value(env, st->onRx, &cb);
  napi_get_global(env, &recv);  // node::MakeCallback wants an object receiver
  if (nready == 1) {
    // The common case, one device: its numbers as arguments, no list.
    napi_create_uint32(env, served[0].id, &args[0]);
    napi_create_uint32(env, served[0].count, &args[1]);
    napi_create_uint32(env, served[0].err, &args[2]);
  } else {
    // `ready` was looked up above: nready > 1 only comes from epoll_wait.
    for (uint32_t i = 0; i < nready; i++) {
      ready[3 * i] = served[i].id;
      ready[3 * i + 1] = served[i].count;
      ready[3 * i + 2] = served[i].err;
    }
    napi_create_int32(env, -1, &args[0]);
    napi_create_uint32(env, nready, &args[1]);
    napi_create_uint32(env, 0, &args[2]);
  }
  // make_callback (not call_function) so nextTicks and promise jobs queued
  // by the receivers run before we return to the event loop. Devices may be
  // closed, even collected, by the time it returns, and the uv_poll closed.
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
  ev.events = EPOLLIN;  // level-triggered: slots filled, read again next wakeup
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
      st->poll = h;
      r = uv_poll_start(h, UV_READABLE, OnPoll);
    } else {
      delete h;
    }
    if (r != 0) {
      StopPolling(d);  // the set is empty again: closes what was made
      throw ErrnoError(env, -r, "uv_poll_start", d->name);
    }
  }
}

// Before the fd is closed too (CloseDev): a closed fd would stay in the set
// as long as another fd shares its open file, and its events with it.
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

// init(onRx: (id, count, errno) => void, ready?: Uint32Array) -> ready: the
// one receive callback and the list it reads. Each wakeup makes one call:
// with one device served, its id, the frames now in its slots and the errno
// that stopped it (0 = none); with several, (-1, nready, 0) and for i <
// nready ready[3i] = id, ready[3i+1] = frames, ready[3i+2] = errno. Without
// `ready` the addon makes a list for 64 devices; either way it is returned.
Napi::Value Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State* st = env.GetInstanceData<State>();
  if (!info[0].IsFunction()) throw Napi::TypeError::New(env, "onRx must be a function");
  Napi::Value ready = info[1];
  if (ready.IsUndefined()) {
    ready = Napi::Uint32Array::New(env, 3 * kMaxEvents);
  } else if (!ready.IsTypedArray() || ready.As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
             ready.As<Napi::Uint32Array>().ElementLength() < 3) {
    throw Napi::TypeError::New(env, "ready must be a Uint32Array of at least 3 entries");
  }
  if (st->onRx) napi_delete_reference(env, st->onRx);
  if (st->ready) napi_delete_reference(env, st->ready);
  napi_create_reference(env, info[0], 1, &st->onRx);
  napi_create_reference(env, ready, 1, &st->ready);
  if (st->actx == nullptr) {
    napi_value resource = Napi::Object::New(env);
    napi_value name = Napi::String::New(env, "tapstack:rx");
    napi_async_init(env, resource, name, &st->actx);
  }
  return ready;
}

}  // namespace tapstack
