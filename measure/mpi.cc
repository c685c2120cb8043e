// MpiTransport over Open MPI. Every message is received in two steps, a matched probe
// (MPI_Improbe) and a nonblocking receive of what it matched (MPI_Imrecv), so that a large
// message whose sender dies halfway never holds the caller; messages from one rank come out in
// the order it sent them.
#include "measure/mpi.h"

#include <mpi.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <list>
#include <optional>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/error.h"

/// Runs an MPI call that must succeed; anything else throws ApiError with MPI's error text.
#define TESSERA_MPI_CALL(call)                                                                       \
  do {                                                                                               \
    int tessera_mpi_rc_ = (call);                                                                    \
    if (tessera_mpi_rc_ != MPI_SUCCESS) throw_mpi_error(tessera_mpi_rc_, #call, __FILE__, __LINE__); \
  } while (false)

namespace tessera::measure {
namespace {

constexpr int kTag = 2901;  // Tessera's messages on MPI_COMM_WORLD

std::string mpi_error_text(int rc) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(rc, text, &length) != MPI_SUCCESS) return "MPI error " + std::to_string(rc);
  return std::string(text, static_cast<size_t>(length));
}

[[noreturn]] void throw_mpi_error(int rc, const char* call, const char* file, int line) {
  throw ApiError("MPI", call, mpi_error_text(rc), file, line);
}

class OpenMpiTransport final : public MpiTransport {
 public:
  OpenMpiTransport() {
    // Open MPI makes its progress engine yield the processor in every call when ranks outnumber
    // cores (oversubscribed); Tessera only polls, sleeping between polls itself, so that
    // yielding would only delay each message (by milliseconds on a loaded node). A user's
    // setting (mpirun --mca mpi_yield_when_idle 1) wins.
    ::setenv("OMPI_MCA_mpi_yield_when_idle", "0", 0);
    int provided = 0;
    TESSERA_MPI_CALL(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_SERIALIZED, &provided));
    if (provided < MPI_THREAD_SERIALIZED)
      throw UserError(
          "the MPI library offers no serialized threads (MPI_THREAD_SERIALIZED), which tessera needs");
    // A failed send or receive must be a return code, not the end of the whole job.
    TESSERA_MPI_CALL(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    TESSERA_MPI_CALL(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    TESSERA_MPI_CALL(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  ~OpenMpiTransport() override { leave(false); }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  bool send(int to, const std::string& text) override {
    sends_.push_back({to, MPI_REQUEST_NULL, text});
    Transfer& t = sends_.back();
    if (MPI_Isend(t.text.data(), static_cast<int>(t.text.size()), MPI_CHAR, to, kTag, MPI_COMM_WORLD,
                  &t.request) != MPI_SUCCESS) {
      sends_.pop_back();
      return false;
    }
    progress();
    return true;
  }

  std::optional<std::pair<int, std::string>> receive() override {
    progress();
    // Match what has arrived; its data may still be on its way.
    for (int i = 0; i < 64; ++i) {
      int flag = 0;
      MPI_Message matched;
      MPI_Status status;
      if (MPI_Improbe(MPI_ANY_SOURCE, kTag, MPI_COMM_WORLD, &flag, &matched, &status) != MPI_SUCCESS || !flag)
        break;
      int count = 0;
      MPI_Get_count(&status, MPI_CHAR, &count);
      receives_.push_back(
          {status.MPI_SOURCE, MPI_REQUEST_NULL, std::string(static_cast<size_t>(count), '\0')});
      Transfer& t = receives_.back();
      if (MPI_Imrecv(t.text.data(), count, MPI_CHAR, &matched, &t.request) != MPI_SUCCESS)
        receives_.pop_back();
    }
    // The first finished message of a rank none of whose earlier ones is still arriving.
    std::vector<int> arriving;
    for (auto it = receives_.begin(); it != receives_.end();) {
      if (std::find(arriving.begin(), arriving.end(), it->peer) != arriving.end()) {
        ++it;
        continue;
      }
      int flag = 0;
      if (MPI_Test(&it->request, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        it = receives_.erase(it);  // lost on the way: its sender is gone or going
        continue;
      }
      if (!flag) {
        arriving.push_back(it->peer);
        ++it;
        continue;
      }
      std::pair<int, std::string> out{it->peer, std::move(it->text)};
      receives_.erase(it);
      return out;
    }
    return std::nullopt;
  }

  void abandon(int rank) override {
    for (auto it = sends_.begin(); it != sends_.end();) {
      if (it->peer != rank) {
        ++it;
        continue;
      }
      // Freed while active: MPI completes or drops it on its own; the text goes with the job.
      MPI_Request_free(&it->request);
      abandoned_.push_back(std::move(it->text));
      it = sends_.erase(it);
    }
  }

  void flush(double timeout_s) override {
    double until = monotonic_s() + timeout_s;
    for (progress(); !sends_.empty() && monotonic_s() < until; progress())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }

  void leave(bool finalize) override {
    if (left_) return;
    left_ = true;
    if (!finalize) return;
    flush(5);
    for (Transfer& t : sends_) MPI_Request_free(&t.request);
    MPI_Finalize();
  }

 private:
  struct Transfer {
    int peer = 0;
    MPI_Request request = MPI_REQUEST_NULL;
    std::string text;
  };

  // Completes the sends that can be (a failed one is dropped: its rank is gone).
  void progress() {
    for (auto it = sends_.begin(); it != sends_.end();) {
      int flag = 0;
      if (MPI_Test(&it->request, &flag, MPI_STATUS_IGNORE) != MPI_SUCCESS || flag)
        it = sends_.erase(it);
      else
        ++it;
    }
  }

  int rank_ = 0, size_ = 1;
  bool left_ = false;
  std::list<Transfer> sends_, receives_;  // lists: MPI holds pointers into their texts
  std::list<std::string> abandoned_;
};

}  // namespace

std::unique_ptr<MpiTransport> MpiTransport::join() {
  return std::make_unique<OpenMpiTransport>();
}

bool mpi_built() {
  return true;
}

std::string mpi_library_version() {
  char text[MPI_MAX_LIBRARY_VERSION_STRING];
  int length = 0;
  if (MPI_Get_library_version(text, &length) != MPI_SUCCESS) return "MPI";
  std::string version(text, static_cast<size_t>(length));
  return version.substr(0, version.find(','));
}

}  // namespace tessera::measure
