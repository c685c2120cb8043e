// Only with CUDA: the whole file is compiled out otherwise.
#if TESSERA_HAVE_CUDA
#include "measure/cudnn_conv.h"

#include <utility>

#include "core/error.h"
#include "measure/cudnn_api.h"

namespace tessera::measure {
namespace {

const char* algo_name(cudnnConvolutionFwdAlgo_t a) {
  switch (a) {
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM: return "IMPLICIT_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_PRECOMP_GEMM: return "IMPLICIT_PRECOMP_GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_GEMM: return "GEMM";
    case CUDNN_CONVOLUTION_FWD_ALGO_DIRECT: return "DIRECT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT: return "FFT";
    case CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING: return "FFT_TILING";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD: return "WINOGRAD";
    case CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED: return "WINOGRAD_NONFUSED";
    default: return "other";
  }
}

}  // namespace

std::optional<CudnnFusedEpilogue> cudnn_fused_epilogue(const std::vector<EpilogueOp>& ops) {
  CudnnFusedEpilogue f;
  int next = 2;  // after X and W
  for (size_t i = 0; i < ops.size(); ++i) {
    switch (ops[i]) {
      case EpilogueOp::kBias:
        if (f.bias >= 0) return std::nullopt;
        f.bias = next++;
        break;
      case EpilogueOp::kResidual:
        if (f.residual >= 0) return std::nullopt;
        f.residual = next++;
        break;
      case EpilogueOp::kRelu:
        if (i + 1 != ops.size()) return std::nullopt;
        f.relu = true;
        break;
      case EpilogueOp::kGelu: return std::nullopt;
    }
  }
  return f;
}

struct CudnnConv::State {
  const CudnnApi* a = nullptr;
  cudnnHandle_t handle = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  std::vector<cudnnConvolutionFwdAlgoPerf_t> algos;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // Fused epilogue: its form, the bias's descriptor ([1, K, 1, 1]), the activation, and K zeros
  // where the epilogue has no bias (the call needs one).
  std::optional<CudnnFusedEpilogue> fused;
  cudnnTensorDescriptor_t bias = nullptr;
  cudnnActivationDescriptor_t act = nullptr;
  void* zero_bias = nullptr;
  ~State() {
    if (zero_bias) cudaFree(zero_bias);
    if (act) a->cudnnDestroyActivationDescriptor(act);
    if (bias) a->cudnnDestroyTensorDescriptor(bias);
    if (workspace) cudaFree(workspace);
    if (conv) a->cudnnDestroyConvolutionDescriptor(conv);
    if (w) a->cudnnDestroyFilterDescriptor(w);
    if (x) a->cudnnDestroyTensorDescriptor(x);
    if (y) a->cudnnDestroyTensorDescriptor(y);
    if (handle) a->cudnnDestroy(handle);
  }
};

CudnnConv::CudnnConv(State* s) : s_(s) {}
CudnnConv::CudnnConv(CudnnConv&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
CudnnConv::~CudnnConv() { delete s_; }
int CudnnConv::algorithms() const { return static_cast<int>(s_->algos.size()); }
std::string CudnnConv::algorithm_name(int i) const { return algo_name(s_->algos[static_cast<size_t>(i)].algo); }
bool CudnnConv::fused() const { return s_->fused.has_value(); }

std::optional<CudnnConv> CudnnConv::make(const Workload& w, std::string& why, bool fuse) {
  if (w.kind != OpKind::kConv2d) {
    why = "not a conv2d";
    return std::nullopt;
  }
  const CudnnApi* a = cudnn_api(why);
  if (!a) return std::nullopt;
  const Conv2dShape& c = w.conv2d();
  auto state = std::make_unique<State>();
  State& s = *state;
  s.a = a;
  auto failed = [&](cudnnStatus_t rc, const char* what) {
    why = std::string(what) + ": " + a->cudnnGetErrorString(rc);
    return std::nullopt;
  };
  cudnnStatus_t rc;
  if ((rc = a->cudnnCreate(&s.handle)) != CUDNN_STATUS_SUCCESS) return failed(rc, "cudnnCreate");
  cudnnTensorFormat_t format = c.layout == Layout::kNHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  a->cudnnCreateTensorDescriptor(&s.x);
  a->cudnnCreateTensorDescriptor(&s.y);
  a->cudnnCreateFilterDescriptor(&s.w);
  a->cudnnCreateConvolutionDescriptor(&s.conv);
  auto i32 = [](int64_t v) { return static_cast<int>(v); };
  if ((rc = a->cudnnSetTensor4dDescriptor(s.x, format, cudnn_type(w.dtype), i32(c.n), i32(c.c), i32(c.h), i32(c.w))) !=
      CUDNN_STATUS_SUCCESS)
    return failed(rc, "input descriptor");
  if ((rc = a->cudnnSetTensor4dDescriptor(s.y, format, cudnn_type(w.out_dtype), i32(c.n), i32(c.k), i32(c.out_h()),
                                          i32(c.out_w()))) != CUDNN_STATUS_SUCCESS)
    return failed(rc, "output descriptor");
  if ((rc = a->cudnnSetFilter4dDescriptor(s.w, cudnn_type(w.dtype), format, i32(c.k), i32(c.c / c.groups), i32(c.r),
                                          i32(c.s))) != CUDNN_STATUS_SUCCESS)
    return failed(rc, "filter descriptor");
  if ((rc = a->cudnnSetConvolution2dDescriptor(s.conv, i32(c.pad_h), i32(c.pad_w), i32(c.stride_h), i32(c.stride_w),
                                               i32(c.dilation_h), i32(c.dilation_w), CUDNN_CROSS_CORRELATION,
                                               CUDNN_DATA_FLOAT)) != CUDNN_STATUS_SUCCESS)
    return failed(rc, "convolution descriptor");
  a->cudnnSetConvolutionGroupCount(s.conv, i32(c.groups));
  cudnnMathType_t math = w.dtype != DType::kF32 ? CUDNN_TENSOR_OP_MATH : w.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
  a->cudnnSetConvolutionMathType(s.conv, math);
  cudnnConvolutionFwdAlgoPerf_t perf[8];
  int found = 0;
  if ((rc = a->cudnnGetConvolutionForwardAlgorithm_v7(s.handle, s.x, s.w, s.conv, s.y, 8, &found, perf)) !=
      CUDNN_STATUS_SUCCESS)
    return failed(rc, "cudnnGetConvolutionForwardAlgorithm_v7");
  for (int i = 0; i < found; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS && perf[i].memory <= (size_t{1} << 30)) {
      s.algos.push_back(perf[i]);
      s.workspace_bytes = std::max(s.workspace_bytes, perf[i].memory);
    }
  if (s.algos.empty()) {
    why = "cuDNN offers no algorithm for this convolution";
    return std::nullopt;
  }
  if (s.workspace_bytes > 0 && cudaMalloc(&s.workspace, s.workspace_bytes) != cudaSuccess) {
    why = "cannot allocate cuDNN's workspace";
    return std::nullopt;
  }
  if (fuse) {
    s.fused = cudnn_fused_epilogue(w.epilogue);
    if (!s.fused) {
      why = "cuDNN has no fused form of this epilogue";
      return std::nullopt;
    }
    if (!a->cudnnConvolutionBiasActivationForward || !a->cudnnCreateActivationDescriptor ||
        !a->cudnnSetActivationDescriptor || !a->cudnnDestroyActivationDescriptor) {
      why = "libcudnn.so.9 lacks cudnnConvolutionBiasActivationForward";
      return std::nullopt;
    }
    a->cudnnCreateTensorDescriptor(&s.bias);
    if ((rc = a->cudnnSetTensor4dDescriptor(s.bias, format, cudnn_type(w.out_dtype), 1, i32(c.k), 1, 1)) !=
        CUDNN_STATUS_SUCCESS)
      return failed(rc, "bias descriptor");
    a->cudnnCreateActivationDescriptor(&s.act);
    if ((rc = a->cudnnSetActivationDescriptor(s.act, s.fused->relu ? CUDNN_ACTIVATION_RELU : CUDNN_ACTIVATION_IDENTITY,
                                              CUDNN_NOT_PROPAGATE_NAN, 0.0)) != CUDNN_STATUS_SUCCESS)
      return failed(rc, "activation descriptor");
    if (s.fused->bias < 0) {
      const size_t bytes = static_cast<size_t>(c.k) * dtype_bytes(w.out_dtype);
      if (cudaMalloc(&s.zero_bias, bytes) != cudaSuccess || cudaMemset(s.zero_bias, 0, bytes) != cudaSuccess) {
        why = "cannot allocate a zero bias";
        return std::nullopt;
      }
    }
  }
  return CudnnConv(state.release());
}

std::string CudnnConv::launch(int i, const std::vector<void*>& t, cudaStream_t stream) const {
  const State& s = *s_;
  s.a->cudnnSetStream(s.handle, stream);
  float alpha = 1, beta = 0;
  const cudnnConvolutionFwdAlgoPerf_t& p = s.algos[static_cast<size_t>(i)];
  if (s.fused) {
    // y = act(alpha1 * conv(x) + alpha2 * z + bias); without a residual z is y itself, scaled by 0.
    const CudnnFusedEpilogue& f = *s.fused;
    float alpha2 = f.residual >= 0 ? 1.0f : 0.0f;
    const void* z = f.residual >= 0 ? t[static_cast<size_t>(f.residual)] : t.back();
    const void* bias = f.bias >= 0 ? t[static_cast<size_t>(f.bias)] : s.zero_bias;
    cudnnStatus_t rc = s.a->cudnnConvolutionBiasActivationForward(s.handle, &alpha, s.x, t[0], s.w, t[1], s.conv, p.algo,
                                                                  s.workspace, p.memory, &alpha2, s.y, z, s.bias, bias,
                                                                  s.act, s.y, t.back());
    return rc == CUDNN_STATUS_SUCCESS ? "" : s.a->cudnnGetErrorString(rc);
  }
  cudnnStatus_t rc = s.a->cudnnConvolutionForward(s.handle, &alpha, s.x, t[0], s.w, t[1], s.conv, p.algo, s.workspace,
                                                  p.memory, &beta, s.y, t.back());
  return rc == CUDNN_STATUS_SUCCESS ? "" : s.a->cudnnGetErrorString(rc);
}

}  // namespace tessera::measure
#endif
