# Builds only what llama-server-bench runs of llama.cpp: llama-server and llama-bench.
#
# Given to llama.cpp's CMake as -DCMAKE_PROJECT_INCLUDE=<this file> (README, docs/install.md), it is
# read right after llama.cpp's project() call, before its options are declared, so:
# - tests, examples and the all-in-one `llama` binary are off, and the web UI is not downloaded
#   during the build (the suite never opens it; the machine may have no internet): each only as a
#   default, so a -D of the user's own still wins;
# - once every directory is read, each target under tools/ and app/ other than the two is left out
#   of the default build. What the two link (llama, ggml, mtmd, the UI stub) is still built, as
#   their dependency;
# - the vision models' graph builders (tools/mtmd/models/*.cpp) compile in batches of 16, as llama.cpp
#   already compiles its own models (src/models, UNITY_BUILD): 57 s of mtmd became 34 s on 2 cores;
# - llama-common and the server compile with the standard headers they share precompiled:
#   138 s became 113 s, 74 s became 68 s.
# The same sources are compiled either way; only their shared headers are parsed fewer times. docs/install.md has
# the measured times of the whole install.
include_guard(GLOBAL)

set(LLAMA_BUILD_TESTS OFF CACHE BOOL "llama: build tests (off: llama-server-bench runs none)")
set(LLAMA_BUILD_EXAMPLES OFF CACHE BOOL "llama: build examples (off: llama-server-bench runs none)")
set(LLAMA_BUILD_APP OFF CACHE BOOL "llama: build the unified binary (off: llama-server-bench runs llama-server)")
set(LLAMA_USE_PREBUILT_UI OFF CACHE BOOL "llama: download the prebuilt UI (off: no network during the build)")

set(BENCH_LLAMA_KEEP llama-server llama-bench CACHE STRING "llama.cpp tools llama-server-bench builds")

function(_bench_lean_targets directory)
    get_property(targets DIRECTORY "${directory}" PROPERTY BUILDSYSTEM_TARGETS)
    foreach(target IN LISTS targets)
        get_target_property(type "${target}" TYPE)
        if(NOT type STREQUAL "UTILITY" AND NOT target IN_LIST BENCH_LLAMA_KEEP)
            set_target_properties("${target}" PROPERTIES EXCLUDE_FROM_ALL TRUE)
        endif()
    endforeach()
    get_property(subdirectories DIRECTORY "${directory}" PROPERTY SUBDIRECTORIES)
    foreach(subdirectory IN LISTS subdirectories)
        _bench_lean_targets("${subdirectory}")
    endforeach()
endfunction()

function(_bench_lean_build)
    foreach(top IN ITEMS tools app)
        if(IS_DIRECTORY "${CMAKE_SOURCE_DIR}/${top}")
            get_property(known DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY SUBDIRECTORIES)
            if("${CMAKE_SOURCE_DIR}/${top}" IN_LIST known)
                _bench_lean_targets("${CMAKE_SOURCE_DIR}/${top}")
            endif()
        endif()
    endforeach()
    message(STATUS "llama-server-bench: building ${BENCH_LLAMA_KEEP} of llama.cpp's tools")
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _bench_lean_build)


function(_bench_compile_once)
    if(TARGET mtmd)
        get_target_property(sources mtmd SOURCES)
        set(batched 0)
        foreach(source IN LISTS sources)
            if(NOT source MATCHES "^models/.*[.]cpp$")
                set_source_files_properties("${CMAKE_SOURCE_DIR}/tools/mtmd/${source}"
                    DIRECTORY "${CMAKE_SOURCE_DIR}/tools/mtmd" PROPERTIES SKIP_UNITY_BUILD_INCLUSION ON)
            else()
                math(EXPR batched "${batched} + 1")
            endif()
        endforeach()
        if(batched GREATER 0)
            set_target_properties(mtmd PROPERTIES UNITY_BUILD ON UNITY_BUILD_BATCH_SIZE 16)
        endif()
    endif()
    set(shared_headers <vector> <string> <algorithm> <map> <set> <sstream> <functional> <memory> <optional>
        <unordered_map> <thread> <mutex> <chrono>)
    if(TARGET llama-common)
        target_precompile_headers(llama-common PRIVATE ${shared_headers} <regex> <fstream> <filesystem>)
    endif()
    foreach(target IN ITEMS server-context llama-server-impl)
        if(TARGET ${target})
            target_precompile_headers(${target} PRIVATE ${shared_headers} <condition_variable> <atomic> <deque>)
        endif()
    endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _bench_compile_once)
