// A stand-in measurement worker for the pool's CPU tests. It speaks the real protocol but
// measures nothing: every result it sends is `unmeasured`. The schedule knob "behave" makes
// it misbehave the way a real worker can: 1 aborts (a crash), 2 never answers (a hang),
// 3 writes garbage (a broken peer), 4 answers then exits (a sticky CUDA error), 5 computes a
// "reference" for 1.5 s before answering. `--no-gpu` makes its hello report no device.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "core/measurement.h"
#include "measure/job.h"
#include "measure/protocol.h"

using namespace tessera;
using namespace tessera::measure;

int main(int argc, char** argv) {
  const bool no_gpu = argc > 1 && std::strcmp(argv[1], "--no-gpu") == 0;
  Json hello{{"pid", ::getpid()}};
  if (no_gpu) hello["error"] = "no GPU: test worker started with --no-gpu";
  else hello["device"] = "test worker " + std::to_string(::getpid()) + " (measures nothing)";
  protocol::write_frame(1, protocol::message("hello", hello));
  protocol::FrameReader reader;
  while (auto frame = protocol::read_frame(0, reader)) {
    const std::string type = frame->header["type"].get<std::string>();
    if (type == "shutdown") return 0;
    Job job = job_from_header(frame->header, std::string(frame->blob.begin(), frame->blob.end()));
    const int64_t id = frame->header["id"].get<int64_t>();
    const int64_t behave = job.schedule.find("behave").value_or(0);
    if (behave == 1) std::abort();
    if (behave == 2) {
      protocol::write_frame(1, protocol::message("progress", {{"id", id}, {"phase", "kernel"}}));
      while (true) ::pause();
    }
    if (behave == 3) {
      const char junk[] = "this is not a frame of any version......";
      if (::write(1, junk, sizeof junk) < 0) return 1;
      continue;
    }
    if (behave == 5) {
      protocol::write_frame(1, protocol::message("progress", {{"id", id}, {"phase", "reference"}}));
      ::usleep(1500000);
      protocol::write_frame(1, protocol::message("progress", {{"id", id}, {"phase", "kernel"}}));
    }
    Measurement m;
    m.status = Status::kUnmeasured;
    m.error = "test worker: " + job.workload.key() + " | " + job.schedule.key() + " | " + job.plan.entry + " | " +
              std::to_string(job.cubin.size()) + " bytes";
    Json result{{"id", id}, {"measurement", m.to_json()}};
    if (behave == 4) result["exiting"] = true;
    protocol::write_frame(1, protocol::message("result", result));
    if (behave == 4) return 3;
  }
  return 0;
}
