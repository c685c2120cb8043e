#!/usr/bin/env bash
# Run here (not on the GPU machine): downloads the Debian packages the build needs that the
# lent GPU machine's image lacks, into .gpu-deps/ (git-ignored). Carry that folder to the
# device (carry: [".gpu-deps"]); scripts/gpu-check.sh unpacks it into a private prefix.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .gpu-deps
cd .gpu-deps
rm -f ./*.deb
apt-get download -qq \
  nlohmann-json3-dev libsqlite3-dev libsqlite3-0 \
  libxgboost-dev libxgboost0 xgboost libdmlc0 \
  libgtest-dev libgmock-dev googletest libeigen3-dev \
  libonnx-dev libonnx1 libonnxifi libprotobuf-dev libprotobuf32 libprotobuf-lite32 protobuf-compiler libprotoc32 \
  libboost1.74-dev libboost-graph1.74-dev
# Open MPI and its libraries, for `mpirun` runs on the GPU machine (issue 29): installed there
# with `dpkg -i` (scripts/lib.sh's tessera_gpu_mpi), not unpacked into the private prefix, since
# Open MPI and PMIx find their components at their packaged paths.
mkdir -p mpi
rm -f mpi/*.deb
(cd mpi && apt-get download -qq \
  openmpi-bin openmpi-common libopenmpi3 libopenmpi-dev libpmix2 libhwloc15 libhwloc-plugins \
  libevent-2.1-7 libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1 \
  libpsm2-2 libpsm-infinipath1 libnl-3-200 libnl-route-3-200 libmunge2 libxnvctrl0 libnuma1 libltdl7)
ls -1 ./*.deb | wc -l | xargs echo "fetch-gpu-deps: packages in .gpu-deps:"
du -sh . | cut -f1 | xargs echo "fetch-gpu-deps: size:"
