#!/usr/bin/env python3
"""Exports the graph-search benchmark models and small conformance models to ONNX.

Run where PyTorch, torchvision, transformers, onnx and onnxruntime are installed (the lent
GPU machine has them; nothing is downloaded: every model is built with random weights):

    python3 scripts/export-models.py OUT_DIR
    python3 scripts/export-models.py --zoo OUT_DIR [--exporter torchscript|dynamo]
                                     [--opset N|default] [--only NAME,...]   # the model zoo
    python3 scripts/export-models.py --batch N OUT_DIR   # the five benchmark models at batch N
                                                          # as <name>_b<N>.onnx (for graph run)

Writes, all at opset 17 with static shapes (batch 1), into OUT_DIR (flat):
  {resnet50,resnext50,inception_v3,bert_base,vit_b16}.onnx
      real architectures with their large weights stripped (Tessera's convention: an
      initializer of more than 4096 elements becomes external data at location
      "tessera-stripped-weights"; the importer makes up values for it);
  <name>.onnx with <name>.input_<k>.pb and <name>.output_<k>.pb (name = tiny_*)
      small models with every weight kept and the outputs onnxruntime computes, for tests
      that Tessera's import and CPU reference agree with another implementation.
"""
import os
import sys

import numpy as np
import onnx
import torch
from onnx import numpy_helper

STRIPPED = "tessera-stripped-weights"
KEEP_ELEMENTS = 4096
OPSET = 17


def export(model, args, path, input_names, output_names=("output",), opset=OPSET, dynamo=False):
    model.eval()
    kwargs = dict(opset_version=opset, input_names=list(input_names))
    if output_names:
        kwargs["output_names"] = list(output_names)
    if dynamo:  # torch 2.x's exporter (torch.export and onnxscript); its own default opset when opset is None
        if opset is None:
            del kwargs["opset_version"]
        torch.onnx.export(model, args, path, dynamo=True, external_data=False, **kwargs)
    else:
        kwargs["do_constant_folding"] = True
        try:
            torch.onnx.export(model, args, path, dynamo=False, **kwargs)
        except TypeError:  # older torch without the dynamo argument
            torch.onnx.export(model, args, path, **kwargs)
    m = onnx.load(path)
    m = onnx.shape_inference.infer_shapes(m)
    onnx.checker.check_model(m)
    return m


def strip(m):
    stripped = 0
    for t in m.graph.initializer:
        n = int(np.prod(t.dims)) if len(t.dims) else 1
        if n <= KEEP_ELEMENTS:
            continue
        nbytes = len(numpy_helper.to_array(t).tobytes())
        t.ClearField("raw_data")
        for field in ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data"):
            t.ClearField(field)
        t.data_location = onnx.TensorProto.EXTERNAL
        del t.external_data[:]
        for key, value in (("location", STRIPPED), ("offset", "0"), ("length", str(nbytes))):
            e = t.external_data.add()
            e.key, e.value = key, value
        stripped += 1
    p = m.metadata_props.add()
    p.key, p.value = "tessera.weights_stripped", "true"
    return stripped


def bench_models(out, batch=1):
    import torchvision
    import transformers

    os.makedirs(out, exist_ok=True)
    image = torch.randn(batch, 3, 224, 224)
    models = {
        "resnet50": (torchvision.models.resnet50(weights=None), (image,), ["input"]),
        "resnext50": (torchvision.models.resnext50_32x4d(weights=None), (image,), ["input"]),
        "inception_v3": (torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False),
                         (torch.randn(batch, 3, 299, 299),), ["input"]),
        "vit_b16": (torchvision.models.vit_b_16(weights=None), (image,), ["input"]),
    }
    config = transformers.BertConfig()  # bert-base: 12 layers, hidden 768, 12 heads
    config._attn_implementation = "eager"  # the classic MatMul/Softmax attention, not SDPA
    bert = transformers.BertModel(config, add_pooling_layer=False)
    bert.config.return_dict = False
    # Without an attention mask (a full batch of 128 tokens): the graph is the encoder's
    # arithmetic, not the mask construction.
    models["bert_base"] = (bert, (torch.randint(0, config.vocab_size, (batch, 128)),), ["input_ids"])
    for name, (model, args, inputs) in models.items():
        path = os.path.join(out, name + (f"_b{batch}" if batch != 1 else "") + ".onnx")
        m = export(model, args, path, inputs)  # with grad: no fused attention fast path
        count = strip(m)
        onnx.save(m, path)
        if os.path.exists(path + ".data"):  # the exporter's own external data, now inline or stripped
            os.remove(path + ".data")
        print(f"{name}: {len(m.graph.node)} nodes, {count} initializers stripped, "
              f"{os.path.getsize(path) / 1e6:.2f} MB")


class TinyResBlock(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(8, 16, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(16)
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(16)
        self.down = torch.nn.Conv2d(8, 16, 1, bias=False)
        self.pool = torch.nn.AdaptiveAvgPool2d(1)
        self.fc = torch.nn.Linear(16, 10)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        y = torch.relu(y + self.down(x))
        y = torch.nn.functional.max_pool2d(y, 2)
        return self.fc(torch.flatten(self.pool(y), 1))


class TinyInception(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.b1 = torch.nn.Conv2d(8, 8, 1)
        self.b3 = torch.nn.Conv2d(8, 12, 3, padding=1)
        self.b5 = torch.nn.Conv2d(8, 4, 5, padding=2)
        self.pool = torch.nn.Conv2d(8, 4, 1)

    def forward(self, x):
        p = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
        return torch.cat([torch.relu(self.b1(x)), torch.relu(self.b3(x)), torch.relu(self.b5(x)),
                          torch.relu(self.pool(p))], 1)


def conformance_models(out):
    import onnxruntime
    import transformers

    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                                     intermediate_size=128, max_position_embeddings=32)
    config._attn_implementation = "eager"
    bert = transformers.BertModel(config, add_pooling_layer=False)
    bert.config.return_dict = False
    block = TinyResBlock()
    with torch.no_grad():  # non-trivial batch-norm statistics
        for bn in (block.bn1, block.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
    models = {
        "tiny_resblock": (block, (torch.randn(1, 8, 12, 12),), ["input"]),
        "tiny_inception": (TinyInception(), (torch.randn(1, 8, 10, 10),), ["input"]),
        "tiny_bert": (bert, (torch.randint(0, 100, (1, 16)),), ["input_ids"]),
    }
    for name, (model, args, inputs) in models.items():
        path = os.path.join(out, name + ".onnx")
        m = export(model, args, path, inputs)
        onnx.save(m, path)
        if os.path.exists(path + ".data"):
            os.remove(path + ".data")
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        feeds = {n: a.numpy() for n, a in zip(inputs, args)}
        outputs = session.run(None, feeds)
        for k, (n, a) in enumerate(feeds.items()):
            with open(os.path.join(out, f"{name}.input_{k}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())
        for k, a in enumerate(outputs):
            with open(os.path.join(out, f"{name}.output_{k}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, f"output_{k}").SerializeToString())
        print(f"{name}: {len(m.graph.node)} nodes, {os.path.getsize(path) / 1e3:.1f} kB, "
              f"ops {sorted({n.op_type for n in m.graph.node})}")


def zoo_models(out, exporter="torchscript", opset=OPSET, only=None, whole=()):
    """The model zoo: torchvision's families at small inputs (64x64, 10 classes), weights
    stripped, and, where transformers is installed, its encoders and decoders at small
    configurations. exporter "dynamo" uses torch 2.x's exporter (opset None: its default);
    names other than the TorchScript exporter at opset 17 say how the file was written
    (zoo_NAME_dynamo_opsetN, zoo_NAME_opsetN). `only`: a set of NAMEs to export. Models in
    `whole` keep their weights, and onnxruntime's outputs on the export's inputs are written
    beside them (FILE.input_K.pb, FILE.output_K.pb)."""
    import torchvision

    os.makedirs(out, exist_ok=True)
    torch.manual_seed(0)
    image = torch.randn(1, 3, 64, 64)
    tv = torchvision.models
    models = {
        "resnet18": lambda: tv.resnet18(num_classes=10),
        "mobilenet_v3_small": lambda: tv.mobilenet_v3_small(num_classes=10),
        "mobilenet_v2": lambda: tv.mobilenet_v2(num_classes=10),
        "efficientnet_b0": lambda: tv.efficientnet_b0(num_classes=10),
        "convnext_tiny": lambda: tv.convnext_tiny(num_classes=10),
        "regnet_y_400mf": lambda: tv.regnet_y_400mf(num_classes=10),
        "densenet121": lambda: tv.densenet121(num_classes=10),
        "shufflenet_v2": lambda: tv.shufflenet_v2_x0_5(num_classes=10),
        "squeezenet": lambda: tv.squeezenet1_1(num_classes=10),
        "googlenet": lambda: tv.googlenet(num_classes=10, aux_logits=False, init_weights=False),
        "mnasnet": lambda: tv.mnasnet0_5(num_classes=10),
        "swin_t": (lambda: tv.swin_t(num_classes=10)) if hasattr(tv, "swin_t") else None,
        "vit_b32": (lambda: tv.vit_b_32(num_classes=10, image_size=64)) if hasattr(tv, "vit_b_32") else None,
    }
    args = {}
    try:
        import transformers as tf
        small = dict(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=64)
        ids, mask = torch.randint(0, 100, (1, 16)), torch.ones(1, 16, dtype=torch.long)
        mask[0, 12:] = 0  # padded tokens: the mask's arithmetic is not constant
        pixels = torch.randn(1, 3, 32, 32)
        text = {
            "bert_masked": lambda: tf.BertModel(tf.BertConfig(**small)),
            "roberta": lambda: tf.RobertaModel(tf.RobertaConfig(**{**small, "max_position_embeddings": 80})),
            "distilbert": lambda: tf.DistilBertModel(tf.DistilBertConfig(vocab_size=100, dim=64, n_layers=2, n_heads=4,
                                                                         hidden_dim=128, max_position_embeddings=64)),
            "albert": lambda: tf.AlbertModel(tf.AlbertConfig(**small, embedding_size=32)),
            "electra": lambda: tf.ElectraModel(tf.ElectraConfig(**small, embedding_size=32)),
        }
        for name, make in text.items():
            models[name] = make
            args[name] = (ids, mask)
        models["gpt2"] = lambda: tf.GPT2Model(tf.GPT2Config(vocab_size=100, n_embd=64, n_layer=2, n_head=4, n_positions=64,
                                                            use_cache=False, bos_token_id=0, eos_token_id=0))
        args["gpt2"] = (ids,)
        models["llama"] = lambda: tf.LlamaModel(tf.LlamaConfig(vocab_size=100, hidden_size=64, intermediate_size=128,
                                                               num_hidden_layers=2, num_attention_heads=4,
                                                               num_key_value_heads=2, max_position_embeddings=64,
                                                               use_cache=False))
        args["llama"] = (ids, mask)
        models["t5_encoder"] = lambda: tf.T5EncoderModel(tf.T5Config(vocab_size=100, d_model=64, d_kv=16, d_ff=128,
                                                                     num_layers=2, num_heads=4))
        args["t5_encoder"] = (ids, mask)
        models["vit_hf"] = lambda: tf.ViTModel(tf.ViTConfig(image_size=32, patch_size=8, hidden_size=64,
                                                             num_hidden_layers=2, num_attention_heads=4,
                                                             intermediate_size=128))
        args["vit_hf"] = (pixels,)
    except ImportError:
        print("transformers is not installed: torchvision models only")
    dynamo = exporter == "dynamo"
    for name, make in models.items():
        if make is None or (only and name not in only):
            continue
        path = os.path.join(out, f"zoo_{name}.export.onnx")
        a = args.get(name, (image,))
        try:  # with grad: no fused attention fast path (aten::_native_multi_head_attention)
            model = make()
            m = export(model, a, path, [f"input_{k}" for k in range(len(a))], opset=opset, dynamo=dynamo,
                       output_names=() if dynamo else ("output",))
        except Exception as e:  # an exporter that cannot write the model is reported, not fatal
            print(f"{name}: export failed: {type(e).__name__}: {str(e)[:300]}")
            continue
        finally:
            for p in (path, path + ".data"):
                if os.path.exists(p):
                    os.remove(p)
        # The name says how the file was written, unless TorchScript's exporter wrote opset 17.
        written = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
        suffix = ("_dynamo" if dynamo else "") + ("" if written == OPSET and not dynamo else f"_opset{written}")
        path = os.path.join(out, f"zoo_{name}{suffix}.onnx")
        count = strip(m) if name not in whole else 0
        onnx.save(m, path)
        if name in whole:
            import onnxruntime
            session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            feeds = {i.name: t.numpy() for i, t in zip(session.get_inputs(), a)}
            for k, (n, v) in enumerate(feeds.items()):
                with open(path[:-5] + f".input_{k}.pb", "wb") as f:
                    f.write(numpy_helper.from_array(v, n).SerializeToString())
            for k, v in enumerate(session.run(None, feeds)):
                with open(path[:-5] + f".output_{k}.pb", "wb") as f:
                    f.write(numpy_helper.from_array(v, f"output_{k}").SerializeToString())
        print(f"{os.path.basename(path)}: opset {written}, "
              f"IR {m.ir_version}, {len(m.graph.node)} nodes, {count} initializers stripped, "
              f"{os.path.getsize(path) / 1e3:.1f} kB, ops {sorted({n.op_type for n in m.graph.node})}")

if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "--zoo":
        import argparse
        p = argparse.ArgumentParser(description="the model zoo")
        p.add_argument("--zoo", required=True, metavar="OUT_DIR")
        p.add_argument("--exporter", choices=("torchscript", "dynamo"), default="torchscript")
        p.add_argument("--opset", default=str(OPSET), help="an opset, or 'default' (the exporter's own)")
        p.add_argument("--only", default="", help="comma-separated model names")
        p.add_argument("--whole", default="", help="models to keep whole, with onnxruntime's outputs")
        o = p.parse_args()
        print(f"torch {torch.__version__}, onnx {onnx.__version__}")
        zoo_models(o.zoo, o.exporter, None if o.opset == "default" else int(o.opset),
                   set(filter(None, o.only.split(","))), set(filter(None, o.whole.split(","))))
        sys.exit(0)
    if len(sys.argv) == 4 and sys.argv[1] == "--batch":
        print(f"torch {torch.__version__}, onnx {onnx.__version__}")
        bench_models(sys.argv[3], int(sys.argv[2]))
        sys.exit(0)
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    print(f"torch {torch.__version__}, onnx {onnx.__version__}")
    conformance_models(sys.argv[1])
    bench_models(sys.argv[1])
