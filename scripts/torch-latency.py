#!/usr/bin/env python3
"""PyTorch's latency for the graph-run benchmark models, beside `tessera graph run`.

Run on the lent GPU machine (it has PyTorch, torchvision and transformers; nothing is
downloaded, every model has random weights, as scripts/export-models.py builds them):

    python3 scripts/torch-latency.py [--batch N] [--iters N] [--modes eager,compile] [--json]

For each of ResNet-50, ResNeXt-50, Inception-v3, BERT-base (128 tokens, eager attention) and
ViT-B/16, in f16 on the first GPU: the median latency of one forward pass (CUDA events around
each call, after warm-up), in eager mode and under torch.compile (its default mode). Prints a
table; with --json, one JSON object per line.
"""
import argparse
import json
import statistics
import sys

import torch


def build(name, batch):
    import torchvision
    import transformers

    if name == "bert_base":
        config = transformers.BertConfig()
        config._attn_implementation = "eager"
        model = transformers.BertModel(config, add_pooling_layer=False)
        return model, (torch.randint(0, config.vocab_size, (batch, 128)),)
    if name == "inception_v3":
        model = torchvision.models.inception_v3(weights=None, aux_logits=False, init_weights=False)
        return model, (torch.randn(batch, 3, 299, 299),)
    ctor = {"resnet50": torchvision.models.resnet50, "resnext50": torchvision.models.resnext50_32x4d,
            "vit_b16": torchvision.models.vit_b_16}[name]
    return ctor(weights=None), (torch.randn(batch, 3, 224, 224),)


def latency_us(fn, args, iters):
    with torch.no_grad():
        for _ in range(10):
            fn(*args)
        torch.cuda.synchronize()
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iters):
            start.record()
            fn(*args)
            stop.record()
            stop.synchronize()
            times.append(1e3 * start.elapsed_time(stop))
    return statistics.median(times)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--iters", type=int, default=100)
    p.add_argument("--modes", default="eager,compile")
    p.add_argument("--models", default="resnet50,resnext50,inception_v3,bert_base,vit_b16")
    p.add_argument("--json", action="store_true")
    o = p.parse_args()
    if not torch.cuda.is_available():
        sys.exit("torch-latency: no GPU")
    device = torch.cuda.get_device_name(0)
    if not o.json:
        print(f"torch {torch.__version__} on {device}, batch {o.batch}, f16; median us of {o.iters} calls")
    for name in o.models.split(","):
        model, args = build(name, o.batch)
        model = model.eval().cuda().half()
        args = tuple(a.cuda().half() if a.is_floating_point() else a.cuda() for a in args)
        row = {"model": name, "batch": o.batch, "device": device, "torch": torch.__version__}
        for mode in o.modes.split(","):
            fn = model if mode == "eager" else torch.compile(model)
            row[mode + "_us"] = latency_us(fn, args, o.iters)
        if o.json:
            print(json.dumps(row), flush=True)
        else:
            print(f"{name:14s} " + "  ".join(f"{m} {row[m + '_us']:9.1f}" for m in o.modes.split(",")), flush=True)


if __name__ == "__main__":
    main()
