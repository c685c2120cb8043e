# Shared by scripts/*.sh (sourced): where CUDA is, whether a GPU is present, how to build.

TESSERA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# The CUDA toolkit root ($CUDA_HOME, else /usr/local/cuda), or nothing if it has no nvcc.
tessera_cuda_home() {
  local home="${CUDA_HOME:-/usr/local/cuda}"
  if [ -x "$home/bin/nvcc" ]; then echo "$home"; fi
}

# True when a GPU and its driver are usable here.
tessera_gpu_present() {
  command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU '
}

# tessera_build BUILD_DIR [extra cmake args...]: configure a release build (CUDA on when the
# toolkit is there) and build it with $TESSERA_JOBS jobs (default 2, CI's core count); only the
# targets in $TESSERA_BUILD_TARGETS (space-separated) when it is set.
tessera_build() {
  local dir="$1"
  shift
  local cuda
  cuda="$(tessera_cuda_home)"
  local args=(-DCMAKE_BUILD_TYPE=Release -DTESSERA_WERROR=ON)
  # A build directory keeps the generator it was first configured with.
  if [ ! -f "$dir/CMakeCache.txt" ] && command -v ninja >/dev/null 2>&1; then args+=(-G Ninja); fi
  if [ -n "$cuda" ]; then
    args+=(-DTESSERA_ENABLE_CUDA=ON "-DCUDAToolkit_ROOT=$cuda")
  else
    args+=(-DTESSERA_ENABLE_CUDA=OFF)
  fi
  cmake -S "$TESSERA_ROOT" -B "$dir" "${args[@]}" "$@"
  local targets=()
  # shellcheck disable=SC2206
  [ -n "${TESSERA_BUILD_TARGETS:-}" ] && targets=(--target ${TESSERA_BUILD_TARGETS})
  cmake --build "$dir" -j "${TESSERA_JOBS:-2}" "${targets[@]}"
}

# tessera_gpu_mpi: on the lent GPU machine, install Open MPI from .gpu-deps/mpi/ (dpkg -i, as
# root) when mpirun is missing, so that the build finds MPI (TESSERA_ENABLE_MPI) and mpirun runs.
tessera_gpu_mpi() {
  command -v mpirun >/dev/null 2>&1 && return 0
  if command -v mpirun.openmpi >/dev/null 2>&1; then ln -sf "$(command -v mpirun.openmpi)" /usr/local/bin/mpirun; return 0; fi
  if ! ls "$TESSERA_ROOT"/.gpu-deps/mpi/*.deb >/dev/null 2>&1; then
    echo "mpirun missing and no .gpu-deps/mpi/ (run scripts/fetch-gpu-deps.sh here and carry .gpu-deps)" >&2
    return 1
  fi
  dpkg -i --force-depends "$TESSERA_ROOT"/.gpu-deps/mpi/*.deb >/dev/null 2>&1 || true
  command -v mpirun >/dev/null 2>&1 || ln -sf /usr/bin/mpirun.openmpi /usr/local/bin/mpirun
  command -v mpirun >/dev/null 2>&1 || { echo "Open MPI did not install from .gpu-deps/mpi/" >&2; return 1; }
}

# tessera_gpu_build BUILD_DIR: on the lent GPU machine (no package registry there), unpack
# the Debian packages of .gpu-deps/ (scripts/fetch-gpu-deps.sh, carried along) into
# /opt/tessera-deps when the build's dependencies are missing, then build a CUDA release into
# BUILD_DIR with every core. Exports LD_LIBRARY_PATH for the binaries and writes it to
# BUILD_DIR.env (`source build/gpu.env` to run them by hand). Log: BUILD_DIR.log.
tessera_gpu_build() {
  local build="$1"
  # The tests that read Debian's ONNX test data (libonnx-testdata) are CPU-only (CI runs
  # them); that machine does not have it.
  # Warnings are errors on the project's compiler (Debian's GCC 12, as on CI); that machine's
  # GCC 13 warns where it does not (a false -Wfree-nonheap-object in graph/ops_indexing.cc), so
  # there they stay warnings.
  local prefix_args=(-DTESSERA_ONNX_TESTS=OFF -DTESSERA_WERROR=OFF)
  if [ ! -f /usr/include/nlohmann/json.hpp ] || [ ! -f /usr/include/xgboost/c_api.h ] || [ ! -d /usr/include/eigen3 ] ||
     [ ! -f /usr/include/onnx/onnx_pb.h ] || [ ! -d /usr/include/boost/graph ]; then
    if ! ls "$TESSERA_ROOT"/.gpu-deps/*.deb >/dev/null 2>&1; then
      echo "build dependencies missing and no .gpu-deps/ (run scripts/fetch-gpu-deps.sh here and carry it)" >&2
      return 1
    fi
    local deps=/opt/tessera-deps f
    for f in "$TESSERA_ROOT"/.gpu-deps/*.deb; do dpkg -x "$f" "$deps"; done
    export LD_LIBRARY_PATH="$deps/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export PATH="$deps/usr/bin:$PATH"
    prefix_args+=("-DCMAKE_PREFIX_PATH=$deps/usr;$deps/usr/lib/x86_64-linux-gnu/cmake" "-DSQLite3_INCLUDE_DIR=$deps/usr/include"
                 "-DSQLite3_LIBRARY=$deps/usr/lib/x86_64-linux-gnu/libsqlite3.so"
                 "-DProtobuf_INCLUDE_DIR=$deps/usr/include" "-DProtobuf_LIBRARY=$deps/usr/lib/x86_64-linux-gnu/libprotobuf.so"
                 "-DProtobuf_PROTOC_EXECUTABLE=$deps/usr/bin/protoc" "-DBoost_INCLUDE_DIR=$deps/usr/include")
    echo "unpacked $(ls "$TESSERA_ROOT"/.gpu-deps/*.deb | wc -l) Debian packages into $deps"
  fi
  mkdir -p "$(dirname "$build")"
  echo "export LD_LIBRARY_PATH=\"${LD_LIBRARY_PATH:-}\"" >"$build.env"
  if ! TESSERA_JOBS="${TESSERA_JOBS:-$(nproc)}" tessera_build "$build" "${prefix_args[@]}" >"$build.log" 2>&1; then
    tail -n 60 "$build.log"
    echo "build failed (log: $build.log)" >&2
    return 1
  fi
}
