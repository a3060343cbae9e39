{
  "targets": [
    {
      "target_name": "tapstack_native",
      "sources": [
        "native/addon.cc",
        "native/device.cc",
        "native/errors.cc",
        "native/netif.cc",
        "native/rx_loop.cc",
        "native/tx_thread.cc"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")"
      ],
      "defines": [
        "NAPI_VERSION=8",
        "NAPI_CPP_EXCEPTIONS",
        "NODE_ADDON_API_DISABLE_DEPRECATED",
        "NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS"
      ],
      "cflags!": ["-fno-exceptions"],
      "ldflags": ["-pthread"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-pthread", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"]
    }
  ]
}
