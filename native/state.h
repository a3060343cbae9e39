#pragma once
#include <napi.h>
#include <net/if.h>
#include <uv.h>

#include <atomic>
#include <cstdint>
#include <vector>

namespace tapstack {

struct State;
struct TxWriter;

// One open TAP/TUN file descriptor. It belongs to its JS handle object
// (DeviceHandle); State indexes the open ones by id, the number that names
// a device in epoll events and to the receive callback.
struct Dev {
  State* st = nullptr;
  uint32_t id = 0;
  int fd = -1;               // -1 once closed
  bool tap = true;
  uint32_t vnetLen = 0;      // virtio_net_hdr bytes in front of each frame; 0 = off
  // Receive slot bytes before the frame (0: frame at the slot's start and the
  // virtio_net_hdr read to scratch). When set, the header is read into the
  // slot right before the frame, where JS reads it (and may send it on).
  uint32_t rxHeadroom = 0;
  // Written frames already start with their virtio_net_hdr (built by JS);
  // otherwise a zeroed header is written in front of each.
  bool txHdrInline = false;
  bool polling = false;      // member of the epoll set
  uint32_t slots = 0;        // frames read per device per wakeup, at most
  uint32_t slotSize = 0;     // bytes per receive slot = largest frame delivered
  napi_ref rxBuf = nullptr;  // ArrayBuffer of RxBufferBytes(slots, slotSize), owned by JS
  uint64_t rxOversize = 0;   // frames dropped because they did not fit a slot
  char name[IFNAMSIZ] = {0}; // name the kernel gave at open

  // Transmit thread (tx_thread.cc). With txThread on, a batch of at least
  // txMinBatch frames of at most txMaxMean bytes on average, or any frame
  // while some of this device's are still queued, is copied to the State's
  // ring and written by its writer thread.
  // Counters are the writer's; JS reads them (txStats).
  bool txThread = false;
  uint32_t txMinBatch = 2;
  uint32_t txMaxMean = 4096;            // larger frames on average: written directly
  // Frames the last receive wakeup read from this device. Four or more
  // (kRxBusy) say the JS thread is behind (requests queue up): then even a
  // single small frame goes to the ring, since replies then leave one by one
  // (node:http writes them after the batch) and the writer takes their kernel
  // work. Fewer say the peer waits for each answer (ping, one connection):
  // written directly.
  uint32_t rxLast = 0;
  std::atomic<uint32_t> txPending{0};   // this device's frames in the ring
  std::atomic<bool> txDiscard{false};   // closing: the writer skips its frames
  uint64_t txQueued = 0;                // frames put in the ring (JS thread only)
  std::atomic<uint64_t> txWritten{0};   // written by the writer
  std::atomic<uint64_t> txBusy{0};      // dropped by the writer on EAGAIN
  std::atomic<uint64_t> txLinkDown{0};  // dropped by the writer on EIO
  std::atomic<uint64_t> txErrors{0};    // dropped by the writer on another errno
  std::atomic<int> txErrno{0};          // the last of those errnos
  std::atomic<uint64_t> txDiscarded{0}; // skipped because the device closed
};

// Per Node environment (the main thread, or one worker): one epoll set for all
// of its devices and one uv_poll watching it, so a wakeup is one JS callback
// whatever the number of devices.
struct State {
  napi_env env = nullptr;
  int epfd = -1;                  // created at the first start, closed when empty
  uv_poll_t* poll = nullptr;      // watches epfd while it has members
  uint32_t polled = 0;            // devices in the epoll set
  // The set's only member while polled == 1, else nullptr: a wakeup then
  // needs no epoll_wait to learn which device is ready.
  Dev* sole = nullptr;
  std::vector<Dev*> devs;         // open devices by id; nullptr = free id
  std::vector<uint32_t> freeIds;
  // Ids freed while the receive callback runs are held back until it
  // returns: the ready list it is reading may still name them, and a device
  // opened meanwhile must not take the id of one being served.
  std::vector<uint32_t> heldIds;
  bool inCallback = false;
  napi_ref onRx = nullptr;        // JS function (id, count, errno) => void
  napi_ref ready = nullptr;       // Uint32Array of [id, count, errno] triples
  napi_async_context actx = nullptr;
  Napi::FunctionReference deviceCtor;
  uint32_t closingHandles = 0;    // uv_close calls whose callback is pending
  napi_async_cleanup_hook_handle cleanupHook = nullptr;
  bool tearingDown = false;
  TxWriter* tx = nullptr;         // the transmit thread and its ring, made at first use
};

// Bytes of a receive buffer: the frame lengths (one uint32 per slot), then
// the slots.
inline uint64_t RxBufferBytes(uint32_t slots, uint32_t slotSize) {
  return static_cast<uint64_t>(slots) * (4 + static_cast<uint64_t>(slotSize));
}

// rx_loop.cc
void StartPolling(Dev* d);  // throws Napi::Error
void StopPolling(Dev* d);  // leave the epoll set; the last one out releases it
void ReleaseLoop(State* st);  // close the uv_poll and epoll fd if no device is in the set
Napi::Value Init(const Napi::CallbackInfo& info);

// device.cc
Napi::Function DefineDeviceHandle(Napi::Env env, State* st);
Napi::Value Open(const Napi::CallbackInfo& info);
void CloseDev(Dev* d);  // idempotent

// tx_thread.cc (all called on the JS thread)
struct TxFrame {
  const void* data;
  size_t len;
};
void TxEnable(Dev* d, bool on, uint32_t minBatch);  // throws Napi::Error
// Copies frames to the ring in order; returns how many it took (the ring
// stayed full past the wait bound: the rest are the caller's to drop).
uint32_t TxEnqueue(Dev* d, const TxFrame* frames, uint32_t count);
// Before the fd closes: the writer skips the device's queued frames and is
// waited for, so it never writes to a closed (or reused) fd.
void TxForget(Dev* d);
void TxShutdown(State* st);  // joins the thread, frees the ring
void RegisterTx(Napi::Env env, Napi::Object exports);

// netif.cc
void RegisterNetif(Napi::Env env, Napi::Object exports);

}  // namespace tapstack
