#include "kernels/families.h"

#include "core/embedded.h"

namespace tessera {
std::span<const EmbeddedFile> embedded_device_headers();
}

namespace tessera::kernels {

void register_builtin_families(FamilyRegistry& registry) {
  registry.add(make_elementwise_family());
  registry.add(make_rows_family());
  registry.add(make_gemm_tc_family());
  registry.add(make_gemm_tf32_family());
  registry.add(make_gemm_simt_family());
  registry.add(make_conv_tc_family());
  registry.add(make_conv_direct_family());
}

std::vector<std::pair<std::string, std::string>> device_headers() {
  std::vector<std::pair<std::string, std::string>> out;
  for (const EmbeddedFile& f : embedded_device_headers())
    out.emplace_back("tessera/" + std::string(f.name), std::string(f.text));
  return out;
}

std::vector<Schedule> enumerate_space(const KernelFamily& family, const Workload& w, const HardwareSpec& hw) {
  std::vector<KnobDomain> domains = family.space(w, hw);
  std::vector<Schedule> out;
  std::vector<size_t> index(domains.size(), 0);
  for (const KnobDomain& d : domains)
    if (d.values.empty()) return out;
  while (true) {
    Schedule s{std::string(family.name()), {}};
    for (size_t i = 0; i < domains.size(); ++i) s.knobs.emplace_back(domains[i].name, domains[i].values[index[i]]);
    out.push_back(std::move(s));
    size_t i = 0;
    for (; i < domains.size(); ++i) {
      if (++index[i] < domains[i].values.size()) break;
      index[i] = 0;
    }
    if (i == domains.size()) return out;
  }
}

EpilogueCode matmul_epilogue_code(const Workload& w) {
  EpilogueCode code;
  std::string members, body;
  for (EpilogueOp op : w.epilogue) {
    switch (op) {
      case EpilogueOp::kBias:
        code.params += "const Out* __restrict__ bias, ";
        members += "  const Out* bias;\n";
        code.init += "bias, ";
        body += "    v += to_float(bias[col]);\n";
        break;
      case EpilogueOp::kResidual:
        code.params += "const Out* __restrict__ residual, ";
        members += "  const Out* residual;\n";
        code.init += "residual, ";
        body += "    v += to_float(residual[(b * kM + row) * kN + col]);\n";
        break;
      case EpilogueOp::kRelu: body += "    v = fmaxf(v, 0.0f);\n"; break;
      case EpilogueOp::kGelu: body += "    v = gelu(v);\n"; break;
    }
  }
  if (members.empty()) members = "  int unused;\n", code.init = "0, ";
  code.init.resize(code.init.size() - 2);
  const MatmulShape& m = w.matmul();
  code.type = "constexpr long long kM = " + std::to_string(m.m) + ", kN = " + std::to_string(m.n) + ";\n"
              "struct Epilogue {\n" + members +
              "  __device__ float operator()(float v, long long b, int row, int col) const {\n" + body +
              "    (void)b; (void)row; (void)col;\n    return v;\n  }\n};\n";
  return code;
}

std::string device_type(DType t) {
  switch (t) {
    case DType::kF16: return "tessera::F16";
    case DType::kBF16: return "tessera::BF16";
    case DType::kF32: return "float";
  }
  return "float";
}

}  // namespace tessera::kernels
