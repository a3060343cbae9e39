// Module entry: per-environment state and its teardown.
#include <napi.h>

#include <cerrno>

#include "errors.h"
#include "state.h"

namespace tapstack {

namespace {

// Environment teardown (process end, worker exit): close every device still
// open, drop our references while the env can still take them, and close
// the uv_poll. Node waits for the hook to be removed, which happens once the
// handle's close callback has run (OnClosed in rx_loop.cc), so the State is
// freed there and not by napi's instance-data finalizer.
void Teardown(napi_async_cleanup_hook_handle hook, void* arg) {
  State* st = static_cast<State*>(arg);
  st->cleanupHook = hook;
  for (Dev* d : std::vector<Dev*>(st->devs))
    if (d) CloseDev(d);
  TxShutdown(st);
  ReleaseLoop(st);
  if (st->onRx) napi_delete_reference(st->env, st->onRx);
  if (st->ready) napi_delete_reference(st->env, st->ready);
  st->onRx = st->ready = nullptr;
  if (st->actx) napi_async_destroy(st->env, st->actx);
  st->actx = nullptr;
  st->deviceCtor.Reset();
  st->tearingDown = true;
  if (st->closingHandles == 0) {
    delete st;
    napi_remove_async_cleanup_hook(hook);
  }
}

void KeepState(Napi::Env, State*) {}

// errnoError(errno, syscall, subject): the same Error shape the addon throws,
// for errors JS learns about as numbers (the receive callback's errno).
Napi::Value MakeErrnoError(const Napi::CallbackInfo& info) {
  int err = info[0].ToNumber().Int32Value();
  if (err < 0) err = -err;
  std::string syscall = info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "read";
  std::string subject = info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "";
  return ErrnoError(info.Env(), err, syscall.c_str(), subject).Value();
}

Napi::Object ModuleInit(Napi::Env env, Napi::Object exports) {
  State* st = env.GetInstanceData<State>();
  if (st == nullptr) {
    st = new State;
    st->env = env;
    // No finalizer: Teardown frees the State once the uv_poll is closed.
    env.SetInstanceData<State, KeepState>(st);
    if (napi_add_async_cleanup_hook(env, Teardown, st, nullptr) != napi_ok)
      throw Napi::Error::New(env, "tapstack native: cannot register cleanup hook");
    st->deviceCtor = Napi::Persistent(DefineDeviceHandle(env, st));
  }
  exports.Set("init", Napi::Function::New<Init>(env, "init"));
  exports.Set("open", Napi::Function::New<Open>(env, "open"));
  exports.Set("errnoError", Napi::Function::New<MakeErrnoError>(env, "errnoError"));
  RegisterNetif(env, exports);
  RegisterTx(env, exports);
  return exports;
}

}  // namespace

}  // namespace tapstack

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return tapstack::ModuleInit(env, exports); }

NODE_API_MODULE(tapstack_native, InitModule)
