# Included by CMake after each project() of the llama.cpp build (.cargo/config.toml
# passes it to llama-cpp-sys-2's build script as CMAKE_PROJECT_INCLUDE).
#
# llama-cpp-2 always asks for llama.cpp's `common` library (its dependency on
# llama-cpp-sys-2 keeps that crate's default features), yet offswitch uses none of it:
# `common` (argument parsing, chat templates, downloads, JSON) and the HTTP client it
# alone needs are about half of the C++ build, minutes of a new user's first build.
# Without it, llama-cpp-2 is used with its own `common` feature off (crates/models/
# Cargo.toml), so nothing links to it.
if(PROJECT_NAME STREQUAL "llama.cpp")
  set(LLAMA_BUILD_COMMON OFF CACHE BOOL "offswitch uses no part of llama.cpp's common library" FORCE)
endif()
