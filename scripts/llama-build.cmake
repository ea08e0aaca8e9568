# Included by CMake after each project() of the llama.cpp build (.cargo/config.toml
# passes it to llama-cpp-sys-2's build script as CMAKE_PROJECT_INCLUDE). Both rules cut
# a new user's first build, which is CPU-bound on every core from start to end.
#
# 1. llama-cpp-2 always asks for llama.cpp's `common` library (its dependency on
# llama-cpp-sys-2 keeps that crate's default features), yet offswitch uses none of it:
# `common` (argument parsing, chat templates, downloads, JSON) and the HTTP client it
# alone needs are about half of the C++ build, minutes of a new user's first build.
# Without it, llama-cpp-2 is used with its own `common` feature off (crates/models/
# Cargo.toml), so nothing links to it.
#
# 2. llama's own sources (model loading, graph building, vocabulary, sampling chain) at
# -O1; ggml, whose kernels do the arithmetic, keeps the default -O3. Measured on two
# cores: llama's sources take 142 s of compiler CPU at -O3 and 95 s at -O1, and the
# default model's prompt and generation speeds do not change beyond run-to-run noise
# (`bench/run.sh local 0`: ~68 prompt and ~12.4 generated tokens/s either way).
# ggml is a project() of its own, added below llama.cpp's: there the override is lifted.
if(PROJECT_NAME STREQUAL "llama.cpp")
  set(LLAMA_BUILD_COMMON OFF CACHE BOOL "offswitch uses no part of llama.cpp's common library" FORCE)
  set(CMAKE_CXX_FLAGS_RELEASE "-O1 -DNDEBUG")
elseif(PROJECT_NAME STREQUAL "ggml")
  unset(CMAKE_CXX_FLAGS_RELEASE)
endif()
