#include "core/workload.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "core/hash.h"

namespace tessera {
namespace {

TEST(Workload, ParsesMatmulAndBuildsCanonicalKey) {
  Workload w = Workload::parse("matmul:n=2048,m=4096,k=1024:f16");
  EXPECT_EQ(w.kind, OpKind::kMatmul);
  EXPECT_EQ(w.dtype, DType::kF16);
  EXPECT_EQ(w.out_dtype, DType::kF16);
  EXPECT_EQ(w.matmul().m, 4096);
  EXPECT_EQ(w.matmul().n, 2048);
  EXPECT_EQ(w.matmul().k, 1024);
  EXPECT_FALSE(w.matmul().trans_a);
  EXPECT_EQ(w.key(), "matmul:m=4096,n=2048,k=1024:f16");
}

TEST(Workload, KeyOmitsDefaultsAndOrdersOptions) {
  EXPECT_EQ(Workload::parse("matmul:m=1,n=2,k=3,ta=0,tb=1:bf16").key(), "matmul:m=1,n=2,k=3,tb=1:bf16");
  EXPECT_EQ(Workload::parse("matmul:m=1,n=2,k=3:f16:epilogue=bias+gelu,out=f32").key(),
            "matmul:m=1,n=2,k=3:f16:out=f32:epilogue=bias+gelu");
  EXPECT_EQ(Workload::parse("matmul:m=1,n=2,k=3:f16:out=f16").key(), "matmul:m=1,n=2,k=3:f16");
  EXPECT_EQ(Workload::parse("conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,stride=1,pad=1:f16").key(),
            "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16");
  EXPECT_EQ(Workload::parse("conv2d:n=1,h=9,w=9,c=4,k=4,r=3,s=3,stride=2x1,pad=2x2,layout=nchw:f32").key(),
            "conv2d:n=1,h=9,w=9,c=4,k=4,r=3,s=3,stride=2x1,pad=2,layout=nchw:f32");
}

TEST(Workload, EqualWorkloadsHaveEqualKeysAndStableHashes) {
  Workload a = Workload::parse("matmul:m=4096,n=4096,k=4096:f16");
  Workload b = Workload::parse("matmul:k=4096,n=4096,m=4096:f16");
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_EQ(a.hash(), stable_hash(a.key()));
  EXPECT_NE(a.hash(), Workload::parse("matmul:m=4096,n=4096,k=4096:bf16").hash());
  // FNV-1a 64 reference values: the hash must never change between builds.
  EXPECT_EQ(stable_hash(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(stable_hash("a"), 0xaf63dc4c8601ec8cull);
  EXPECT_EQ(hex64(0xaf63dc4c8601ec8cull), "af63dc4c8601ec8c");
}

TEST(Workload, ParsesEveryKind) {
  Workload bmm = Workload::parse("batch_matmul:b=384,m=128,n=128,k=64:f16");
  EXPECT_EQ(bmm.matmul().batch, 384);
  Workload conv = Workload::parse("conv2d:n=32,h=224,w=224,c=3,k=64,r=7,s=7,stride=2,pad=3:f16");
  EXPECT_EQ(conv.conv2d().out_h(), 112);
  EXPECT_EQ(conv.conv2d().out_w(), 112);
  EXPECT_EQ(conv.conv2d().layout, Layout::kNHWC);
  Workload dw = Workload::parse("conv2d:n=1,h=83,w=83,c=84,k=84,r=5,s=5,stride=2,pad=2,groups=84:f16");
  EXPECT_EQ(dw.conv2d().groups, 84);
  EXPECT_EQ(dw.conv2d().out_h(), 42);
  Workload dil = Workload::parse("conv2d:n=1,h=10,w=10,c=8,k=8,r=3,s=3,dilation=2:f32");
  EXPECT_EQ(dil.conv2d().out_h(), 6);
  EXPECT_EQ(Workload::parse("softmax:rows=16384,cols=4096:f16").rows().cols, 4096);
  EXPECT_EQ(Workload::parse("layernorm:rows=4096,cols=768:bf16").rows().rows, 4096);
  // Layernorm's epsilon: ONNX's 1e-5 unless the spec says (BERT's 1e-12); the key keeps it
  // only when it differs, so records from before it existed keep their keys.
  EXPECT_EQ(Workload::parse("layernorm:rows=4096,cols=768:bf16").rows().epsilon, 1e-5);
  EXPECT_EQ(Workload::parse("layernorm:rows=4096,cols=768,eps=1e-12:f16").rows().epsilon, 1e-12);
  EXPECT_EQ(Workload::parse("layernorm:rows=4096,cols=768,eps=0.00001:f16").key(), "layernorm:rows=4096,cols=768:f16");
  EXPECT_EQ(Workload::parse("layernorm:rows=4096,cols=768,eps=9.999999960041972e-13:f16").key(),
            "layernorm:rows=4096,cols=768,eps=9.999999960041972e-13:f16");  // an f32 attribute's 1e-12, exactly
  EXPECT_NE(Workload::parse("layernorm:rows=8,cols=8,eps=1e-6:f16"), Workload::parse("layernorm:rows=8,cols=8:f16"));
  EXPECT_EQ(Workload::from_json(Json{{"kind", "layernorm"}, {"rows", 8}, {"cols", 8}, {"eps", 1e-6}, {"dtype", "f16"}}).key(),
            "layernorm:rows=8,cols=8,eps=1e-06:f16");
  Workload red = Workload::parse("reduce:op=mean,rows=65536,cols=1024:f32");
  EXPECT_EQ(red.reduce().op, ReduceOp::kMean);
  Workload ew = Workload::parse("elementwise:ops=add+relu,n=1048576:f16");
  ASSERT_EQ(ew.elementwise().ops.size(), 2u);
  EXPECT_EQ(ew.elementwise().ops[0], EltwiseOp::kAdd);
  EXPECT_EQ(ew.elementwise().ops[1], EltwiseOp::kRelu);
  Workload tf32 = Workload::parse("matmul:m=8,n=8,k=8:f32:tf32=1");
  EXPECT_TRUE(tf32.allow_tf32);
  Workload epi = Workload::parse("matmul:m=8,n=8,k=8:f16:epilogue=bias+gelu");
  EXPECT_EQ(epi.epilogue, (std::vector<EpilogueOp>{EpilogueOp::kBias, EpilogueOp::kGelu}));
}

const char* kRoundTripSpecs[] = {
    "matmul:m=4096,n=4096,k=4096:f16",
    "matmul:m=77,n=33,k=5,ta=1,tb=1:bf16:out=f32:epilogue=bias+relu+residual",
    "matmul:m=64,n=64,k=64:f32:tf32=1",
    "batch_matmul:b=384,m=128,n=128,k=64:f16:epilogue=gelu",
    "batch_matmul:b=12,m=128,n=128,k=64,tb=1,alpha=0.125:f16",
    "matmul:m=128,n=768,k=768,alpha=-0.08838834764831845:bf16:epilogue=bias+residual",
    "conv2d:n=32,h=56,w=56,c=64,k=64,r=3,s=3,pad=1:f16:epilogue=bias+relu",
    "conv2d:n=1,h=9,w=7,c=4,k=8,r=3,s=2,stride=2x1,pad=1x0,dilation=2x1,groups=2,layout=nchw:f32",
    "conv2d:n=32,h=56,w=56,c=144,k=144,r=3,s=3,pad=1,groups=144:f16",
    "softmax:rows=16384,cols=4096:f16",
    "layernorm:rows=4096,cols=768:bf16:out=f32",
    "layernorm:rows=4096,cols=768,eps=1e-12:f16",
    "reduce:op=max,rows=262144,cols=49:f32",
    "elementwise:ops=mul+add+gelu+tanh,n=1000:f16",
};

TEST(Workload, RoundTripsThroughKeyAndJson) {
  for (const char* spec : kRoundTripSpecs) {
    SCOPED_TRACE(spec);
    Workload w = Workload::parse(spec);
    EXPECT_EQ(w.key(), spec);  // the specs above are written canonically
    EXPECT_EQ(Workload::parse(w.key()), w);
    EXPECT_EQ(Workload::from_json(w.to_json()), w);
    EXPECT_EQ(Workload::from_json(Json::parse(w.to_json().dump())), w);
    EXPECT_EQ(Workload::from_json(Json(spec)), w);
  }
}

TEST(Workload, JsonObjectFormIsReadable) {
  Json j = Workload::parse("conv2d:n=1,h=9,w=7,c=4,k=8,r=3,s=2,stride=2x1,pad=1:f16:epilogue=bias").to_json();
  EXPECT_EQ(j["kind"], "conv2d");
  EXPECT_EQ(j["stride"], "2x1");
  EXPECT_EQ(j["pad"], 1);
  EXPECT_EQ(j["dtype"], "f16");
  EXPECT_EQ(j["epilogue"], "bias");
  Workload w = Workload::from_json(Json{{"kind", "matmul"}, {"m", 8}, {"n", 16}, {"k", 32}, {"ta", true}, {"dtype", "f16"}});
  EXPECT_EQ(w.key(), "matmul:m=8,n=16,k=32,ta=1:f16");
}

// Each malformed spec is a UserError that quotes the spec and says what is wrong.
struct BadSpec {
  const char* spec;
  const char* reason;
};

const BadSpec kBadSpecs[] = {
    {"", "expected KIND:PARAMS:DTYPE"},
    {"matmul:m=4096,n=4096,k=4096", "expected KIND:PARAMS:DTYPE"},
    {"matmult:m=1,n=1,k=1:f16", "unknown workload kind 'matmult' (valid: matmul, batch_matmul, conv2d"},
    {"matmul:m=0,n=1,k=1:f16", "m must be a positive integer (got 0)"},
    {"matmul:m=1,n=1,k=1,alpha=0:f16", "alpha must be a finite, non-zero number within float's range (got '0')"},
    {"matmul:m=1,n=1,k=1,alpha=nan:f16", "alpha must be a finite, non-zero number"},
    {"matmul:m=1,n=1,k=1,alpha=1e39:f16", "alpha must be a finite, non-zero number"},
    {"matmul:m=1,n=1,k=1,alpha=0.5x:f16", "alpha must be a finite, non-zero number"},
    {"conv2d:n=1,h=3,w=3,c=1,k=1,r=1,s=1,alpha=2:f16", "unknown parameter 'alpha' for conv2d"},
    {"matmul:m=-4,n=1,k=1:f16", "m must be a positive integer (got '-4')"},
    {"matmul:m=abc,n=1,k=1:f16", "m must be a positive integer (got 'abc')"},
    {"matmul:m=1.5,n=1,k=1:f16", "m must be a positive integer (got '1.5')"},
    {"matmul:m=99999999999,n=1,k=1:f16", "m must be at most 2147483647"},
    {"matmul:m=2147483647,n=2147483647,k=2:f16", "at most 2^47"},
    {"matmul:m=1,n=1:f16", "missing parameter 'k'"},
    {"matmul:m=1,n=1,k=1,x=3:f16", "unknown parameter 'x' for matmul (valid: m, n, k, ta, tb, alpha)"},
    {"matmul:m=1,m=2,n=1,k=1:f16", "parameter 'm' given twice"},
    {"matmul:m=1,n,k=1:f16", "expected key=value in the parameters, got 'n'"},
    {"matmul:m=1,n=1,k=1,ta=2:f16", "ta must be 0 or 1"},
    {"matmul:m=1,n=1,k=1:f8", "unknown dtype 'f8' (valid: f16, bf16, f32)"},
    {"matmul:m=1,n=1,k=1:f16:out=int8", "unknown dtype 'int8'"},
    {"matmul:m=1,n=1,k=1:f16:epilogue=swish", "unknown epilogue op 'swish' (valid: bias, relu, gelu, residual)"},
    {"matmul:m=1,n=1,k=1:f16:epilogue=relu+relu", "epilogue op 'relu' given twice"},
    {"matmul:m=1,n=1,k=1:f16:tf32=1", "tf32=1 applies only to f32"},
    {"matmul:m=1,n=1,k=1:f16:bogus=1", "unknown option 'bogus'"},
    {"softmax:rows=8,cols=8:f16:epilogue=bias", "epilogue applies only to matmul, batch_matmul and conv2d"},
    {"batch_matmul:m=1,n=1,k=1:f16", "missing parameter 'b'"},
    {"conv2d:n=1,h=2,w=2,c=1,k=1,r=3,s=3:f16", "the output is empty"},
    {"conv2d:n=1,h=8,w=8,c=64,k=64,r=3,s=3,groups=3:f16", "groups=3 must divide c=64 and k=64"},
    {"conv2d:n=1,h=8,w=8,c=4,k=4,r=3,s=3,layout=nhcw:f16", "unknown layout 'nhcw' (valid: nhwc, nchw)"},
    {"conv2d:n=1,h=8,w=8,c=4,k=4,r=3,s=3,stride=1x2x3:f16", "stride must be N or HxW"},
    {"conv2d:n=1,h=8,w=8,c=4,k=4,r=3,s=3,stride=0:f16", "stride must be a positive integer (got 0)"},
    {"conv2d:n=1,h=8,w=8,c=4,k=4,r=3:f16", "missing parameter 's'"},
    {"reduce:rows=1,cols=1:f32", "missing parameter 'op'"},
    {"reduce:op=prod,rows=1,cols=1:f32", "unknown reduce op 'prod' (valid: sum, max, mean)"},
    {"elementwise:ops=add+foo,n=1:f16", "unknown elementwise op 'foo'"},
    {"elementwise:n=4:f16", "missing parameter 'ops'"},
    {"softmax:rows=4:f16", "missing parameter 'cols'"},
    {"softmax:rows=4,cols=8,eps=1e-6:f16", "unknown parameter 'eps' for softmax (valid: rows, cols)"},
    {"layernorm:rows=4,cols=8,eps=0:f16", "eps must be a number between 0 and 1, exclusive (got '0')"},
    {"layernorm:rows=4,cols=8,eps=1:f16", "eps must be a number between 0 and 1, exclusive (got '1')"},
    {"layernorm:rows=4,cols=8,eps=-1e-5:f16", "eps must be a number between 0 and 1, exclusive"},
    {"layernorm:rows=4,cols=8,eps=nan:f16", "eps must be a number between 0 and 1, exclusive"},
    {"layernorm:rows=4,cols=8,eps=1e-5x:f16", "eps must be a number between 0 and 1, exclusive"},
    {"layernorm:rows=4,cols=8,eps=:f16", "eps must be a number between 0 and 1, exclusive"},
};

TEST(Workload, RejectsMalformedSpecsWithAClearMessage) {
  for (const BadSpec& bad : kBadSpecs) {
    SCOPED_TRACE(bad.spec);
    try {
      Workload::parse(bad.spec);
      ADD_FAILURE() << "accepted";
    } catch (const UserError& e) {
      std::string msg = e.what();
      EXPECT_EQ(msg.rfind("invalid workload spec '" + std::string(bad.spec) + "': ", 0), 0u) << msg;
      EXPECT_NE(msg.find(bad.reason), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << "one line: " << msg;
    }
  }
}

TEST(Workload, RejectsMalformedJson) {
  auto message = [](const Json& j) {
    try {
      Workload::from_json(j);
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("accepted");
  };
  EXPECT_NE(message(Json(42)).find("expected a spec string or an object"), std::string::npos);
  EXPECT_NE(message(Json{{"m", 1}, {"dtype", "f16"}}).find("missing field \"kind\""), std::string::npos);
  EXPECT_NE(message(Json{{"kind", "matmul"}, {"m", 1}, {"n", 1}, {"k", 1}}).find("missing field \"dtype\""),
            std::string::npos);
  EXPECT_NE(message(Json{{"kind", "matmul"}, {"m", 1.5}, {"n", 1}, {"k", 1}, {"dtype", "f16"}})
                .find("m must be a positive integer (got '1.5')"),
            std::string::npos);
  EXPECT_NE(message(Json{{"kind", "matmul"}, {"m", Json::array()}, {"n", 1}, {"k", 1}, {"dtype", "f16"}})
                .find("field \"m\" must be a string or a number"),
            std::string::npos);
  std::string zero = message(Json{{"kind", "matmul"}, {"m", 0}, {"n", 1}, {"k", 1}, {"dtype", "f16"}});
  EXPECT_EQ(zero.rfind("invalid workload JSON {", 0), 0u) << zero;
  EXPECT_NE(zero.find("m must be a positive integer (got 0)"), std::string::npos) << zero;
  EXPECT_NE(message(Json{{"kind", "gemm"}, {"dtype", "f16"}}).find("unknown workload kind 'gemm'"), std::string::npos);
  EXPECT_NE(message(Json{{"kind", "matmul"}, {"m", 1}, {"n", 1}, {"k", 1}, {"dtype", "fp16"}})
                .find("unknown dtype 'fp16'"),
            std::string::npos);
}

TEST(Json, SyntaxErrorsNameTheInput) {
  try {
    parse_json("{\"kind\": ", "workloads.json");
    FAIL() << "accepted";
  } catch (const UserError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("workloads.json: invalid JSON: ", 0), 0u) << e.what();
  }
  EXPECT_THROW(read_json_file("/nonexistent/tessera.json"), UserError);
}

}  // namespace
}  // namespace tessera
