// cuDNN 9's entry points that the vendor baselines use (convolutions: cudnn_conv.h; softmax and
// row reductions: cudnn_rows.h), resolved from libcudnn.so.9 at run time so that tessera neither
// links nor requires it. Only with CUDA.
#pragma once

#if TESSERA_HAVE_CUDA
#include <cudnn.h>

#include <string>

#include "core/dtype.h"

namespace tessera::measure {

#define TESSERA_CUDNN_FUNCTIONS(X)                                                                              \
  X(cudnnCreate) X(cudnnDestroy) X(cudnnSetStream) X(cudnnGetErrorString) X(cudnnCreateTensorDescriptor)         \
  X(cudnnDestroyTensorDescriptor) X(cudnnSetTensor4dDescriptor) X(cudnnCreateFilterDescriptor)                   \
  X(cudnnDestroyFilterDescriptor) X(cudnnSetFilter4dDescriptor) X(cudnnCreateConvolutionDescriptor)              \
  X(cudnnDestroyConvolutionDescriptor) X(cudnnSetConvolution2dDescriptor) X(cudnnSetConvolutionGroupCount)       \
  X(cudnnSetConvolutionMathType) X(cudnnGetConvolutionForwardAlgorithm_v7) X(cudnnConvolutionForward)            \
  X(cudnnSoftmaxForward) X(cudnnCreateReduceTensorDescriptor) X(cudnnDestroyReduceTensorDescriptor)              \
  X(cudnnSetReduceTensorDescriptor) X(cudnnGetReductionWorkspaceSize) X(cudnnReduceTensor)

// Loaded where present, not required: the fused convolution + bias + residual + activation.
#define TESSERA_CUDNN_OPTIONAL_FUNCTIONS(X)                                                                     \
  X(cudnnCreateActivationDescriptor) X(cudnnDestroyActivationDescriptor) X(cudnnSetActivationDescriptor)        \
  X(cudnnConvolutionBiasActivationForward)

struct CudnnApi {
#define TESSERA_CUDNN_FIELD(name) decltype(&::name) name = nullptr;
  TESSERA_CUDNN_FUNCTIONS(TESSERA_CUDNN_FIELD)
  TESSERA_CUDNN_OPTIONAL_FUNCTIONS(TESSERA_CUDNN_FIELD)
#undef TESSERA_CUDNN_FIELD
};

/// The entry points, loaded once per process; nullptr with `why` if cuDNN 9 or one of the
/// required ones is missing (an optional one that is missing stays null).
const CudnnApi* cudnn_api(std::string& why);

/// cuDNN's data type for `t`.
cudnnDataType_t cudnn_type(DType t);

}  // namespace tessera::measure
#endif
