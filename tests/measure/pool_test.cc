// The measurement protocol and the worker pool on the CPU: frames, job messages, and a pool
// of stand-in workers (tests/measure/fake_worker.cc) that crash, hang, break the protocol
// and exit, while the job goes on.
#include "measure/pool.h"

#include <gtest/gtest.h>

#include <set>

#include "core/error.h"
#include "kernels/families.h"
#include "measure/gpu_runner.h"
#include "measure/protocol.h"

namespace tessera::measure {
namespace {

using protocol::Frame;
using protocol::FrameReader;
using protocol::ProtocolError;

TEST(Protocol, FramesSurviveAnySplitOfTheStream) {
  Frame a = protocol::message("measure", {{"id", 7}, {"text", "héllo"}}, {0, 1, 2, 255});
  Frame b = protocol::message("shutdown");
  std::vector<uint8_t> bytes = protocol::encode(a), more = protocol::encode(b);
  bytes.insert(bytes.end(), more.begin(), more.end());
  FrameReader reader;
  std::vector<Frame> got;
  for (uint8_t byte : bytes) {  // one byte at a time: the worst split
    reader.feed(&byte, 1);
    while (auto f = reader.next()) got.push_back(std::move(*f));
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].header, a.header);
  EXPECT_EQ(got[0].blob, a.blob);
  EXPECT_EQ(got[1].header["type"], "shutdown");
  EXPECT_EQ(reader.pending(), 0u);
}

TEST(Protocol, MalformedFramesAreProtocolErrors) {
  auto expect_error = [](std::vector<uint8_t> bytes, const std::string& needle) {
    FrameReader reader;
    reader.feed(bytes.data(), bytes.size());
    try {
      (void)reader.next();
      ADD_FAILURE() << "accepted a malformed frame (" << needle << ")";
    } catch (const ProtocolError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  std::vector<uint8_t> good = protocol::encode(protocol::message("hello"));
  std::vector<uint8_t> bad_magic = good;
  bad_magic[0] = 'X';
  expect_error(bad_magic, "bad magic");
  std::vector<uint8_t> bad_version = good;
  bad_version[4] = 99;
  expect_error(bad_version, "version 99");
  std::vector<uint8_t> huge = good;
  huge[15] = 0x7f;  // blob length near 2 GiB
  expect_error(huge, "oversized");
  Frame not_object;
  not_object.header = Json::array({1, 2});
  expect_error(protocol::encode(not_object), "JSON object");

  // A stream that ends inside a frame.
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], good.data(), good.size() - 3), static_cast<ssize_t>(good.size() - 3));
  ::close(fds[1]);
  FrameReader reader;
  EXPECT_THROW(protocol::read_frame(fds[0], reader), ProtocolError);
  ::close(fds[0]);
}

Job make_job(const std::string& spec, int64_t behave, int64_t tag = 0) {
  Job j;
  j.workload = Workload::parse(spec);
  j.schedule = {"test", {{"behave", behave}, {"tag", tag}}};
  j.plan.entry = "main_kernel";
  j.plan.launch.grid[0] = 4;
  j.plan.then.push_back({"second", {}});
  j.plan.workspace_bytes = 128;
  j.cubin = std::string(1000 + static_cast<size_t>(tag), 'c');
  return j;
}

TEST(Protocol, JobsRoundTripThroughTheirHeader) {
  Job j = make_job("matmul:m=64,n=64,k=64:f16", 0, 3);
  MeasureOptions o;
  o.min_repeats = 17;
  Json h = job_header(j, o, 42);
  EXPECT_EQ(h["id"], 42);
  Job back = job_from_header(h, j.cubin);
  EXPECT_EQ(back.workload, j.workload);
  EXPECT_EQ(back.schedule, j.schedule);
  EXPECT_EQ(back.plan.entry, "main_kernel");
  EXPECT_EQ(back.plan.launch.grid[0], 4);
  ASSERT_EQ(back.plan.then.size(), 1u);
  EXPECT_EQ(back.plan.then[0].entry, "second");
  EXPECT_EQ(back.plan.workspace_bytes, 128);
  EXPECT_EQ(back.cubin, j.cubin);
  EXPECT_EQ(MeasureOptions::from_json(h["options"]).min_repeats, 17);
  // Tensor maps, tiled and im2col (corners and traversal strides), reach the worker whole.
  kernels::TensorMapSpec tiled{1, DType::kBF16, {64, 9, 128}, {128, 1152}, {64, 1, 64}, 128};
  kernels::TensorMapSpec im2col{0, DType::kF16, {64, 56, 56, 2}, {128, 7168, 401408}, {64, 128}, 128};
  im2col.lower_corner = {-1, -1};
  im2col.upper_corner = {-1, -2};
  im2col.element_strides = {1, 2, 2, 1};
  j.plan.tensor_maps = {im2col, tiled};
  Job maps = job_from_header(job_header(j, o, 43), j.cubin);
  ASSERT_EQ(maps.plan.tensor_maps.size(), 2u);
  const kernels::TensorMapSpec& a = maps.plan.tensor_maps[0];
  EXPECT_TRUE(a.im2col());
  EXPECT_EQ(a.dims, im2col.dims);
  EXPECT_EQ(a.strides_bytes, im2col.strides_bytes);
  EXPECT_EQ(a.box, im2col.box);
  EXPECT_EQ(a.lower_corner, im2col.lower_corner);
  EXPECT_EQ(a.upper_corner, im2col.upper_corner);
  EXPECT_EQ(a.element_strides, im2col.element_strides);
  const kernels::TensorMapSpec& b = maps.plan.tensor_maps[1];
  EXPECT_FALSE(b.im2col());
  EXPECT_EQ(b.dtype, DType::kBF16);
  EXPECT_EQ(b.box, tiled.box);
  EXPECT_TRUE(b.element_strides.empty());
  EXPECT_EQ(b.offset_bytes, 0);
  // Kernels before the main one keep their place; a map over the workspace keeps its offset.
  j.plan.before.push_back({"pad", {}});
  j.plan.tensor_maps[1].tensor = 3;
  j.plan.tensor_maps[1].offset_bytes = 4096;
  Job first = job_from_header(job_header(j, o, 44), j.cubin);
  ASSERT_EQ(first.plan.before.size(), 1u);
  EXPECT_EQ(first.plan.before[0].entry, "pad");
  EXPECT_EQ(first.plan.entry, "main_kernel");
  ASSERT_EQ(first.plan.then.size(), 1u);
  EXPECT_EQ(first.plan.tensor_maps[1].tensor, 3);
  EXPECT_EQ(first.plan.tensor_maps[1].offset_bytes, 4096);
  Json bad = job_header(j, o, 45);
  bad["main"] = 3;  // past the plan's three kernels
  EXPECT_THROW(job_from_header(bad, ""), UserError);
  bad = job_header(j, o, 46);
  bad["tensor_maps"][1]["offset_bytes"] = 4100;
  EXPECT_THROW(job_from_header(bad, ""), UserError);
  h.erase("plan");
  EXPECT_THROW(job_from_header(h, ""), UserError);
}

PoolOptions fake_pool(int workers, std::vector<std::string> extra = {}) {
  PoolOptions o;
  for (int i = 0; i < workers; ++i) {
    std::vector<std::string> argv{TESSERA_FAKE_WORKER};
    argv.insert(argv.end(), extra.begin(), extra.end());
    o.workers.push_back(argv);
  }
  o.start_timeout_s = 10;
  o.kernel_timeout_s = 1.0;
  o.reference_timeout_s = 10;
  return o;
}

std::string expected_error(const Job& j) {
  return "test worker: " + j.workload.key() + " | " + j.schedule.key() + " | main_kernel | " +
         std::to_string(j.cubin.size()) + " bytes";
}

TEST(WorkerPool, ResultsComeBackInOrder) {
  WorkerPool pool(fake_pool(1));
  std::vector<WorkerInfo> started = pool.start();
  ASSERT_EQ(started.size(), 1u);
  EXPECT_NE(started[0].description.find("test worker"), std::string::npos);
  std::vector<Job> jobs;
  for (int i = 0; i < 6; ++i) jobs.push_back(make_job("softmax:rows=8,cols=" + std::to_string(8 + i) + ":f16", 0, i));
  std::vector<size_t> seen;
  std::vector<Measurement> out = pool.run(jobs, [&](size_t i, const Measurement&) { seen.push_back(i); });
  ASSERT_EQ(out.size(), jobs.size());
  for (size_t i = 0; i < jobs.size(); ++i) {
    EXPECT_EQ(out[i].status, Status::kUnmeasured);
    EXPECT_EQ(out[i].error, expected_error(jobs[i]));
  }
  EXPECT_EQ(seen.size(), jobs.size());
  EXPECT_EQ(pool.stats().starts, 1);
}

TEST(WorkerPool, CrashHangGarbageAndExitCostOnlyTheirCandidate) {
  WorkerPool pool(fake_pool(1));
  std::vector<Job> jobs = {make_job("softmax:rows=8,cols=8:f16", 0, 0), make_job("softmax:rows=8,cols=8:f16", 1, 1),
                           make_job("softmax:rows=8,cols=8:f16", 0, 2), make_job("softmax:rows=8,cols=8:f16", 2, 3),
                           make_job("softmax:rows=8,cols=8:f16", 0, 4), make_job("softmax:rows=8,cols=8:f16", 3, 5),
                           make_job("softmax:rows=8,cols=8:f16", 4, 6), make_job("softmax:rows=8,cols=8:f16", 0, 7)};
  std::vector<Measurement> out = pool.run(jobs);
  ASSERT_EQ(out.size(), jobs.size());
  EXPECT_EQ(out[0].error, expected_error(jobs[0]));
  EXPECT_EQ(out[1].status, Status::kCrashed);
  EXPECT_NE(out[1].error.find("signal 6"), std::string::npos) << out[1].error;
  EXPECT_EQ(out[2].error, expected_error(jobs[2]));
  EXPECT_EQ(out[3].status, Status::kTimeout);
  EXPECT_NE(out[3].error.find("no answer within 1.0 s"), std::string::npos) << out[3].error;
  EXPECT_EQ(out[4].error, expected_error(jobs[4]));
  EXPECT_EQ(out[5].status, Status::kCrashed);
  EXPECT_NE(out[5].error.find("protocol"), std::string::npos) << out[5].error;
  EXPECT_EQ(out[6].error, expected_error(jobs[6]));  // answered, then exited
  EXPECT_EQ(out[7].error, expected_error(jobs[7]));
  EXPECT_EQ(pool.stats().crashes, 2);
  EXPECT_EQ(pool.stats().timeouts, 1);
  EXPECT_EQ(pool.stats().starts, 5);  // the first, then after the crash, hang, garbage and exit
}

TEST(WorkerPool, ReferencePhaseGetsItsOwnDeadline) {
  WorkerPool pool(fake_pool(1));
  // 1.5 s of "reference" would overrun the 1 s kernel watchdog, not the 10 s reference one.
  std::vector<Measurement> out = pool.run(std::vector<Job>{make_job("softmax:rows=8,cols=8:f16", 5)});
  EXPECT_EQ(out[0].status, Status::kUnmeasured);
  EXPECT_EQ(pool.stats().timeouts, 0);
}

TEST(WorkerPool, SeveralWorkersGiveTheSameResultsAsOne) {
  std::vector<Job> jobs;
  for (int i = 0; i < 12; ++i) jobs.push_back(make_job("matmul:m=" + std::to_string(16 + i) + ",n=8,k=8:f16", i == 5 ? 1 : 0, i));
  WorkerPool one(fake_pool(1)), three(fake_pool(3));
  ASSERT_EQ(three.start().size(), 3u);
  std::vector<Measurement> a = one.run(jobs), b = three.run(jobs);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].status, b[i].status) << i;
    if (a[i].status != Status::kCrashed) EXPECT_EQ(a[i], b[i]) << i;
    else EXPECT_EQ(a[i].error.substr(0, 30), b[i].error.substr(0, 30));
  }
}

TEST(WorkerPool, WorkersThatCannotMeasureAreAClearError) {
  WorkerPool no_gpu(fake_pool(2, {"--no-gpu"}));
  try {
    no_gpu.start();
    ADD_FAILURE() << "started workers without a GPU";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("no GPU: test worker started with --no-gpu"), std::string::npos) << e.what();
  }
  PoolOptions missing;
  missing.workers = {{"/nonexistent/tessera-worker"}};
  WorkerPool none(missing);
  try {
    none.run(std::vector<Job>{make_job("softmax:rows=8,cols=8:f16", 0)});
    ADD_FAILURE() << "ran jobs without workers";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/tessera-worker"), std::string::npos) << e.what();
  }
}


TEST(GpuRunner, ValidatesCompilesAndHandsOnlyGoodKernelsToWorkers) {
#if !TESSERA_HAVE_CUDA
  GTEST_SKIP() << "built without CUDA: no NVRTC";
#endif
  kernels::FamilyRegistry families;
  kernels::register_builtin_families(families);
  kernels::BuildOptions build;
  build.headers = kernels::device_headers();
  GpuRunner runner(families, find_spec("h100_sxm"), build, fake_pool(2));
  Workload w = Workload::parse("matmul:m=256,n=256,k=256:f16");
  Schedule good{"gemm_tc", {{"block_m", 128}, {"block_n", 128}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                            {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  Schedule bad_k = good;
  bad_k.knobs[2].second = 48;
  Schedule missing{"gemm_tc", {{"block_m", 128}}};
  std::vector<Candidate> cs = {{w, good, {}}, {w, {"nope", {}}, {}}, {w, bad_k, {}}, {w, missing, {}},
                               {Workload::parse("matmul:m=8,n=8,k=8:f32"), good, {}}};
  size_t reported = 0;
  runner.on_result = [&](size_t, const Measurement&) { ++reported; };
  std::vector<Measurement> out = runner.run(cs);
  ASSERT_EQ(out.size(), cs.size());
  EXPECT_EQ(reported, cs.size());
  EXPECT_EQ(out[0].status, Status::kUnmeasured);  // the stand-in worker measures nothing
  EXPECT_NE(out[0].error.find("tessera_gemm_tc"), std::string::npos) << out[0].error;
  EXPECT_GT(out[0].registers, 0);
  // Dynamic (the 3-stage ring) plus static shared memory (sm_90 cubins reserve 1 KiB).
  EXPECT_GE(out[0].smem_bytes, 3 * (128 * 32 + 32 * 128) * 2);
  EXPECT_LE(out[0].smem_bytes, 3 * (128 * 32 + 32 * 128) * 2 + 1024);
  EXPECT_EQ(out[1].status, Status::kInvalid);
  EXPECT_EQ(out[1].error, "unknown kernel family 'nope'");
  EXPECT_EQ(out[2].status, Status::kInvalid);
  EXPECT_EQ(out[2].error, "block_k must be 32 or 64");
  EXPECT_EQ(out[3].status, Status::kInvalid);
  EXPECT_NE(out[3].error.find("not the family's"), std::string::npos);
  EXPECT_EQ(out[4].status, Status::kInvalid);
  EXPECT_NE(out[4].error.find("does not run"), std::string::npos);
}

}  // namespace
}  // namespace tessera::measure
