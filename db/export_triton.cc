// Triton export: a Python file that works as pasted. Per matmul workload key, the fastest
// measured schedules as triton.Config objects in Triton's own terms, and the matmul kernel
// they configure (plain, transposed-B, batched, with Tessera's fused epilogues), with a
// wrapper that launches it from a key's best config.
//
// Triton's meaning of a schedule: BLOCK_SIZE_M/N/K and GROUP_SIZE_M (the names of Triton's
// matmul tutorial), num_warps the warps that compute the product (ExportOptions::mma_warps:
// a Hopper kernel's consumer warpgroups, not its producer), num_stages the shared-memory
// pipeline's depth; an f32 key says the precision it was
// measured in (INPUT_PRECISION: "ieee" for SIMT FP32, "tf32" for tensor-core TF32), since
// tl.dot reads f32 as tf32 unless told. Tessera's own knobs (split-K, TMA stores, ping-pong
// consumers, clusters) have no Triton equivalent here: they are named in the config's
// comment (num_ctas 2 made Triton 3.6 fail to compile the kernel on the lent H100), and schedules
// that differ only in them are one config (the fastest).
#include <set>
#include <tuple>

#include "core/error.h"
#include "db/export_common.h"

namespace tessera::db::export_detail {
namespace {

struct TritonConfig {
  int64_t bm = 0, bn = 0, bk = 0, group = 1, warps = 0, stages = 2;
  std::string precision = "default";
  auto tie() const { return std::tie(bm, bn, bk, group, warps, stages, precision); }
  bool operator<(const TritonConfig& o) const { return tie() < o.tie(); }
};

// Knobs of the schedule that the Triton kernel does not have, for the config's comment.
std::string tessera_only(const Schedule& s) {
  std::string out;
  static const std::set<std::string> mapped = {std::string(knob::kBlockM), std::string(knob::kBlockN),
                                               std::string(knob::kBlockK), std::string(knob::kGroupM),
                                               std::string(knob::kStages), std::string(knob::kWarps)};
  for (const auto& [name, value] : s.knobs) {
    if (mapped.count(name)) continue;
    out += (out.empty() ? "" : ", ") + name + "=" + std::to_string(value);
  }
  return out;
}

const char* kKernel = R"PY(

@triton.jit
def _epilogue_step(acc, STEP: tl.constexpr, bias_ptr, res_ptr, offs_n, c_offsets, mask_n, mask_c):
    # One step of Tessera's fused epilogue, in f32: bias (per column), relu, gelu (the exact
    # erf form), residual (C's shape).
    if STEP == "bias":
        acc += tl.load(bias_ptr + offs_n, mask=mask_n, other=0.0).to(tl.float32)[None, :]
    elif STEP == "relu":
        acc = tl.maximum(acc, 0.0)
    elif STEP == "gelu":
        acc = 0.5 * acc * (1.0 + tl.erf(acc * 0.7071067811865476))
    elif STEP == "residual":
        acc += tl.load(res_ptr + c_offsets, mask=mask_c, other=0.0).to(tl.float32)
    return acc


@triton.jit
def matmul_kernel(a_ptr, b_ptr, c_ptr, bias_ptr, res_ptr, M, N, K,
                  stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn, stride_cb, stride_cm, stride_cn,
                  BLOCK_SIZE_M: tl.constexpr, BLOCK_SIZE_N: tl.constexpr, BLOCK_SIZE_K: tl.constexpr,
                  GROUP_SIZE_M: tl.constexpr, INPUT_PRECISION: tl.constexpr,
                  STEP0: tl.constexpr, STEP1: tl.constexpr, STEP2: tl.constexpr, STEP3: tl.constexpr):
    # C[b] = epilogue(A[b] @ B[b]) over program_id(1) = b; B's strides say whether it is
    # [K, N] or, transposed, [N, K]. GROUP_SIZE_M tile-rows share each tile-column's B in L2.
    pid = tl.program_id(0)
    batch = tl.program_id(1).to(tl.int64)
    num_pid_m = tl.cdiv(M, BLOCK_SIZE_M)
    num_pid_n = tl.cdiv(N, BLOCK_SIZE_N)
    in_group = GROUP_SIZE_M * num_pid_n
    first_m = (pid // in_group) * GROUP_SIZE_M
    rows = min(num_pid_m - first_m, GROUP_SIZE_M)
    pid_m = first_m + (pid % in_group) % rows
    pid_n = (pid % in_group) // rows
    offs_m = pid_m * BLOCK_SIZE_M + tl.arange(0, BLOCK_SIZE_M)
    offs_n = pid_n * BLOCK_SIZE_N + tl.arange(0, BLOCK_SIZE_N)
    offs_k = tl.arange(0, BLOCK_SIZE_K)
    a_ptrs = a_ptr + batch * stride_ab + offs_m[:, None] * stride_am + offs_k[None, :] * stride_ak
    b_ptrs = b_ptr + batch * stride_bb + offs_k[:, None] * stride_bk + offs_n[None, :] * stride_bn
    acc = tl.zeros((BLOCK_SIZE_M, BLOCK_SIZE_N), dtype=tl.float32)
    for k in range(0, tl.cdiv(K, BLOCK_SIZE_K)):
        left = K - k * BLOCK_SIZE_K
        a = tl.load(a_ptrs, mask=(offs_m[:, None] < M) & (offs_k[None, :] < left), other=0.0)
        b = tl.load(b_ptrs, mask=(offs_k[:, None] < left) & (offs_n[None, :] < N), other=0.0)
        if INPUT_PRECISION == "default":
            acc = tl.dot(a, b, acc)
        else:
            acc = tl.dot(a, b, acc, input_precision=INPUT_PRECISION)
        a_ptrs += BLOCK_SIZE_K * stride_ak
        b_ptrs += BLOCK_SIZE_K * stride_bk
    mask_n = offs_n < N
    mask_c = (offs_m[:, None] < M) & mask_n[None, :]
    c_offsets = batch * stride_cb + offs_m[:, None] * stride_cm + offs_n[None, :] * stride_cn
    acc = _epilogue_step(acc, STEP0, bias_ptr, res_ptr, offs_n, c_offsets, mask_n, mask_c)
    acc = _epilogue_step(acc, STEP1, bias_ptr, res_ptr, offs_n, c_offsets, mask_n, mask_c)
    acc = _epilogue_step(acc, STEP2, bias_ptr, res_ptr, offs_n, c_offsets, mask_n, mask_c)
    acc = _epilogue_step(acc, STEP3, bias_ptr, res_ptr, offs_n, c_offsets, mask_n, mask_c)
    tl.store(c_ptr + c_offsets, acc.to(c_ptr.dtype.element_ty), mask=mask_c)


DEFAULT_CONFIG = triton.Config({"BLOCK_SIZE_M": 128, "BLOCK_SIZE_N": 128, "BLOCK_SIZE_K": 32, "GROUP_SIZE_M": 8,
                                "INPUT_PRECISION": "default"}, num_warps=4, num_stages=3)


def matmul(a, b, bias=None, residual=None, epilogue="", trans_b=False, key=None, config=None):
    """epilogue(a @ b) as Tessera's matmul workloads compute it: a [M, K] or [batch, M, K]; b
    [K, N] (trans_b: [N, K]), or batched likewise; epilogue steps joined by '+' and applied in
    order: bias ([N]), relu, gelu, residual (the output's shape). The launch uses `config`,
    else the fastest of CONFIGS[key], else DEFAULT_CONFIG."""
    steps = [s for s in epilogue.split("+") if s]
    if len(steps) > 4 or any(s not in ("bias", "relu", "gelu", "residual") for s in steps):
        raise ValueError("epilogue steps are bias, relu, gelu and residual, at most 4: " + repr(epilogue))
    if ("bias" in steps) != (bias is not None) or ("residual" in steps) != (residual is not None):
        raise ValueError("pass bias and residual exactly when the epilogue names them")
    batched = a.dim() == 3
    A = a if batched else a.unsqueeze(0)
    B = b if b.dim() == 3 else b.unsqueeze(0)
    if trans_b:
        B = B.transpose(1, 2)
    batch, M, K = A.shape
    N = B.shape[2]
    if B.shape[1] != K:
        raise ValueError(f"a is {tuple(a.shape)} and b {tuple(b.shape)}{' (transposed)' if trans_b else ''}")
    c = torch.empty((batch, M, N), device=a.device, dtype=a.dtype)
    res = residual.reshape(batch, M, N).contiguous() if residual is not None else c
    if config is None:
        config = CONFIGS[key][0] if CONFIGS.get(key) else DEFAULT_CONFIG
    meta = dict(config.kwargs)
    meta.update({f"STEP{i}": steps[i] if i < len(steps) else "" for i in range(4)})
    grid = (triton.cdiv(M, meta["BLOCK_SIZE_M"]) * triton.cdiv(N, meta["BLOCK_SIZE_N"]), batch)
    matmul_kernel[grid](A, B, c, bias if bias is not None else c, res, M, N, K,
                        A.stride(0), A.stride(1), A.stride(2), B.stride(0) if b.dim() == 3 else 0, B.stride(1),
                        B.stride(2), c.stride(0), c.stride(1), c.stride(2),
                        num_warps=config.num_warps, num_stages=config.num_stages, num_ctas=config.num_ctas, **meta)
    return c if batched else c[0]
)PY";

}  // namespace

ExportResult export_triton(TuningDatabase& db, const ExportOptions& o) {
  ExportResult result;
  Target target = choose_target(db, o);
  std::string body;
  // More records than configs asked for: schedules that differ only in Tessera's own knobs
  // are one Triton config.
  const int wanted = std::max(1, o.top_k);
  for (const WorkloadBest& wb : best_per_workload(db, target, o, result, std::min(wanted * 8, 1000))) {
    const Workload& w = wb.workload;
    if (w.kind != OpKind::kMatmul && w.kind != OpKind::kBatchMatmul) {
      result.skipped.push_back(w.key() + ": Triton configs are exported for matmul workloads only");
      continue;
    }
    if (w.matmul().trans_a) {
      result.skipped.push_back(w.key() + ": the exported kernel takes A as [M, K] (ta=1 is not written)");
      continue;
    }
    std::set<TritonConfig> seen;
    std::string configs;
    int written = 0;
    for (const StoredRecord& s : wb.records) {
      if (written == wanted) break;
      const Schedule& sc = s.record.schedule;
      auto bm = sc.find(knob::kBlockM), bn = sc.find(knob::kBlockN), bk = sc.find(knob::kBlockK);
      if (!bm || !bn || !bk) {
        result.skipped.push_back(w.key() + ": schedule " + sc.key() + " has no block_m/block_n/block_k");
        continue;
      }
      TritonConfig c;
      c.bm = *bm;
      c.bn = *bn;
      c.bk = *bk;
      if (auto g = sc.find(knob::kGroupM)) c.group = *g;
      if (auto st = sc.find(knob::kStages)) c.stages = *st;  // else registers double-buffer: 2
      // Not num_ctas: Triton 3.6 fails to compile this kernel with num_ctas 2 (TritonGPUPlanCTAPass,
      // seen on the lent H100); a cluster stays in the comment.
      std::optional<int64_t> warps = o.mma_warps ? o.mma_warps(s.record) : std::nullopt;
      if (!warps) warps = sc.find(knob::kWarps);
      c.warps = warps.value_or(0);
      if (w.dtype == DType::kF32) c.precision = sc.family == "gemm_tf32" ? "tf32" : "ieee";
      if (!seen.insert(c).second) continue;
      std::string kwargs = "\"BLOCK_SIZE_M\": " + std::to_string(c.bm) + ", \"BLOCK_SIZE_N\": " + std::to_string(c.bn) +
                           ", \"BLOCK_SIZE_K\": " + std::to_string(c.bk) + ", \"GROUP_SIZE_M\": " +
                           std::to_string(c.group) + ", \"INPUT_PRECISION\": " + python_string(c.precision);
      std::string extra = (c.warps > 0 ? ", num_warps=" + std::to_string(c.warps) : std::string()) +
                          ", num_stages=" + std::to_string(c.stages);
      std::string note = tessera_only(sc);
      configs += "        triton.Config({" + kwargs + "}" + extra + "),  # " +
                 num(s.record.measurement.median_us, "%.2f") + " us, " + comment_text(sc.family) +
                 (note.empty() ? "" : " (" + comment_text(note) + ")") + (c.warps > 0 ? "" : ", warps unknown") + "\n";
      ++written;
      ++result.items;
    }
    if (configs.empty()) continue;
    if (w.dtype == DType::kF32) body += "    # f32: measured in the precision INPUT_PRECISION names\n";
    body += "    " + python_string(w.key()) + ": [\n" + configs + "    ],\n";
  }
  if (result.items == 0)
    throw UserError(db.path() + ": no measured matmul schedule on " + target.fingerprint() +
                    " to export as Triton configs" + (result.skipped.empty() ? "" : " (" + result.skipped.front() + ")"));
  result.text = header_comment("#", db, target, o) +
                "# Triton autotuning configs: for each Tessera workload key (`tessera workload show`), the\n"
                "# fastest measured schedules in Triton's terms, fastest first, with Tessera's median kernel\n"
                "# time; and the matmul kernel they configure. `matmul(a, b, ..., key=KEY)` runs it with a\n"
                "# key's best config; `triton.autotune(configs=configs_for(KEY), key=[\"M\", \"N\", \"K\"])`\n"
                "# over matmul_kernel tries them all.\n"
                "import torch\nimport triton\nimport triton.language as tl\n\nCONFIGS = {\n" +
                body +
                "}\n\n\ndef configs_for(key):\n"
                "    \"\"\"The exported configs for a Tessera workload key, or an empty list.\"\"\"\n"
                "    return CONFIGS.get(key, [])\n" +
                kKernel;
  return result;
}

}  // namespace tessera::db::export_detail
