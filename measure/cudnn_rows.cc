// Only with CUDA: the whole file is compiled out otherwise.
#if TESSERA_HAVE_CUDA
#include "measure/cudnn_rows.h"

#include <memory>
#include <utility>

#include "measure/cudnn_api.h"

namespace tessera::measure {

struct CudnnRows::State {
  const CudnnApi* a = nullptr;
  cudnnHandle_t handle = nullptr;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnReduceTensorDescriptor_t reduce = nullptr;  // null for softmax
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  std::string routine;
  ~State() {
    if (workspace) cudaFree(workspace);
    if (reduce) a->cudnnDestroyReduceTensorDescriptor(reduce);
    if (x) a->cudnnDestroyTensorDescriptor(x);
    if (y) a->cudnnDestroyTensorDescriptor(y);
    if (handle) a->cudnnDestroy(handle);
  }
};

CudnnRows::CudnnRows(State* s) : s_(s) {}
CudnnRows::CudnnRows(CudnnRows&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
CudnnRows::~CudnnRows() { delete s_; }
std::string CudnnRows::routine() const { return s_->routine; }

std::optional<CudnnRows> CudnnRows::make(const Workload& w, std::string& why) {
  if (w.kind == OpKind::kLayernorm) {
    why = "cuDNN has layernorm only in its graph API (not used here)";
    return std::nullopt;
  }
  if (w.kind != OpKind::kSoftmax && w.kind != OpKind::kReduce) {
    why = "cuDNN has no routine for " + std::string(op_kind_name(w.kind));
    return std::nullopt;
  }
  if (w.dtype != w.out_dtype) {
    why = "cuDNN's routine takes one type for input and output";
    return std::nullopt;
  }
  const CudnnApi* a = cudnn_api(why);
  if (!a) return std::nullopt;
  const bool softmax = w.kind == OpKind::kSoftmax;
  const int64_t rows = softmax ? w.rows().rows : w.reduce().rows, cols = softmax ? w.rows().cols : w.reduce().cols;
  if (rows > INT32_MAX || cols > INT32_MAX) {
    why = "more rows or columns than cuDNN's int dimensions";
    return std::nullopt;
  }
  auto state = std::make_unique<State>();
  State& s = *state;
  s.a = a;
  auto fail = [&](cudnnStatus_t st, const char* what) {
    why = std::string(what) + ": " + a->cudnnGetErrorString(st);
    return std::nullopt;
  };
  cudnnStatus_t st = a->cudnnCreate(&s.handle);
  if (st != CUDNN_STATUS_SUCCESS) return fail(st, "cudnnCreate");
  const cudnnDataType_t type = cudnn_type(w.dtype);
  if ((st = a->cudnnCreateTensorDescriptor(&s.x)) != CUDNN_STATUS_SUCCESS ||
      (st = a->cudnnCreateTensorDescriptor(&s.y)) != CUDNN_STATUS_SUCCESS)
    return fail(st, "cudnnCreateTensorDescriptor");
  // Rows are images of `cols` channels: softmax over each instance, a reduction over C.
  if ((st = a->cudnnSetTensor4dDescriptor(s.x, CUDNN_TENSOR_NCHW, type, int(rows), int(cols), 1, 1)) !=
          CUDNN_STATUS_SUCCESS ||
      (st = a->cudnnSetTensor4dDescriptor(s.y, CUDNN_TENSOR_NCHW, type, int(rows), softmax ? int(cols) : 1, 1, 1)) !=
          CUDNN_STATUS_SUCCESS)
    return fail(st, "cudnnSetTensor4dDescriptor");
  if (softmax) {
    s.routine = "cudnnSoftmaxForward (ACCURATE, INSTANCE)";
  } else {
    const ReduceOp op = w.reduce().op;
    const cudnnReduceTensorOp_t rop = op == ReduceOp::kMax    ? CUDNN_REDUCE_TENSOR_MAX
                                      : op == ReduceOp::kMean ? CUDNN_REDUCE_TENSOR_AVG
                                                              : CUDNN_REDUCE_TENSOR_ADD;
    if ((st = a->cudnnCreateReduceTensorDescriptor(&s.reduce)) != CUDNN_STATUS_SUCCESS)
      return fail(st, "cudnnCreateReduceTensorDescriptor");
    if ((st = a->cudnnSetReduceTensorDescriptor(s.reduce, rop, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN,
                                                CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES)) !=
        CUDNN_STATUS_SUCCESS)
      return fail(st, "cudnnSetReduceTensorDescriptor");
    if ((st = a->cudnnGetReductionWorkspaceSize(s.handle, s.reduce, s.x, s.y, &s.workspace_bytes)) !=
        CUDNN_STATUS_SUCCESS)
      return fail(st, "cudnnGetReductionWorkspaceSize");
    if (s.workspace_bytes > 0 && cudaMalloc(&s.workspace, s.workspace_bytes) != cudaSuccess) {
      s.workspace = nullptr;
      why = "cudaMalloc of cuDNN's reduction workspace failed";
      return std::nullopt;
    }
    s.routine = std::string("cudnnReduceTensor (") +
                (op == ReduceOp::kMax ? "MAX" : op == ReduceOp::kMean ? "AVG" : "ADD") + ", f32 compute)";
  }
  return CudnnRows(state.release());
}

std::string CudnnRows::launch(const std::vector<void*>& tensors, cudaStream_t stream) const {
  const CudnnApi* a = s_->a;
  if (tensors.size() != 2) return "cuDNN's row routines take one input and one output";
  cudnnStatus_t st = a->cudnnSetStream(s_->handle, stream);
  const float one = 1.0f, zero = 0.0f;
  if (st == CUDNN_STATUS_SUCCESS) {
    st = s_->reduce ? a->cudnnReduceTensor(s_->handle, s_->reduce, nullptr, 0, s_->workspace, s_->workspace_bytes, &one,
                                           s_->x, tensors[0], &zero, s_->y, tensors[1])
                    : a->cudnnSoftmaxForward(s_->handle, CUDNN_SOFTMAX_ACCURATE, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                                             s_->x, tensors[0], &zero, s_->y, tensors[1]);
  }
  return st == CUDNN_STATUS_SUCCESS ? std::string() : std::string(a->cudnnGetErrorString(st));
}

}  // namespace tessera::measure
#endif
