// A build without MPI (TESSERA_ENABLE_MPI off): the same functions, saying so.
#include "core/error.h"
#include "measure/mpi.h"

namespace tessera::measure {

std::unique_ptr<MpiTransport> MpiTransport::join() {
  throw UserError(
      "tessera was built without MPI, and this process is one of " + std::to_string(launched_ranks()) +
      " ranks started by mpirun: rebuild with MPI (libopenmpi-dev, -DTESSERA_ENABLE_MPI=ON) or run one "
      "process");
}

bool mpi_built() {
  return false;
}

std::string mpi_library_version() {
  return "built without MPI";
}

}  // namespace tessera::measure
