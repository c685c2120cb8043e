// Exports to other tools, imports back, and randomized (fuzz) tests of the import parsers.
#include "db/export.h"

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "tests/db/test_util.h"

namespace tessera::db {
namespace {

using testing::gemm_record;
using testing::TempDb;
using testing::test_target;

const char* kGemm = "matmul:m=4096,n=4096,k=4096:f16";
const char* kBert = "matmul:m=4096,n=3072,k=768:f16:epilogue=bias+gelu";
const char* kConv = "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16";

std::vector<Record> sample_records() {
  Record conv = gemm_record(kConv, 128, 80, 20);
  conv.schedule.family = "conv_implicit_gemm";
  Record soft = gemm_record("softmax:rows=16384,cols=4096:f16", 1, 95, 21);
  soft.schedule = {"softmax_rows", {{"rows_per_block", 4}, {"vector", 8}}};
  return {gemm_record(kGemm, 128, 500, 1), gemm_record(kGemm, 64, 450, 2), gemm_record(kGemm, 256, 0, 3, Status::kCompileError),
          gemm_record(kGemm, 32, 0, 4, Status::kInvalid), gemm_record(kBert, 128, 21.5, 5), conv, soft};
}

ExportResult run_export(TuningDatabase& db, const char* format, ExportOptions o = {}) {
  o.tool_version = "test";
  return export_database(db, parse_export_format(format), o);
}

TEST(Export, JsonLinesRoundTripIsLossless) {
  TempDb a("jsonl_a"), b("jsonl_b");
  TuningDatabase db = TuningDatabase::open(a.path());
  std::vector<Record> in = sample_records();
  db.commit(in);
  ExportResult out = run_export(db, "jsonl");
  EXPECT_EQ(out.items, static_cast<int64_t>(in.size()));
  EXPECT_EQ(std::count(out.text.begin(), out.text.end(), '\n'), static_cast<long>(in.size()));
  EXPECT_EQ(out.text.rfind("{\"format\":\"tessera-record-1\",\"workload\":", 0), 0u) << out.text.substr(0, 80);
  std::vector<Record> back = import_jsonl(out.text, "export.jsonl");
  ASSERT_EQ(back.size(), in.size());
  for (size_t i = 0; i < in.size(); ++i) EXPECT_EQ(back[i], in[i]) << i;
  TuningDatabase other = TuningDatabase::open(b.path());
  EXPECT_EQ(other.commit(back).inserted, static_cast<int64_t>(in.size()));
  EXPECT_EQ(run_export(other, "jsonl").text, out.text);  // export -> import -> export is identical
  EXPECT_EQ(other.commit(back).inserted, 0);                // importing twice adds nothing
}

// Triton's terms (Triton 3.x, its matmul tutorial's names and triton.Config's fields): a
// config per distinct (BLOCK_SIZE_M/N/K, GROUP_SIZE_M, num_warps, num_stages, num_ctas,
// INPUT_PRECISION); num_warps the warps that compute the product (here as the CLI derives it
// from the family: gemm_wgmma's consumer warpgroups x 4, gemm_tc's warps_m x warps_n); an f32
// key carries the precision it was measured in.
TEST(Export, TritonConfigsInTritonsTerms) {
  TempDb tmp("triton");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  auto wgmma = [](const char* spec, int64_t bm, int64_t consumers, int64_t tma_store, double us, int64_t seq) {
    Record r = gemm_record(spec, bm, us, seq);
    r.schedule = {"gemm_wgmma", {{"block_m", bm}, {"block_n", 256}, {"block_k", 64}, {"stages", 3}, {"consumers", consumers},
                                 {"group_m", 8}, {"tma_store", tma_store}, {"pingpong", 0}, {"cluster_m", 1}, {"split_k", 1}}};
    return r;
  };
  auto tc = [](const char* spec, double us, int64_t seq) {
    Record r = gemm_record(spec, 64, us, seq);
    r.schedule = {"gemm_tc", {{"block_m", 64}, {"block_n", 128}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                              {"stages", 3}, {"vec", 8}, {"group_m", 1}, {"split_k", 1}}};
    return r;
  };
  Record simt = gemm_record("matmul:m=1024,n=1024,k=1024:f32", 128, 900, 9);
  simt.schedule = {"gemm_simt", {{"block_m", 128}, {"block_n", 128}, {"block_k", 8}, {"thread_m", 8}, {"thread_n", 8},
                                 {"warps_m", 4}}};
  std::vector<Record> records = {wgmma(kGemm, 128, 2, 1, 180, 1), wgmma(kGemm, 128, 2, 0, 185, 2),  // same in Triton
                                 wgmma(kGemm, 256, 2, 1, 190, 3), tc(kGemm, 450, 4), tc(kBert, 21.5, 5), simt};
  records.push_back(gemm_record(kConv, 128, 80, 6));
  db.commit(records);
  ExportOptions o;
  o.top_k = 4;
  o.mma_warps = [](const Record& r) -> std::optional<int64_t> {
    if (r.schedule.family == "gemm_wgmma") return 4 * r.schedule.get("consumers");
    if (r.schedule.family == "gemm_tc") return r.schedule.get("warps_m") * r.schedule.get("warps_n");
    if (r.schedule.family == "gemm_simt") return 8;  // 128x128 block of 8x8 threads
    return std::nullopt;
  };
  ExportResult out = run_export(db, "triton", o);
  const std::string& t = out.text;
  EXPECT_EQ(out.items, 5);  // kGemm: 3 distinct of 4 schedules; kBert: 1; f32: 1
  std::string best = "    \"matmul:m=4096,n=4096,k=4096:f16\": [\n        triton.Config({\"BLOCK_SIZE_M\": 128, "
                     "\"BLOCK_SIZE_N\": 256, \"BLOCK_SIZE_K\": 64, \"GROUP_SIZE_M\": 8, \"INPUT_PRECISION\": \"default\"}, "
                     "num_warps=8, num_stages=3),  # 180.00 us, gemm_wgmma (consumers=2, tma_store=1, pingpong=0, cluster_m=1, split_k=1)\n"
                     "        triton.Config({\"BLOCK_SIZE_M\": 256,";
  EXPECT_NE(t.find(best), std::string::npos) << t;  // the 185 us twin (tma_store 0) is not a second config
  EXPECT_NE(t.find("\"BLOCK_SIZE_M\": 64, \"BLOCK_SIZE_N\": 128, \"BLOCK_SIZE_K\": 32, \"GROUP_SIZE_M\": 1, "
                   "\"INPUT_PRECISION\": \"default\"}, num_warps=4, num_stages=3),  # 450.00 us, gemm_tc"),
            std::string::npos);
  EXPECT_NE(t.find("# f32: measured in the precision INPUT_PRECISION names\n    \"matmul:m=1024,n=1024,k=1024:f32\": [\n"
                   "        triton.Config({\"BLOCK_SIZE_M\": 128, \"BLOCK_SIZE_N\": 128, \"BLOCK_SIZE_K\": 8, \"GROUP_SIZE_M\": 1, "
                   "\"INPUT_PRECISION\": \"ieee\"}, num_warps=8, num_stages=2)"),
            std::string::npos)
      << t;
  EXPECT_EQ(t.find("185.00 us"), std::string::npos);
  EXPECT_NE(t.find("\"" + Workload::parse(kBert).key() + "\": ["), std::string::npos);
  EXPECT_EQ(t.find("conv2d"), std::string::npos);
  // The kernel the configs are for, and a launcher, are in the file: its names are the configs'.
  for (const char* part : {"import triton.language as tl", "def configs_for(key):", "@triton.jit\ndef matmul_kernel(",
                           "BLOCK_SIZE_M: tl.constexpr", "GROUP_SIZE_M: tl.constexpr", "INPUT_PRECISION: tl.constexpr",
                           "def matmul(a, b, bias=None, residual=None, epilogue=\"\", trans_b=False, key=None, config=None):"})
    EXPECT_NE(t.find(part), std::string::npos) << part;
  bool conv_skipped = std::any_of(out.skipped.begin(), out.skipped.end(),
                                  [](const std::string& s) { return s.find("conv2d") != std::string::npos; });
  EXPECT_TRUE(conv_skipped);

  // Nothing measured to export is an error, not an empty file.
  TempDb empty("triton_empty");
  TuningDatabase none = TuningDatabase::open(empty.path());
  std::vector<Record> conv_only = {gemm_record(kConv, 128, 80, 1)};
  none.commit(conv_only);
  EXPECT_THROW(run_export(none, "triton"), UserError);
}

TEST(Export, KernelTunerCacheAndImportBack) {
  TempDb a("kt_a"), b("kt_b");
  TuningDatabase db = TuningDatabase::open(a.path());
  db.commit(sample_records());
  ExportOptions o;
  EXPECT_THROW(run_export(db, "kerneltuner", o), UserError);  // needs --workload
  o.workload_key = Workload::parse(kGemm).key();
  ExportResult out = run_export(db, "kerneltuner", o);
  Json j = Json::parse(out.text);
  EXPECT_EQ(j["schema_version"], "1.0.0");
  EXPECT_EQ(j["device_name"], test_target().gpu_name);
  EXPECT_EQ(j["kernel_name"], "tessera_gemm_tc");
  EXPECT_EQ(j["problem_size"], Json({4096, 4096, 4096}));
  EXPECT_EQ(j["tune_params_keys"], Json({"block_m", "block_n", "block_k", "warps", "stages"}));
  EXPECT_EQ(j["tune_params"]["block_m"], Json({32, 64, 128, 256}));
  EXPECT_EQ(j["objective"], "time");
  ASSERT_EQ(j["cache"].size(), 4u);
  const Json& best = j["cache"]["64,128,32,4,3"];
  EXPECT_NEAR(best["time"].get<double>(), 0.4515, 1e-12);  // milliseconds, the mean of "times" as Kernel Tuner's
  EXPECT_EQ(best["times"].size(), 3u);
  EXPECT_EQ(best["timestamp"], "2026-11-18 11:06:42+00:00");  // 1795000002 s after the epoch
  EXPECT_EQ(j["cache"]["256,128,32,4,3"]["time"], "CompilationFailedConfig");
  EXPECT_EQ(j["cache"]["32,128,32,4,3"]["time"], "InvalidConfig");

  KernelTunerImport info{Workload::parse(kGemm), "gemm_tc", test_target()};
  info.target.gpu_name = "replaced by the cache's device_name";
  std::vector<Record> back = import_kernel_tuner(out.text, info, "cache.json");
  ASSERT_EQ(back.size(), 4u);
  const Record* fast = nullptr;
  for (const Record& r : back)
    if (r.schedule.get("block_m") == 64) fast = &r;
  ASSERT_NE(fast, nullptr);
  EXPECT_EQ(fast->target.gpu_name, test_target().gpu_name);
  EXPECT_EQ(fast->measurement.status, Status::kOk);
  EXPECT_NEAR(fast->measurement.median_us, 450, 1e-9);
  EXPECT_EQ(fast->measurement.times_us.size(), 3u);
  EXPECT_EQ(fast->timestamp_s, 1795000002);
  EXPECT_EQ(fast->schedule.knobs, gemm_record(kGemm, 64, 450).schedule.knobs);
  TuningDatabase other = TuningDatabase::open(b.path());
  other.commit(back);
  EXPECT_NEAR(other.best(Workload::parse(kGemm), back[0].target, 1).records.at(0).record.measurement.median_us, 450,
              1e-9);
}

// Kernel Tuner 1.4.0's simulation mode (runners/simulation.py) walks the product of
// tune_params in tune_params_keys order and looks each configuration up by its values joined
// with ","; one missing from the cache that the caller's restrictions do not exclude is a
// ValueError. Its problem_size is at most three dimensions (util.py, the grid's x, y, z).
TEST(Export, KernelTunerSimulationModeFindsEveryConfiguration) {
  TempDb tmp("kt_sim");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  auto tc = [](int64_t bm, int64_t stages, double us, int64_t seq) {
    Record r = gemm_record(kGemm, bm, us, seq);
    r.schedule = {"gemm_tc", {{"block_m", bm}, {"stages", stages}}};
    return r;
  };
  std::vector<Record> three = {tc(64, 3, 500, 1), tc(64, 4, 480, 2), tc(128, 3, 450, 3)};  // not 128 x 4
  db.commit(three);
  ExportOptions o;
  o.workload_key = Workload::parse(kGemm).key();
  ExportResult out = run_export(db, "kerneltuner", o);
  Json j = Json::parse(out.text);
  std::vector<std::string> keys = j["tune_params_keys"];
  ASSERT_EQ(keys, (std::vector<std::string>{"block_m", "stages"}));
  int found = 0;
  for (int64_t bm : j["tune_params"]["block_m"].get<std::vector<int64_t>>())
    for (int64_t st : j["tune_params"]["stages"].get<std::vector<int64_t>>()) {
      std::string key = std::to_string(bm) + "," + std::to_string(st);
      ASSERT_TRUE(j["cache"].contains(key)) << key;
      ++found;
    }
  EXPECT_EQ(found, 4);
  EXPECT_EQ(j["cache"]["128,4"]["time"], "InvalidConfig");  // what Kernel Tuner makes of a restricted point
  EXPECT_EQ(j["cache"]["128,4"]["timestamp"], "1970-01-01 00:00:00+00:00");
  EXPECT_NE(j["tessera_note"].get<std::string>().find("1 configurations of tune_params' product it did not measure"),
            std::string::npos);
  // Reading it back leaves the unmeasured configuration out.
  KernelTunerImport info{Workload::parse(kGemm), "gemm_tc", test_target()};
  EXPECT_EQ(import_kernel_tuner(out.text, info, "cache.json").size(), 3u);

  // Every kind's problem_size fits Kernel Tuner's three dimensions.
  for (const char* spec : {kConv, "batch_matmul:b=12,m=128,n=128,k=64:f16", "softmax:rows=16384,cols=4096:f16"}) {
    TempDb one(std::string("kt_ps_") + std::to_string(std::hash<std::string>{}(spec) % 1000));
    TuningDatabase d = TuningDatabase::open(one.path());
    std::vector<Record> r = {gemm_record(spec, 64, 10, 1)};
    d.commit(r);
    ExportOptions po;
    po.workload_key = Workload::parse(spec).key();
    Json ps = Json::parse(run_export(d, "kerneltuner", po).text)["problem_size"];
    EXPECT_LE(ps.size(), 3u) << spec;
  }
  // conv2d n=32 56x56 (pad 1, 3x3: 56x56 out), k=64, c=64: the implicit GEMM's [N*P*Q, K, C*R*S].
  TempDb conv_db("kt_conv");
  TuningDatabase cd = TuningDatabase::open(conv_db.path());
  std::vector<Record> cr = {gemm_record(kConv, 64, 10, 1)};
  cd.commit(cr);
  ExportOptions co;
  co.workload_key = Workload::parse(kConv).key();
  EXPECT_EQ(Json::parse(run_export(cd, "kerneltuner", co).text)["problem_size"], Json({32 * 56 * 56, 64, 64 * 9}));
}

TEST(Export, KernelTunerImportReadsAnOpenCache) {
  // What Kernel Tuner leaves while it is still tuning: entries appended, braces not closed.
  std::string open_cache =
      "{\n\"device_name\": \"NVIDIA H100 80GB HBM3\",\n\"kernel_name\": \"matmul\",\n\"problem_size\": [512, 512, 512],\n"
      "\"tune_params_keys\": [\"block_m\", \"block_n\"],\n\"tune_params\": {\"block_m\": [64, 128], \"block_n\": [64]},\n"
      "\"objective\": \"time\",\n\"cache\": {\n"
      "\"64,64\": {\"block_m\": 64, \"block_n\": 64, \"time\": 0.0125, \"times\": [0.012, 0.013], \"compile_time\": 1, "
      "\"verification_time\": 0, \"benchmark_time\": 1, \"strategy_time\": 0, \"framework_time\": 0, "
      "\"timestamp\": \"2024-01-01 12:00:00.123456+00:00\"},\n"
      "\"128,64\": {\"block_m\": 128, \"block_n\": 64, \"time\": \"RuntimeFailedConfig\", \"compile_time\": 1, "
      "\"verification_time\": 0, \"benchmark_time\": 0, \"strategy_time\": 0, \"framework_time\": 0, "
      "\"timestamp\": \"2024-01-01 12:00:01+00:00\"},";
  KernelTunerImport info{Workload::parse("matmul:m=512,n=512,k=512:f16"), "gemm_tc", test_target()};
  std::vector<Record> rs = import_kernel_tuner(open_cache, info, "open.json");
  ASSERT_EQ(rs.size(), 2u);
  EXPECT_EQ(rs[0].target.gpu_name, "NVIDIA H100 80GB HBM3");
  EXPECT_NEAR(rs[0].measurement.median_us, 12.5, 1e-9);
  EXPECT_NEAR(rs[0].measurement.min_us, 12.0, 1e-9);
  EXPECT_EQ(rs[0].timestamp_s, 1704110400);
  EXPECT_EQ(rs[1].measurement.status, Status::kCrashed);
}

// The CUTLASS profiler's GEMM CSV (CUTLASS 4.x, tools/profiler: gemm_operation_profiler.cu's
// arguments after operation_profiler.cu's six leading columns, then its tile description, then
// Bytes, Flops, Flops/Byte, Runtime, GB/s, GFLOPs): 51 columns; gemm_kind universal with a
// batch_count; Flops = 2 * (m*n*k + m*n) per batch; Bytes = A + B + C, plus C again where beta
// is not 0.
TEST(Export, CutlassCsv) {
  TempDb tmp("cutlass");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  db.commit(sample_records());
  Record tc = gemm_record(kGemm, 64, 440, 11);
  tc.schedule = {"gemm_tc", {{"block_m", 64}, {"block_n", 128}, {"block_k", 32}, {"warps_m", 2}, {"warps_n", 2},
                             {"stages", 3}, {"vec", 8}, {"group_m", 8}, {"split_k", 1}}};
  Record bmm = gemm_record("batch_matmul:b=12,m=128,n=128,k=64:f16:epilogue=residual", 64, 5, 12);
  bmm.schedule = {"gemm_wgmma", {{"block_m", 64}, {"block_n", 128}, {"block_k", 64}, {"stages", 4}, {"consumers", 1},
                                 {"group_m", 1}, {"tma_store", 1}, {"pingpong", 0}, {"cluster_m", 2}, {"split_k", 1}}};
  std::vector<Record> more = {tc, bmm};
  db.commit(more);
  ExportOptions o;
  o.mma_warps = [](const Record& r) -> std::optional<int64_t> {
    if (r.schedule.family == "gemm_wgmma") return 4 * r.schedule.get("consumers");
    return std::nullopt;
  };
  ExportResult gemm = run_export(db, "cutlass", o);
  std::istringstream lines(gemm.text);
  std::string header, row;
  std::getline(lines, header);
  EXPECT_EQ(header,
            "Problem,Provider,OperationKind,Operation,Disposition,Status,gemm_kind,m,n,k,A,B,C,D,alpha,beta,split_k_mode,"
            "split_k_slices,batch_count,raster_order,runtime_input_datatype_a,runtime_input_datatype_b,use_pdl,"
            "enable_sm90_mixed_dtype_shuffle_test,swizzle_size,op_class,accum,cta_m,cta_n,cta_k,cluster_m,cluster_n,"
            "cluster_k,cluster_m_fallback,cluster_n_fallback,cluster_k_fallback,stages,warps_m,warps_n,warps_k,inst_m,"
            "inst_n,inst_k,min_cc,max_cc,Bytes,Flops,Flops/Byte,Runtime,GB/s,GFLOPs");
  auto cells = [](const std::string& r) {
    std::vector<std::string> out;
    std::stringstream ss(r);
    for (std::string c; std::getline(ss, c, ',');) out.push_back(c);
    if (!r.empty() && r.back() == ',') out.emplace_back();
    return out;
  };
  std::vector<std::vector<std::string>> rows;
  while (std::getline(lines, row)) rows.push_back(cells(row));
  ASSERT_EQ(rows.size(), 3u);  // top-1 of each GEMM workload
  for (const auto& c : rows) ASSERT_EQ(c.size(), 51u) << c[3];
  const std::vector<std::string>* g = nullptr;
  const std::vector<std::string>* b = nullptr;
  for (const auto& c : rows) {
    if (c[3].find("gemm_tc_block_m64_block_n128_block_k32_warps_m2") != std::string::npos) g = &c;
    if (c[3].find("gemm_wgmma") != std::string::npos) b = &c;
  }
  ASSERT_TRUE(g && b);
  const std::vector<std::string>& c = *g;
  EXPECT_EQ(c[1], "tessera");
  EXPECT_EQ(c[2], "gemm");
  EXPECT_EQ(c[4], "passed");
  EXPECT_EQ(c[5], "success");
  EXPECT_EQ(c[6], "universal");
  EXPECT_EQ(c[7] + "," + c[8] + "," + c[9], "4096,4096,4096");
  EXPECT_EQ(c[10], "f16:row");
  EXPECT_EQ(c[14] + "," + c[15] + "," + c[16] + "," + c[17] + "," + c[18], "1,0,serial,1,1");
  EXPECT_EQ(c[19] + "," + c[24], "along_m,8");  // group_m 8: M first, in groups of 8
  EXPECT_EQ(c[25] + "," + c[26], "tensorop,f32");
  EXPECT_EQ(c[27] + "," + c[28] + "," + c[29] + "," + c[36], "64,128,32,3");
  EXPECT_EQ(c[37] + "," + c[38] + "," + c[39], "2,2,1");
  EXPECT_EQ(c[40] + "," + c[41] + "," + c[42], "16,8,16");
  EXPECT_EQ(c[45], "100663296");     // A + B + C
  EXPECT_EQ(c[46], "137472507904");  // 2 * (m n k + m n), as the profiler counts
  EXPECT_EQ(c[48], "0.44");          // ms
  EXPECT_NEAR(std::stod(c[50]), 137472507904.0 / 440e-6 / 1e9, 1);
  // The batched one: universal with batch_count 12, beta 1 for the residual (C read), a
  // cluster of 2 along m, one consumer warpgroup (4 warps) of m64 x n128 x k16 wgmma.
  EXPECT_EQ((*b)[6] + "," + (*b)[15] + "," + (*b)[18] + "," + (*b)[30], "universal,1,12,2");
  EXPECT_EQ((*b)[37] + "," + (*b)[38] + "," + (*b)[40] + "," + (*b)[41] + "," + (*b)[42], "4,1,64,128,16");
  EXPECT_EQ((*b)[45], std::to_string((128 * 64 * 2 * 2 + 128 * 128 * 2 * 2) * 12));
  ExportResult conv = run_export(db, "cutlass-conv2d");
  EXPECT_NE(conv.text.find(",conv2d,tessera_conv_implicit_gemm_"), std::string::npos) << conv.text;
  // The profiler's conv2d columns (conv2d_operation_profiler.cu, then the tile description and
  // counts): 58; the equivalent GEMM's Bytes and Flops (M = N*P*Q, N = K, K = C*R*S).
  std::string conv_header = conv.text.substr(0, conv.text.find('\n'));
  EXPECT_EQ(cells(conv_header).size(), 58u);
  EXPECT_EQ(conv_header.rfind("Problem,Provider,OperationKind,Operation,Disposition,Status,conv_kind,n,h,w,c,k,r,s,p,q,"
                              "pad_h,pad_w,stride_h,stride_w,dilation_h,dilation_w,Activation,Filter,Output,conv_mode,"
                              "iterator_algorithm,alpha,beta,split_k_mode,split_k_slices,eq_gemm_provider,op_class,",
                              0),
            0u);
  EXPECT_NE(conv.text.find(",fprop,32,56,56,64,64,3,3,56,56,1,1,1,1,1,1,f16:nhwc,f16:nhwc,f16:nhwc,cross,none,1,0,serial,1,"
                           "none,"),
            std::string::npos)
      << conv.text;
  EXPECT_NE(conv.text.find(",128524288,7411597312,"), std::string::npos) << conv.text;
  // Grouped convolutions have no row: the profiler's conv2d has no groups.
  std::vector<Record> grouped = {gemm_record("conv2d:n=1,h=14,w=14,c=64,k=64,r=3,s=3,pad=1,groups=32:f16", 64, 9, 13)};
  db.commit(grouped);
  ExportResult conv2 = run_export(db, "cutlass-conv2d");
  EXPECT_EQ(conv2.text.find("groups"), std::string::npos);
  EXPECT_TRUE(std::any_of(conv2.skipped.begin(), conv2.skipped.end(),
                          [](const std::string& s) { return s.find("has no groups") != std::string::npos; }));
}

TEST(Export, CHeader) {
  TempDb tmp("header");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  db.commit(sample_records());
  ExportResult out = run_export(db, "header");
  const std::string& h = out.text;
  EXPECT_EQ(out.items, 4);
  EXPECT_NE(h.find("#ifndef TESSERA_SCHEDULES_H_"), std::string::npos);
  EXPECT_NE(h.find("/* matmul:m=4096,n=4096,k=4096:f16: 450.00 us (cuBLASLt 100.00 us) */\n"
                   "#define TESSERA_MATMUL_M_4096_N_4096_K_4096_F16_FAMILY \"gemm_tc\"\n"
                   "#define TESSERA_MATMUL_M_4096_N_4096_K_4096_F16_BLOCK_M 64\n"),
            std::string::npos)
      << h;
  EXPECT_NE(h.find("#define TESSERA_SOFTMAX_ROWS_16384_COLS_4096_F16_ROWS_PER_BLOCK 4\n"), std::string::npos) << h;
  EXPECT_NE(h.find("#define TESSERA_MATMUL_M_4096_N_4096_K_4096_F16_TIME_US 450.0000\n"), std::string::npos);
}

TEST(Export, TargetChoiceIsExplicitWhenAmbiguous) {
  TempDb tmp("targets");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  db.commit(std::vector<Record>{gemm_record(kGemm, 64, 450, 1),
                                gemm_record(kGemm, 64, 300, 2, Status::kOk, test_target("h200_sxm"))});
  try {
    run_export(db, "header");
    FAIL() << "no throw";
  } catch (const UserError& e) {
    EXPECT_NE(std::string(e.what()).find("holds records of 2 targets; choose one with --target"), std::string::npos);
  }
  ExportOptions o;
  o.target_fingerprint = test_target("h200_sxm").fingerprint();
  EXPECT_NE(run_export(db, "header", o).text.find("300.00 us"), std::string::npos);
  o.target_fingerprint = "nope";
  EXPECT_THROW(run_export(db, "header", o), UserError);
  EXPECT_THROW(parse_export_format("xml"), UserError);
}

// Text from records never becomes code in an export: a database is shared between people and
// machines, and records reach it from other databases (merge) and older tools. (Imports refuse
// such records outright; these were committed directly.)
TEST(Export, RecordTextNeverBecomesCode) {
  TempDb tmp("injection");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  Target evil = test_target();
  evil.gpu_name = "GPU */ #include \"/etc/passwd\"\nimport os";
  Record r = gemm_record(kGemm, 64, 450, 1, Status::kOk, evil);
  r.schedule.family = "gemm_tc\nimport os; os.system('echo owned')\n#";
  r.schedule.knobs.emplace_back("x,y\n1", 3);
  db.commit(std::vector<Record>{r});
  auto lines = [](const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    for (size_t end; (end = text.find('\n', start)) != std::string::npos; start = end + 1)
      out.push_back(text.substr(start, end - start));
    return out;
  };
  for (const std::string& line : lines(run_export(db, "triton").text)) {
    EXPECT_NE(line.rfind("import os", 0), 0u) << line;  // only "import triton" starts a line
    const size_t code = line.find("os.system");
    if (code != std::string::npos) {
      EXPECT_LT(line.find('#'), code) << "outside a comment: " << line;
    }
  }
  ExportResult header = run_export(db, "header");
  for (const std::string& line : lines(header.text)) {
    EXPECT_NE(line.rfind("#include", 0), 0u) << line;
    EXPECT_NE(line.rfind("import os", 0), 0u) << line;
  }
  EXPECT_NE(header.text.find("_FAMILY \"gemm_tc\\012import os; os.system('echo owned')\\012#\""), std::string::npos)
      << header.text;
  // The comment holding the GPU name cannot be closed early.
  EXPECT_EQ(header.text.find("GPU */"), std::string::npos);
  ExportResult csv = run_export(db, "cutlass");
  std::vector<std::string> rows = lines(csv.text);
  ASSERT_EQ(rows.size(), 2u) << csv.text;  // the header and one row: nothing split it
  // The family's line breaks stay data: escaped, inside the one quoted operation field.
  EXPECT_NE(rows[1].find(",\"tessera_gemm_tc\\nimport os; os.system('echo owned')\\n#_"), std::string::npos) << rows[1];
}

TEST(Import, BadJsonLinesNameTheLine) {
  std::string good = Json::parse(Json(gemm_record(kGemm, 64, 450, 1).to_json()).dump()).dump();
  auto error = [](const std::string& text) {
    try {
      import_jsonl(text, "in.jsonl");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_EQ(import_jsonl(good + "\n\n" + good + "\n", "in.jsonl").size(), 2u);
  EXPECT_EQ(error(good + "\n{\"workload\": ").rfind("in.jsonl:2: invalid JSON", 0), 0u);
  EXPECT_EQ(error(good + "\n[1, 2]\n").rfind("in.jsonl:2: expected a JSON object", 0), 0u);
  EXPECT_NE(error("{\"format\": \"tessera-record-9\"}").find("is not tessera-record-1"), std::string::npos);
  Json bad = gemm_record(kGemm, 64, 450, 1).to_json();
  bad["workload"]["m"] = -1;
  EXPECT_EQ(error(bad.dump()).rfind("in.jsonl:1: invalid workload JSON", 0), 0u) << error(bad.dump());
}

TEST(Import, BadKernelTunerCachesAreClearErrors) {
  KernelTunerImport info{Workload::parse(kGemm), "gemm_tc", test_target()};
  auto error = [&](const std::string& text) {
    try {
      import_kernel_tuner(text, info, "kt.json");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  std::string head = R"({"device_name": "GPU", "tune_params_keys": ["block_m"], "cache": )";
  EXPECT_NE(error("[]").find("a Kernel Tuner cache is a JSON object"), std::string::npos);
  EXPECT_NE(error("{}").find("missing field \"device_name\""), std::string::npos);
  EXPECT_NE(error(head + R"({"64": {"block_m": 64}}})").find("missing \"time\""), std::string::npos);
  EXPECT_NE(error(head + R"({"64": {"block_m": 0.5, "time": 1}}})").find("is not an integer"), std::string::npos);
  EXPECT_NE(error(head + R"({"64": {"block_m": 64, "time": "Exploded"}}})").find("unknown error value"), std::string::npos);
  EXPECT_NE(error(head + R"({"64": {"block_m": 64, "time": -1}}})").find("positive number"), std::string::npos);
  // 1e308 ms is infinite in microseconds: once stored, exported as null and refused back.
  EXPECT_NE(error(head + R"({"64": {"block_m": 64, "time": 1e308}}})").find("inf is out of range"), std::string::npos);
  // Keys end up as names in exported code.
  EXPECT_NE(error(R"({"device_name": "GPU", "tune_params_keys": ["block m"], "cache": {"1": {"block m": 1, "time": 1}}})")
                .find("knob \"block m\" is not a name"),
            std::string::npos);
  // And a further check (the CLI's: known families and knobs) sees every record.
  int checked = 0;
  import_kernel_tuner(head + R"({"64": {"block_m": 64, "time": 1}, "128": {"block_m": 128, "time": 2}}})", info, "kt.json",
                      [&](const Record&, const std::string& where) {
                        EXPECT_EQ(where.rfind("kt.json: cache entry", 0), 0u);
                        ++checked;
                      });
  EXPECT_EQ(checked, 2);
  EXPECT_NE(error(head + R"({"64": {"block_m": 64, "time": 1, "timestamp": "yesterday"}}})").find("timestamp"),
            std::string::npos);
}

// Randomized corruption of valid inputs: every outcome is a parse or a UserError, never a
// crash or another exception type (run under the sanitizer preset too).
TEST(Import, FuzzedInputsNeverCrash) {
  TempDb tmp("fuzz");
  TuningDatabase db = TuningDatabase::open(tmp.path());
  db.commit(sample_records());
  std::string jsonl = run_export(db, "jsonl").text;
  ExportOptions o;
  o.workload_key = Workload::parse(kGemm).key();
  std::string cache = run_export(db, "kerneltuner", o).text;
  KernelTunerImport info{Workload::parse(kGemm), "gemm_tc", test_target()};
  std::mt19937 rng(1234);
  const std::string alphabet = "{}[]\":,0123456789.-eE truefalsnul\n\\x";
  int parsed = 0, rejected = 0;
  for (int iter = 0; iter < 3000; ++iter) {
    std::string text = iter % 2 ? jsonl : cache;
    int edits = 1 + static_cast<int>(rng() % 8);
    for (int e = 0; e < edits && !text.empty(); ++e) {
      size_t pos = rng() % text.size();
      switch (rng() % 4) {
        case 0: text[pos] = alphabet[rng() % alphabet.size()]; break;
        case 1: text.erase(pos, 1 + rng() % 16); break;
        case 2: text.insert(pos, 1, alphabet[rng() % alphabet.size()]); break;
        case 3: text.resize(pos); break;
      }
    }
    try {
      if (iter % 2) import_jsonl(text, "fuzz.jsonl");
      else import_kernel_tuner(text, info, "fuzz.json");
      ++parsed;
    } catch (const UserError&) {
      ++rejected;
    }
  }
  EXPECT_GT(rejected, 1000);  // the corruption really did reach the parsers
  EXPECT_EQ(parsed + rejected, 3000);
}

}  // namespace
}  // namespace tessera::db
