// Only with CUDA: the whole file is compiled out otherwise.
#if TESSERA_HAVE_CUDA
#include "measure/cudnn_api.h"

#include <dlfcn.h>

namespace tessera::measure {

const CudnnApi* cudnn_api(std::string& why) {
  static std::string error;
  static const CudnnApi* loaded = [] {
    static CudnnApi a;
    void* lib = ::dlopen("libcudnn.so.9", RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* e = ::dlerror();
      error = std::string("cuDNN 9 not found (") + (e ? e : "libcudnn.so.9") + ")";
      return static_cast<const CudnnApi*>(nullptr);
    }
    std::string missing;
#define TESSERA_CUDNN_LOAD(name)                                                 \
  if (!(a.name = reinterpret_cast<decltype(a.name)>(::dlsym(lib, #name)))) \
    missing += std::string(missing.empty() ? "" : ", ") + #name;
    TESSERA_CUDNN_FUNCTIONS(TESSERA_CUDNN_LOAD)
#undef TESSERA_CUDNN_LOAD
#define TESSERA_CUDNN_LOAD_OPTIONAL(name) a.name = reinterpret_cast<decltype(a.name)>(::dlsym(lib, #name));
    TESSERA_CUDNN_OPTIONAL_FUNCTIONS(TESSERA_CUDNN_LOAD_OPTIONAL)
#undef TESSERA_CUDNN_LOAD_OPTIONAL
    if (!missing.empty()) {
      error = "libcudnn.so.9 lacks " + missing;
      return static_cast<const CudnnApi*>(nullptr);
    }
    return static_cast<const CudnnApi*>(&a);
  }();
  if (!loaded) why = error;
  return loaded;
}

cudnnDataType_t cudnn_type(DType t) {
  switch (t) {
    case DType::kF16: return CUDNN_DATA_HALF;
    case DType::kBF16: return CUDNN_DATA_BFLOAT16;
    case DType::kF32: return CUDNN_DATA_FLOAT;
  }
  return CUDNN_DATA_FLOAT;
}

}  // namespace tessera::measure
#endif
