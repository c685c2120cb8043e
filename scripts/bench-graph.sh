#!/usr/bin/env bash
# Graph-search benchmark (no GPU needed): estimated cost reduction and search time on the
# exported models of tests/data/graphs.tar.xz (ResNet-50, ResNeXt-50, Inception-v3, BERT-base,
# ViT-B/16), from the fused graph, with backtracking and MCTS; each result is checked against
# the input on random inputs. Usage: scripts/bench-graph.sh [BUILD_DIR] [--db FILE]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build="${1:-$TESSERA_ROOT/build/release}"
shift || true
if [ ! -x "$build/tests/graph_bench" ]; then tessera_build "$build" >/dev/null; fi
graphs="$build/tests/data/graphs"
"$build/tests/graph_bench" "$@" "$graphs"/resnet50.onnx "$graphs"/resnext50.onnx "$graphs"/inception_v3.onnx \
  "$graphs"/bert_base.onnx "$graphs"/vit_b16.onnx
