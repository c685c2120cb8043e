// How a graph runs on the GPU (`tessera graph run`): every live operator as a step (a tuned
// family's kernel for the operators that map to a workload, a generic kernel of
// kernels/graph_ops.h for data movement, pooling and the other elementwise operators, or no
// step at all for a view), where each tensor lies in device memory, and the copies that put
// tensors where kernels need them.
//
// A tensor lies at an element offset in a buffer with an element stride per dimension of its
// (ONNX, logical) shape, so reshapes of contiguous tensors, transposes, slices, splits,
// single-index gathers and expands are views that cost nothing. Kernels of the tuned families
// need their operands dense in one layout (convolutions NHWC and filters KRSC, everything else
// row-major, an elementwise kernel's operands all alike), except where a family reads and
// writes a matmul's operands strided (PlanOptions::strided_operands); the plan inserts a strided
// copy where an operand is not, once per tensor and layout (of the whole tensor once, where its parts,
// Gathers of every index or a Split, are each wanted dense). Copies of constants (filters to KRSC, say) run
// once, before the timed runs. Intermediate tensors share one arena: a buffer's bytes are
// reused once its last reader has run.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "core/workload.h"
#include "graph/ir.h"
#include "kernels/graph_ops.h"
#include "kernels/kernel_family.h"

namespace tessera::graph {

/// A region of device memory of a run.
struct ExecBuffer {
  enum class Kind {
    kInput,     ///< a graph input, uploaded before each run
    kConstant,  ///< a constant, uploaded once (row-major, in its store type)
    kDerived,   ///< written once by a setup step (a constant in another layout)
    kArena,     ///< an intermediate tensor, at arena_offset in the arena while live
    kZeros,     ///< zeros, set once (an omitted optional operand a kernel reads, e.g. a bias)
  };
  Kind kind = Kind::kArena;
  int64_t bytes = 0;
  ValueId value = kNone;  ///< the input or constant it holds (kInput, kConstant)
  /// kConstant the plan made (value kNone): its values, e.g. a batch norm's folded scale.
  std::shared_ptr<const Tensor> data;
  int64_t arena_offset = 0;
  int first_step = 0, last_step = 0;  ///< kArena: the steps between which it is live
};

/// Where a tensor lies: buffer, element offset, element stride per dimension of its shape.
struct Placement {
  int buffer = -1;
  int64_t offset = 0;
  std::vector<int64_t> strides;
  kernels::StoreType type = kernels::StoreType::kF16;
};

/// One launch of a run.
struct ExecStep {
  enum class Kind { kKernel, kGeneric };
  Kind kind = Kind::kGeneric;
  NodeId node = kNone;  ///< the operator it computes (its node for a copy the operator needed)
  bool copy = false;    ///< a strided copy the plan inserted (layout, alignment, broadcast)
  bool setup = false;   ///< runs once before the timed runs (reads constants only)
  std::string label;    ///< what it is, for reports
  /// kKernel: the workload a tuned family runs and its tensors in the workload's order
  /// (inputs, then the output), each dense in the layout the family expects.
  std::optional<Workload> workload;
  std::vector<Placement> tensors;
  /// kKernel matmuls: A and B where they are read strided, as they lie, and C where it is
  /// written strided, as its reader wants it (PlanOptions), else dense; a family runs the step
  /// only if it reads and writes them so (KernelFamily::reads_strided).
  kernels::OperandLayouts layouts;
  /// kGeneric: the kernel, and the buffer each of its pointers addresses (in0..in3, out; -1:
  /// null). The kernel's offsets count from the buffer's start.
  std::optional<kernels::GenericKernel> generic;
  std::vector<int> buffers;
};

/// A graph's run on the GPU.
struct ExecPlan {
  std::vector<ExecBuffer> buffers;
  std::vector<ExecStep> steps;     ///< setup steps first, then the run's steps in order
  std::vector<Placement> values;   ///< per value of the graph (buffer -1: never materialised)
  int64_t arena_bytes = 0;         ///< the arena's size after reuse
  int64_t intermediate_bytes = 0;  ///< what the intermediates would take without reuse
  DType dtype = DType::kF16;       ///< floating tensors' type
  /// Operators that cannot run ("Pad 'p1': ..."); a plan with any is not runnable.
  std::vector<std::string> unsupported;
  int views = 0;  ///< operators that became views
};

/// Device type of a graph element type when floats run in `dtype`.
kernels::StoreType store_type(ElemType t, DType dtype);

/// How the plan may lay operands out.
struct PlanOptions {
  /// A matmul's A or B that lies strided (a head of attention's query inside the projection's
  /// output) is read as it lies, without a copy, and an output whose one reader transposes it
  /// is written in the transposed order (attention's context into [tokens, heads x size]),
  /// where a family can (reads_strided: Hopper's tensor maps). Off for vendor runs: the
  /// libraries take dense operands.
  bool strided_operands = false;
};

/// Plans `g` (constants folded: fold_constants) with floating tensors in `dtype`. An operator
/// maps to a tuned family's kernel when node_workload() gives a workload some family of
/// `families` supports.
ExecPlan plan_graph_run(const Graph& g, DType dtype, const kernels::FamilyRegistry& families,
                        const PlanOptions& options = {});

/// Pointer arithmetic the executor shares: the byte offset of element `offset` of `p`.
int64_t placement_byte_offset(const Placement& p);

}  // namespace tessera::graph
