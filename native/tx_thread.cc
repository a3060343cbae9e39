// The transmit thread: one per Node environment (State), started when the
// first device turns txThread on. A write() to a TAP/TUN fd runs the kernel's
// receive path for the frame (tun_get_user -> netif_receive_skb -> the peer
// socket's input and wakeups) in the writer's context; done here, that work
// runs on another core than the JS thread's.
//
// The JS thread copies each frame (virtio_net_hdr included) into a byte ring
// and publishes it; the writer writes the frames in ring order, one write()
// each. Single-producer, single-consumer: `head` is advanced by the JS thread
// only, `tail` by the writer only. A record is a 16-byte header (device, frame
// length, kind) and the frame, padded to 16 bytes; a record that would cross
// the ring's end is placed at its start behind a wrap marker.
//
// Sleeping and waking use futexes: the writer sleeps on `sleeping` when the
// ring is empty and the JS thread wakes it after publishing; the JS thread
// sleeps on `progress` (ring full, device closing) and the writer bumps it
// after each frame while someone waits.
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "errors.h"
#include "state.h"

namespace tapstack {

struct TxWriter {
  uint8_t* buf = nullptr;
  uint64_t cap = 0;          // bytes, a multiple of 16
  uint64_t published = 0;    // JS thread's copy of head
  uint32_t waitUs = 0;       // how long a full ring may hold up the JS thread
  alignas(64) std::atomic<uint64_t> head{0};  // bytes published (JS thread)
  alignas(64) std::atomic<uint64_t> tail{0};  // bytes done (writer)
  alignas(64) std::atomic<uint32_t> sleeping{0};
  std::atomic<uint32_t> progress{0};
  std::atomic<uint32_t> waiters{0};
  std::atomic<bool> stop{false};
  std::atomic<bool> hold{false};  // txHold(): the writer leaves the ring alone
  std::thread thread;
};

namespace {

constexpr uint32_t kFrame = 0;
constexpr uint32_t kWrap = 1;

struct Rec {
  Dev* dev;
  uint32_t len;   // bytes written: virtio_net_hdr (if any) and frame
  uint32_t kind;
};
static_assert(sizeof(Rec) == 16, "ring records are 16-byte aligned");

// Defaults: 4 MiB holds 64 TSO super-frames or thousands of MTU frames; the
// wait bound is what a blocked write() could have cost the JS thread anyway.
constexpr uint64_t kDefaultRing = 4u << 20;
constexpr uint32_t kDefaultWaitUs = 4000;

const uint8_t kZeros[16] = {0};

long Futex(std::atomic<uint32_t>* a, int op, uint32_t val, const timespec* ts) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(a), op | FUTEX_PRIVATE_FLAG, val, ts, nullptr, 0);
}

uint64_t Align16(uint64_t n) { return (n + 15) & ~static_cast<uint64_t>(15); }

uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000 + static_cast<uint64_t>(ts.tv_nsec) / 1000;
}

void WriteOne(Dev* d, const uint8_t* data, uint32_t len) {
  if (d->txDiscard.load(std::memory_order_acquire)) {
    d->txDiscarded.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  ssize_t r;
  do {
    r = write(d->fd, data, len);
  } while (r < 0 && errno == EINTR);
  if (r >= 0) {
    d->txWritten.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  int e = errno;
  if (e == EAGAIN || e == EWOULDBLOCK) {
    d->txBusy.fetch_add(1, std::memory_order_relaxed);
  } else if (e == EIO) {
    // The kernel side is down (`ip link set NAME down`): as on the sync path.
    d->txLinkDown.fetch_add(1, std::memory_order_relaxed);
  } else {
    d->txErrno.store(e, std::memory_order_relaxed);
    d->txErrors.fetch_add(1, std::memory_order_relaxed);
  }
}

void WriterMain(TxWriter* w) {
  uint64_t t = w->tail.load(std::memory_order_relaxed);
  for (;;) {
    uint64_t h = w->head.load(std::memory_order_acquire);
    if (t == h || w->hold.load(std::memory_order_acquire)) {
      if (w->stop.load(std::memory_order_acquire)) break;
      // Announce the sleep, then look once more: the JS thread publishes
      // before it reads `sleeping`, so one of us sees the other.
      w->sleeping.store(1, std::memory_order_seq_cst);
      if (w->stop.load(std::memory_order_seq_cst) ||
          (w->head.load(std::memory_order_seq_cst) != t && !w->hold.load(std::memory_order_seq_cst))) {
        w->sleeping.store(0, std::memory_order_relaxed);
        continue;
      }
      Futex(&w->sleeping, FUTEX_WAIT, 1, nullptr);
      continue;
    }
    while (t != h) {
      // buf and cap change only while the ring is empty (TxEnable), before
      // a head store that the acquire above has seen.
      uint64_t off = t % w->cap;
      Rec* r = reinterpret_cast<Rec*>(w->buf + off);
      Dev* d = nullptr;
      if (r->kind == kWrap) {
        t += w->cap - off;
      } else {
        d = r->dev;
        WriteOne(d, reinterpret_cast<uint8_t*>(r + 1), r->len);
        t += Align16(sizeof(Rec) + r->len);
      }
      w->tail.store(t, std::memory_order_seq_cst);
      // The device may be closed and freed as soon as its count reaches 0:
      // this is the last touch.
      if (d) d->txPending.fetch_sub(1, std::memory_order_seq_cst);
      if (w->waiters.load(std::memory_order_seq_cst) != 0) {
        w->progress.fetch_add(1, std::memory_order_seq_cst);
        Futex(&w->progress, FUTEX_WAKE, INT_MAX, nullptr);
      }
      if (w->hold.load(std::memory_order_relaxed)) break;
    }
  }
}

void Publish(TxWriter* w, uint64_t pos) {
  if (pos == w->published) return;
  w->published = pos;
  w->head.store(pos, std::memory_order_seq_cst);
  if (w->sleeping.load(std::memory_order_seq_cst) != 0) {
    w->sleeping.store(0, std::memory_order_seq_cst);
    Futex(&w->sleeping, FUTEX_WAKE, 1, nullptr);
  }
}

// Sleeps until the writer makes progress or `deadlineUs` passes; `done()`
// is checked after registering as a waiter, so no wakeup is lost. Returns
// false at the deadline.
template <typename F>
bool WaitFor(TxWriter* w, uint64_t deadlineUs, F done) {
  bool ok = true;
  w->waiters.fetch_add(1, std::memory_order_seq_cst);
  for (;;) {
    uint32_t seq = w->progress.load(std::memory_order_seq_cst);
    if (done()) break;
    uint64_t now = NowUs();
    if (now >= deadlineUs) {
      ok = false;
      break;
    }
    uint64_t left = deadlineUs - now;
    timespec ts = {static_cast<time_t>(left / 1000000), static_cast<long>((left % 1000000) * 1000)};
    Futex(&w->progress, FUTEX_WAIT, seq, &ts);
  }
  w->waiters.fetch_sub(1, std::memory_order_seq_cst);
  return ok;
}

TxWriter* StartWriter(State* st) {
  if (st->tx) return st->tx;
  TxWriter* w = new TxWriter;
  w->cap = kDefaultRing;
  w->waitUs = kDefaultWaitUs;
  w->buf = static_cast<uint8_t*>(aligned_alloc(64, w->cap));
  if (w->buf == nullptr) {
    delete w;
    throw Napi::Error::New(st->env, "tapstack native: cannot allocate the transmit ring");
  }
  // The thread takes no signals: they stay with the threads Node expects.
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  try {
    w->thread = std::thread(WriterMain, w);
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    free(w->buf);
    delete w;
    throw Napi::Error::New(st->env, "tapstack native: cannot start the transmit thread");
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  pthread_setname_np(w->thread.native_handle(), "tapstack-tx");
  st->tx = w;
  return w;
}

// Waits until the writer is done with every queued frame of `d`.
void WaitIdle(Dev* d) {
  TxWriter* w = d->st ? d->st->tx : nullptr;
  if (w == nullptr) return;
  // A held writer would never get there: closing lifts the hold.
  if (d->txPending.load(std::memory_order_seq_cst) != 0 && w->hold.load()) {
    w->hold.store(false, std::memory_order_seq_cst);
    w->sleeping.store(0, std::memory_order_seq_cst);
    Futex(&w->sleeping, FUTEX_WAKE, 1, nullptr);
  }
  while (!WaitFor(w, NowUs() + 1000000, [d] { return d->txPending.load(std::memory_order_seq_cst) == 0; })) {
  }
}

State* StateOf(const Napi::CallbackInfo& info) { return info.Env().GetInstanceData<State>(); }

// txHold(on): a test aid. While held the writer takes no frames from the ring
// (it finishes the write it is in), so a test can fill the ring or close a
// device with frames queued. Closing a device with queued frames lifts it.
Napi::Value Hold(const Napi::CallbackInfo& info) {
  State* st = StateOf(info);
  bool on = info[0].ToBoolean().Value();
  TxWriter* w = on ? StartWriter(st) : st->tx;
  if (w) {
    w->hold.store(on, std::memory_order_seq_cst);
    if (!on) {
      w->sleeping.store(0, std::memory_order_seq_cst);
      Futex(&w->sleeping, FUTEX_WAKE, 1, nullptr);
    }
  }
  return info.Env().Undefined();
}

// txConfigure(ringBytes, waitMicros): the ring's size and how long a full
// ring may hold up a write before the rest of the batch is dropped (0: drop
// at once). Starts the thread. A new size applies if the ring is empty, else
// it throws EBUSY; the wait bound applies at once.
Napi::Value Configure(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  State* st = StateOf(info);
  double bytes = info[0].ToNumber().DoubleValue();
  double wait = info[1].ToNumber().DoubleValue();
  if (!(bytes >= 4096 && bytes <= (1u << 30)) || !(wait >= 0 && wait <= 10000000))
    throw Napi::RangeError::New(env, "ringBytes must be 4096 to 2^30, waitMicros 0 to 10^7");
  uint64_t cap = static_cast<uint64_t>(bytes) & ~static_cast<uint64_t>(63);
  TxWriter* w = StartWriter(st);
  // The same size: only the wait bound changes, frames queued or not.
  w->waitUs = static_cast<uint32_t>(wait);
  if (cap == w->cap) return env.Undefined();
  if (w->tail.load(std::memory_order_acquire) != w->published) throw ErrnoError(env, EBUSY, "txConfigure", "", "frames are queued");
  uint8_t* nb = static_cast<uint8_t*>(aligned_alloc(64, cap));
  if (nb == nullptr) throw Napi::Error::New(env, "tapstack native: cannot allocate the transmit ring");
  // The writer reads buf and cap only between tail and head: nothing now,
  // and the next head store publishes the new ones.
  free(w->buf);
  w->buf = nb;
  w->cap = cap;
  w->waitUs = static_cast<uint32_t>(wait);
  // Start the new ring at its beginning: a wrap marker takes the writer
  // there, and is waited for (unless the writer is held), so the whole ring
  // is free when this returns.
  uint64_t off = w->published % cap;
  if (off != 0) {
    Rec* r = reinterpret_cast<Rec*>(nb + off);
    r->dev = nullptr;
    r->len = 0;
    r->kind = kWrap;
    uint64_t pos = w->published + cap - off;
    Publish(w, pos);
    if (!w->hold.load()) WaitFor(w, NowUs() + 1000000, [w, pos] { return w->tail.load(std::memory_order_seq_cst) == pos; });
  }
  return env.Undefined();
}

}  // namespace

void TxEnable(Dev* d, bool on, uint32_t minBatch) {
  if (on) {
    if (d->st == nullptr) return;
    StartWriter(d->st);
    d->txMinBatch = minBatch == 0 ? 1 : minBatch;
    d->txThread = true;
  } else if (d->txThread) {
    // Frames already queued go out before later ones are written directly.
    d->txThread = false;
    WaitIdle(d);
  }
}

uint32_t TxEnqueue(Dev* d, const TxFrame* frames, uint32_t count) {
  TxWriter* w = d->st->tx;
  const uint64_t cap = w->cap;
  const uint32_t hl = d->vnetLen && !d->txHdrInline ? d->vnetLen : 0;
  uint64_t pos = w->published;
  uint64_t deadline = 0;
  uint32_t taken = 0;
  for (; taken < count; taken++) {
    const uint64_t len = hl + frames[taken].len;
    const uint64_t need = Align16(sizeof(Rec) + len);
    if (need > cap || len > UINT32_MAX) break;  // can never fit: dropped like EAGAIN
    uint64_t off = pos % cap;
    uint64_t pad = off + need > cap ? cap - off : 0;
    if (pos + pad + need - w->tail.load(std::memory_order_acquire) > cap) {
      // Full: let the writer have what is queued, and wait a bounded time.
      Publish(w, pos);
      if (deadline == 0) deadline = NowUs() + w->waitUs;
      bool room = WaitFor(w, deadline, [&] { return pos + pad + need - w->tail.load(std::memory_order_seq_cst) <= cap; });
      if (!room) break;
    }
    if (pad) {
      Rec* wrap = reinterpret_cast<Rec*>(w->buf + off);
      wrap->dev = nullptr;
      wrap->len = 0;
      wrap->kind = kWrap;
      pos += pad;
      off = 0;
    }
    Rec* r = reinterpret_cast<Rec*>(w->buf + off);
    r->dev = d;
    r->len = static_cast<uint32_t>(len);
    r->kind = kFrame;
    uint8_t* p = reinterpret_cast<uint8_t*>(r + 1);
    if (hl) memcpy(p, kZeros, hl);
    memcpy(p + hl, frames[taken].data, frames[taken].len);
    pos += need;
    d->txPending.fetch_add(1, std::memory_order_relaxed);  // published by the head store
  }
  d->txQueued += taken;
  Publish(w, pos);
  return taken;
}

void TxForget(Dev* d) {
  if (d->txPending.load(std::memory_order_seq_cst) == 0) return;
  d->txDiscard.store(true, std::memory_order_seq_cst);
  WaitIdle(d);
}

void TxShutdown(State* st) {
  TxWriter* w = st->tx;
  if (w == nullptr) return;
  w->hold.store(false, std::memory_order_seq_cst);
  w->stop.store(true, std::memory_order_seq_cst);
  w->sleeping.store(0, std::memory_order_seq_cst);
  Futex(&w->sleeping, FUTEX_WAKE, 1, nullptr);
  w->thread.join();
  free(w->buf);
  delete w;
  st->tx = nullptr;
}

void RegisterTx(Napi::Env env, Napi::Object exports) {
  exports.Set("txHold", Napi::Function::New<Hold>(env, "txHold"));
  exports.Set("txConfigure", Napi::Function::New<Configure>(env, "txConfigure"));
}

}  // namespace tapstack
