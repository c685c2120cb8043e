// The tessera executable: registers every module's subcommands and turns errors into one
// line on stderr and an exit code (2: bad input, 1: a failing library call, 70: a bug).
#include <exception>
#include <iostream>

#include "cli/command.h"
#include "core/error.h"
#include "core/version.h"
#include "costmodel/xgboost.h"
#include "db/sqlite.h"
#include "kernels/nvrtc.h"
#include "measure/devices.h"
#include "measure/mpi.h"

int main(int argc, char** argv) {
  using namespace tessera;
  try {
    cli::CommandRegistry registry;
    registry.version_details = [] {
      std::string cuda = kCudaEnabled ? "CUDA toolkit " + kernels::nvrtc_version() + ", runtime " +
                                            measure::cuda_runtime_version() + " (static)"
                                      : std::string("built without CUDA support");
      return cuda + "; SQLite " + db::sqlite_version() + "; XGBoost " + costmodel::xgboost_version() + "; " +
             measure::mpi_library_version();
    };
    cli::register_core_commands(registry);
    cli::register_db_commands(registry);
    cli::register_measure_commands(registry);
    cli::register_tune_commands(registry);
    cli::register_model_commands(registry);
    cli::register_graph_commands(registry);
    return registry.dispatch(argc, argv);
  } catch (const UserError& e) {
    // Messages carry users' inputs: one line, however long or broken the input was.
    std::cerr << "tessera: error: " << one_line(e.what()) << "\n";
    return cli::kExitUsage;
  } catch (const ApiError& e) {
    std::cerr << "tessera: " << one_line(e.what()) << "\n";
    return 1;
  } catch (const InternalError& e) {
    std::cerr << "tessera: " << one_line(e.what(), 2000) << " (please report this bug)\n";
    return 70;
  } catch (const std::exception& e) {
    std::cerr << "tessera: error: " << one_line(e.what()) << "\n";
    return 1;
  }
}
