#!/usr/bin/env bash
# Installs every Debian package Tessera's build and tests need (only those missing, so it
# is cheap to run again) and says whether the CUDA toolkit is there.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

packages=(
  g++ cmake ninja-build ccache pkg-config binutils python3
  nlohmann-json3-dev libsqlite3-dev sqlite3
  libxgboost-dev xgboost          # xgboost: its CMake config names /usr/bin/xgboost
  libeigen3-dev libboost-graph-dev
  libgtest-dev libgmock-dev
  libonnx-dev libprotobuf-dev protobuf-compiler
  libonnx-testdata                # ONNX node conformance cases for the CPU reference
  chromium-headless-shell         # Debian's headless Chromium: renders `tessera report` in a test
  libopenmpi-dev openmpi-bin      # Open MPI: `mpirun -n N tessera tune` and its tests
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then sudo=(sudo); fi
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: all ${#packages[@]} Debian packages present"
fi

cuda="$(tessera_cuda_home)"
if [ -n "$cuda" ]; then
  echo "setup: CUDA toolkit at $cuda ($("$cuda/bin/nvcc" --version | grep -o 'release [0-9.]*'))"
else
  echo "setup: no CUDA toolkit at ${CUDA_HOME:-/usr/local/cuda} (set CUDA_HOME to point at one);" \
       "building without CUDA: no NVRTC compilation and no GPU measurement"
fi
if tessera_gpu_present; then
  echo "setup: GPU present: $(nvidia-smi -L | head -n 1)"
else
  echo "setup: no GPU present: everything but measurement works"
fi
