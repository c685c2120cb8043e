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
# toolkit is there) and build it with $TESSERA_JOBS jobs (default 2, CI's core count).
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
  cmake --build "$dir" -j "${TESSERA_JOBS:-2}"
}
