#!/usr/bin/env bash
# Installs what offswitch and its tests need on a fresh Debian machine: a C compiler for
# the bundled SQLite, bash/coreutils/procps/python3 for the commands tests run inside
# sandboxes. Skips apt entirely when everything is already present.
set -euo pipefail
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v python3 >/dev/null || need+=(python3)
command -v ps >/dev/null || need+=(procps)
command -v setpriv >/dev/null || need+=(util-linux)
command -v su >/dev/null || need+=(login)
# llama.cpp (local models) is built from source: cmake, and libclang for its bindings.
command -v cmake >/dev/null || need+=(cmake)
ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1 || need+=(libclang-dev)
command -v c++ >/dev/null || need+=(g++)
if ((${#need[@]})); then
  if [ "$(id -u)" -ne 0 ]; then
    echo "offswitch needs these Debian packages: ${need[*]}; run: sudo apt-get install -y ${need[*]}" >&2
    exit 1
  fi
  echo "installing ${need[*]} ..." >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
  echo "offswitch is built with Rust (cargo 1.95 or newer); install it from your distribution or rustup" >&2
  exit 1
fi
