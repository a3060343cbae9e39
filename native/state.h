#pragma once
#include <napi.h>
#include <net/if.h>
#include <uv.h>

#include <cstdint>
#include <vector>

namespace tapstack {

struct State;

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

// netif.cc
void RegisterNetif(Napi::Env env, Napi::Object exports);

}  // namespace tapstack
