// Only with CUDA: the whole file is compiled out otherwise.
#if TESSERA_HAVE_CUDA
#include "measure/cublaslt.h"

#include <cublasLt.h>

#include "core/error.h"
#include "measure/cuda_call.h"

#define TESSERA_LT_CALL(call)                                                                                \
  do {                                                                                                       \
    cublasStatus_t tessera_lt_rc_ = (call);                                                                  \
    if (tessera_lt_rc_ != CUBLAS_STATUS_SUCCESS)                                                             \
      throw ::tessera::ApiError("cuBLASLt", #call, cublasLtGetStatusString(tessera_lt_rc_), __FILE__, __LINE__); \
  } while (0)

namespace tessera::measure {
namespace {

cudaDataType_t cuda_type(DType t) {
  switch (t) {
    case DType::kF16: return CUDA_R_16F;
    case DType::kBF16: return CUDA_R_16BF;
    case DType::kF32: return CUDA_R_32F;
  }
  return CUDA_R_32F;
}

constexpr size_t kWorkspaceBytes = size_t{32} << 20;
constexpr int kMaxAlgorithms = 8;

}  // namespace

struct LtMatmul::State {
  cublasLtHandle_t handle = nullptr;
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  std::vector<cublasLtMatmulAlgo_t> algos;
  void* workspace = nullptr;
  float beta = 0;
  float alpha = 1;  // the workload's scale on the product (the reference's raw product: 1)
  int bias_input = -1, residual_input = -1, inputs = 2;
  ~State() {
    if (workspace) cudaFree(workspace);
    for (auto* l : {a, b, c, d})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (op) cublasLtMatmulDescDestroy(op);
    if (handle) cublasLtDestroy(handle);
  }
};

LtMatmul::LtMatmul(State* s) : s_(s) {
  for (size_t i = 0; i < s->algos.size(); ++i) algos_.push_back(static_cast<int>(i));
}
LtMatmul::LtMatmul(LtMatmul&& o) noexcept : s_(std::exchange(o.s_, nullptr)), algos_(std::move(o.algos_)) {}
LtMatmul::~LtMatmul() { delete s_; }

std::optional<LtMatmul> LtMatmul::make(const Workload& w, bool reference, std::string& why) {
  if (w.kind != OpKind::kMatmul && w.kind != OpKind::kBatchMatmul) {
    why = "not a matmul";
    return std::nullopt;
  }
  const MatmulShape& m = w.matmul();
  auto state = std::make_unique<State>();
  State& s = *state;
  // Which fused epilogue: additions (bias, residual) must all come before at most one
  // activation, the last step, since cuBLASLt computes act(A B + beta C + bias).
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_DEFAULT;
  if (!reference) {
    bool bias = false, act_seen = false;
    int next_input = 2;
    for (EpilogueOp e : w.epilogue) {
      if (act_seen) {
        why = "cuBLASLt has no fused form of epilogue steps after an activation";
        return std::nullopt;
      }
      switch (e) {
        case EpilogueOp::kBias: bias = true; s.bias_input = next_input++; break;
        case EpilogueOp::kResidual: s.residual_input = next_input++; s.beta = 1; break;
        case EpilogueOp::kRelu: epi = bias ? CUBLASLT_EPILOGUE_RELU_BIAS : CUBLASLT_EPILOGUE_RELU; act_seen = true; break;
        case EpilogueOp::kGelu: epi = bias ? CUBLASLT_EPILOGUE_GELU_BIAS : CUBLASLT_EPILOGUE_GELU; act_seen = true; break;
      }
    }
    if (bias && epi == CUBLASLT_EPILOGUE_DEFAULT) epi = CUBLASLT_EPILOGUE_BIAS;
    s.alpha = static_cast<float>(m.alpha);  // act(alpha A B + beta C + bias): the scale before every step
    s.inputs = next_input;
    if (m.batch > 1 && bias) {
      why = "cuBLASLt bias epilogues are not batched here";
      return std::nullopt;
    }
  } else {
    s.inputs = 2 + static_cast<int>(w.epilogue.size());
  }
  cudaDataType_t in = cuda_type(w.dtype), out = reference ? CUDA_R_32F : cuda_type(w.out_dtype);
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  if (!reference && w.dtype == DType::kF32 && w.allow_tf32) compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  TESSERA_LT_CALL(cublasLtCreate(&s.handle));
  TESSERA_LT_CALL(cublasLtMatmulDescCreate(&s.op, compute, CUDA_R_32F));
  // Row-major C = A B is column-major C^T = B^T A^T: cuBLASLt's "A" is our B, its "B" our A.
  cublasOperation_t op_a = m.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, op_b = m.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  TESSERA_LT_CALL(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSA, &op_a, sizeof op_a));
  TESSERA_LT_CALL(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_TRANSB, &op_b, sizeof op_b));
  TESSERA_LT_CALL(cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
  auto layout = [&](cublasLtMatrixLayout_t& l, cudaDataType_t t, int64_t rows, int64_t cols, int64_t stride) {
    TESSERA_LT_CALL(cublasLtMatrixLayoutCreate(&l, t, static_cast<uint64_t>(rows), static_cast<uint64_t>(cols), rows));
    if (m.batch > 1) {
      int32_t count = static_cast<int32_t>(m.batch);
      TESSERA_LT_CALL(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
      TESSERA_LT_CALL(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
    }
  };
  // Column-major shapes of the stored data: our B is [k, n] row-major = n x k column-major.
  layout(s.a, in, m.trans_b ? m.k : m.n, m.trans_b ? m.n : m.k, m.k * m.n);
  layout(s.b, in, m.trans_a ? m.m : m.k, m.trans_a ? m.k : m.m, m.m * m.k);
  layout(s.c, out, m.n, m.m, m.m * m.n);
  layout(s.d, out, m.n, m.m, m.m * m.n);
  TESSERA_CUDA_CALL(cudaMalloc(&s.workspace, kWorkspaceBytes));
  cublasLtMatmulPreference_t pref = nullptr;
  TESSERA_LT_CALL(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWorkspaceBytes;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  cublasLtMatmulHeuristicResult_t results[kMaxAlgorithms] = {};
  int found = 0;
  cublasStatus_t rc = cublasLtMatmulAlgoGetHeuristic(s.handle, s.op, s.a, s.b, s.c, s.d, pref,
                                                     reference ? 1 : kMaxAlgorithms, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (rc != CUBLAS_STATUS_SUCCESS || found == 0) {
    why = std::string("cuBLASLt offers no algorithm: ") + cublasLtGetStatusString(rc);
    return std::nullopt;
  }
  for (int i = 0; i < found; ++i)
    if (results[i].state == CUBLAS_STATUS_SUCCESS) s.algos.push_back(results[i].algo);
  return LtMatmul(state.release());
}

std::string LtMatmul::launch(int algo, const std::vector<void*>& t, cudaStream_t stream) const {
  State& s = *s_;
  void* d = t.back();
  const void* c = s.residual_input >= 0 ? t[static_cast<size_t>(s.residual_input)] : d;
  if (s.bias_input >= 0) {
    void* bias = t[static_cast<size_t>(s.bias_input)];
    cublasLtMatmulDescSetAttribute(s.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  }
  cublasStatus_t rc = cublasLtMatmul(s.handle, s.op, &s.alpha, t[1], s.a, t[0], s.b, &s.beta, c, s.c, d, s.d,
                                     &s.algos[static_cast<size_t>(algo)], s.workspace, kWorkspaceBytes, stream);
  return rc == CUBLAS_STATUS_SUCCESS ? "" : cublasLtGetStatusString(rc);
}

}  // namespace tessera::measure
#endif
