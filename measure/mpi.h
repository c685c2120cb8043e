// The MPI job this process is a rank of (`mpirun -n N tessera tune ...`), as a Transport
// (measure/cluster.h): messages are JSON text on MPI_COMM_WORLD, sent with MPI_Isend and
// received by polling (MPI_Iprobe), so that no call waits on another rank. Errors return
// (MPI_ERRORS_RETURN) instead of aborting the job: a send to a rank that is gone fails that
// send only.
//
// Built only with TESSERA_ENABLE_MPI (Open MPI's libmpi); without it join() is a UserError that
// says the build has no MPI.
#pragma once

#include <memory>
#include <string>

#include "measure/cluster.h"

namespace tessera::measure {

class MpiTransport : public Transport {
 public:
  /// Joins the job (MPI_Init_thread, serialized threads). A UserError in a build without MPI.
  static std::unique_ptr<MpiTransport> join();

  /// Leaves the job: MPI_Finalize when `finalize`, which waits for every rank (so only when all
  /// of them are still there); else leaves without it. Called once; the destructor leaves
  /// without MPI_Finalize if it was not.
  virtual void leave(bool finalize) = 0;
};

/// Whether this build has MPI.
bool mpi_built();
/// The MPI library this build uses ("Open MPI v4.1.4, ..."), or "built without MPI".
std::string mpi_library_version();

}  // namespace tessera::measure
