// A bounded mutation fuzzer for every parser of a user's files: workload specs, GPU specs,
// workload sets, schedules, jsonl records, Kernel Tuner caches, rewrite rules and ONNX models.
// Each target mutates a seed corpus of the project's own files (byte flips, insertions of
// tokens that have broken parsers before, deletions, duplications, splices, truncation, deep
// nesting) and feeds the parser. Every input must parse or be refused with a UserError: any
// other exception, an input slower than --slow-ms, or a crash (which kills the process) fails.
//
//   fuzz_inputs --target NAME [--seconds S] [--seed N] [--slow-ms MS] [--out DIR] [--trace 1]
//
// With --trace 1 every input is written to DIR/fuzz-NAME-current.bin before it is parsed, so
// the one a crash stopped at is there.
//
// ctest runs every target for a bounded time (tests/CMakeLists.txt). The last line is
// machine-readable: "target=NAME inputs=N parsed=P refused=R failures=F seconds=S". A failing
// input is written to DIR (default: the working directory) as fuzz-NAME-K.bin.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/file_io.h"
#include "core/hardware.h"
#include "core/json.h"
#include "core/measurement.h"
#include "core/schedule.h"
#include "core/workload.h"
#include "db/export.h"
#include "graph/onnx_io.h"
#include "graph/rules.h"
#include "search/workload_set.h"

namespace fs = std::filesystem;
using namespace tessera;

namespace {

struct FuzzTarget {
  std::vector<std::string> seeds;
  std::function<void(const std::string&)> parse;  // throws UserError to refuse
  bool text = true;                                // mutate with text tokens and nesting too
};

std::vector<std::string> files_in(const fs::path& dir, const std::string& extension) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec))
    if (e.path().extension() == extension) out.push_back(read_file(e.path().string()));
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> lines_of(const std::string& text, size_t max_lines) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t end; out.size() < max_lines && (end = text.find('\n', start)) != std::string::npos; start = end + 1)
    out.push_back(text.substr(start, end - start));
  return out;
}

std::map<std::string, FuzzTarget> targets() {
  const fs::path root = TESSERA_SOURCE_DIR;
  std::map<std::string, FuzzTarget> t;

  std::vector<std::string> specs, sets = files_in(root / "configs/workloads", ".json");
  for (const std::string& text : sets) {
    const Json set = parse_json(text, "seed");
    for (const Json& e : set["workloads"]) specs.push_back(e["spec"].get<std::string>());
  }
  t["spec"] = {specs, [](const std::string& s) { Workload::parse(s); }, true};
  t["workload_set"] = {sets, [](const std::string& s) { search::parse_workload_set(parse_json(s, "fuzz"), "fuzz"); }, true};
  t["gpu_spec"] = {files_in(root / "configs/gpus", ".json"),
                   [](const std::string& s) { HardwareSpec::from_json(parse_json(s, "fuzz"), "fuzz"); }, true};
  t["schedule"] = {{R"({"family":"gemm_wgmma","knobs":{"block_m":128,"block_n":256,"block_k":64,"stages":4}})",
                    R"({"family":"conv_tc","knobs":{"block_m":64,"block_n":64,"warps_m":2,"vec":8}})"},
                   [](const std::string& s) { Schedule::from_json(parse_json(s, "fuzz"), "fuzz"); }, true};

  const std::vector<std::string> records = lines_of(read_file(TESSERA_CONV_DATASET), 40);
  t["jsonl"] = {records, [](const std::string& s) { db::import_jsonl(s, "fuzz.jsonl"); }, true};
  const std::string cache =
      R"({"schema_version": "1.0.0", "device_name": "NVIDIA H100 80GB HBM3", "kernel_name": "tessera_gemm_tc",)"
      R"( "problem_size": [64, 64, 64], "tune_params_keys": ["block_m", "block_n"], "tune_params": {"block_m": [64],)"
      R"( "block_n": [64, 128]}, "objective": "time", "cache": {"64,64": {"block_m": 64, "block_n": 64, "time": 0.01,)"
      R"( "times": [0.01, 0.011], "timestamp": "2026-12-06 05:00:00+00:00"}, "64,128": {"block_m": 64, "block_n": 128,)"
      R"( "time": "CompilationFailedConfig"}}})";
  t["kerneltuner"] = {{cache, cache.substr(0, cache.size() - 2) + ","},
                      [](const std::string& s) {
                        db::KernelTunerImport info{Workload::parse("matmul:m=64,n=64,k=64:f16"), "gemm_tc",
                                                   tessera::Target::for_spec(find_spec("h100_sxm"), "13.0")};
                        db::import_kernel_tuner(s, info, "fuzz.json");
                      },
                      true};

  std::vector<std::string> rules;
  for (const std::string& file : files_in(root / "configs/rules", ".json")) {
    const Json list = parse_json(file, "seed");
    for (const Json& r : list) rules.push_back(r.dump(1));
  }
  t["rules"] = {rules,
                [](const std::string& s) {
                  Json j = parse_json(s, "fuzz-rule.json");
                  std::unique_ptr<graph::Rule> rule = graph::parse_rule(j, "fuzz-rule.json");
                  graph::verify_rule(*rule, 1);  // a failed verification is a result, not an error
                },
                true};

  std::vector<std::string> models;
  for (const char* name : {"tiny_resblock.onnx", "tiny_inception.onnx", "tiny_bert.onnx"})
    models.push_back(read_file((fs::path(TESSERA_GRAPHS) / name).string()));
  // Exported zoo models with shape arithmetic (Shape, Gather, Reshape) and weights stripped;
  // two of opsets 20 and 21, which import rewrites to opset 17 (Reduce axes inputs in T5).
  for (const char* name : {"zoo_squeezenet.onnx", "zoo_shufflenet_v2.onnx", "zoo_resnet18_opset20.onnx",
                           "zoo_t5_encoder_opset21.onnx"})
    models.push_back(read_file((fs::path(TESSERA_ZOO) / name).string()));
  t["onnx"] = {models, [](const std::string& s) { graph::import_onnx_bytes(s, "fuzz.onnx"); }, false};
  return t;
}

// Tokens that broke parsers before: huge, negative, zero and non-finite numbers, brackets,
// quotes, control characters, separators of the spec grammar.
const std::vector<std::string> kTokens = {
    "-1",   "0",     "1e308", "-1e308", "2147483648", "9223372036854775807", "18446744073709551616", "1e-400",
    "NaN",  "null",  "true",  "\"\"",   "[",          "{",                   "]",                    "}",
    ",",    ":",     "\"",    "\\u0000", "\n",        "\x01",                "=",                    "x",
    "1000000007", "4294967296", "65536", ":f16", ",k=", "groups=", "epilogue=", "9.99999999999999999999"};

std::string mutate(const std::vector<std::string>& seeds, const FuzzTarget& t, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  std::string s = seeds[pick(seeds.size())];
  const int edits = 1 + static_cast<int>(rng() % 6);
  for (int e = 0; e < edits; ++e) {
    const size_t pos = pick(s.size() + 1);
    switch (rng() % (t.text ? 9 : 6)) {
      case 0:
        if (!s.empty()) s[std::min(pos, s.size() - 1)] ^= static_cast<char>(1u << (rng() % 8));
        break;
      case 1: s.insert(pos, 1, static_cast<char>(rng() % 256)); break;
      case 2: s.erase(pos, 1 + pick(32)); break;
      case 3: {  // duplicate a range
        const size_t from = pick(s.size()), len = std::min<size_t>(1 + pick(64), s.size() - from);
        s.insert(pos, s.substr(from, len));
        break;
      }
      case 4: s.resize(pos); break;
      case 5: {  // splice with another seed
        const std::string& other = seeds[pick(seeds.size())];
        s = s.substr(0, pos) + other.substr(pick(other.size()));
        break;
      }
      case 6: s.insert(pos, kTokens[pick(kTokens.size())]); break;
      case 7: {  // a number replaced by a token
        size_t d = s.find_first_of("0123456789", pos);
        if (d == std::string::npos) break;
        size_t end = s.find_first_not_of("0123456789.eE-", d);
        s.replace(d, (end == std::string::npos ? s.size() : end) - d, kTokens[pick(10)]);
        break;
      }
      case 8: {  // deep nesting
        const size_t depth = rng() % 3 == 0 ? 100000 : 1 + pick(80);
        s.insert(pos, std::string(depth, rng() % 2 ? '[' : '{'));
        break;
      }
    }
    if (s.size() > (1u << 22)) s.resize(1u << 22);
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string name;
  double seconds = 10;
  uint64_t seed = 1;
  int64_t slow_ms = 5000;
  fs::path out_dir = ".";
  bool trace = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--target") name = value;
    else if (flag == "--seconds") seconds = std::stod(value);
    else if (flag == "--seed") seed = std::stoull(value);
    else if (flag == "--slow-ms") slow_ms = std::stoll(value);
    else if (flag == "--out") out_dir = value;
    else if (flag == "--trace") trace = value == "1";
    else {
      std::cerr << "fuzz_inputs: unknown flag " << flag << "\n";
      return 2;
    }
  }
  std::map<std::string, FuzzTarget> all = targets();
  auto it = all.find(name);
  if (it == all.end()) {
    std::cerr << "fuzz_inputs: --target must be one of:";
    for (const auto& [n, t] : all) std::cerr << " " << n;
    std::cerr << "\n";
    return 2;
  }
  const FuzzTarget& target = it->second;
  std::mt19937_64 rng(seed);
  int64_t inputs = 0, parsed = 0, refused = 0, failures = 0;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); };
  auto fail = [&](const std::string& input, const std::string& why) {
    const fs::path file = out_dir / ("fuzz-" + name + "-" + std::to_string(failures) + ".bin");
    std::ofstream(file, std::ios::binary) << input;
    std::cerr << "fuzz_inputs: " << name << ": " << one_line(why, 400) << " (input saved to " << file.string() << ")\n";
    ++failures;
  };
  // The seeds themselves first, then mutants until the time is up.
  for (size_t i = 0; elapsed() < seconds; ++i) {
    const std::string input = i < target.seeds.size() ? target.seeds[i] : mutate(target.seeds, target, rng);
    ++inputs;
    if (trace) std::ofstream(out_dir / ("fuzz-" + name + "-current.bin"), std::ios::binary) << input;
    const auto t0 = std::chrono::steady_clock::now();
    try {
      target.parse(input);
      ++parsed;
    } catch (const UserError&) {
      ++refused;
    } catch (const InternalError& e) {
      fail(input, std::string("internal error: ") + e.what());
    } catch (const std::exception& e) {
      fail(input, std::string("not a UserError: ") + e.what());
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
    if (ms > slow_ms) fail(input, "took " + std::to_string(ms) + " ms");
    if (failures >= 20) break;
  }
  std::printf("target=%s inputs=%lld parsed=%lld refused=%lld failures=%lld seconds=%.1f\n", name.c_str(),
              static_cast<long long>(inputs), static_cast<long long>(parsed), static_cast<long long>(refused),
              static_cast<long long>(failures), elapsed());
  return failures == 0 ? 0 : 1;
}
