#!/usr/bin/env python3
# Runs a Triton export (`tessera db export --format triton`) as pasted, where Triton and a GPU are
# (the lent machine): every config of every matmul key through the file's matmul() against PyTorch
# in f32, and the fastest config's time beside torch.matmul (triton.testing.do_bench, which
# includes the Python launch).   python3 scripts/check-triton-export.py EXPORT.py
import importlib.util, sys
import torch, triton
spec = importlib.util.spec_from_file_location("tri", sys.argv[1]); tri = importlib.util.module_from_spec(spec); spec.loader.exec_module(tri)
dt = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}
torch.manual_seed(0)
bad = 0; checked = 0
for key, configs in tri.CONFIGS.items():
    parts = key.split(":"); kind = parts[0]
    kv = dict(x.split("=") for x in parts[1].split(","))
    dtype = dt[parts[2]]
    epi = next((p.split("=")[1] for p in parts[3:] if p.startswith("epilogue=")), "")
    b, m, n, k = int(kv.get("b", 1)), int(kv["m"]), int(kv["n"]), int(kv["k"]); tb = kv.get("tb") == "1"
    if m * n * k * b > 2**36: continue
    A = torch.randn((b, m, k) if kind == "batch_matmul" else (m, k), device="cuda", dtype=dtype)
    Bshape = (n, k) if tb else (k, n)
    B = torch.randn(((b,) + Bshape) if kind == "batch_matmul" else Bshape, device="cuda", dtype=dtype)
    bias = torch.randn(n, device="cuda", dtype=dtype) if "bias" in epi else None
    res = torch.randn((b, m, n) if kind == "batch_matmul" else (m, n), device="cuda", dtype=dtype) if "residual" in epi else None
    ref = (A.float() @ (B.float().transpose(-1, -2) if tb else B.float()))
    for s in [x for x in epi.split("+") if x]:
        ref = ref + bias.float() if s == "bias" else torch.relu(ref) if s == "relu" else torch.nn.functional.gelu(ref) if s == "gelu" else ref + res.float()
    for i, c in enumerate(configs):
        try:
            out = tri.matmul(A, B, bias=bias, residual=res, epilogue=epi, trans_b=tb, config=c)
            err = ((out.float() - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item()
            ok = err < (2e-2 if dtype != torch.float32 else 1e-4 if c.kwargs["INPUT_PRECISION"] == "ieee" else 5e-3)
        except Exception as e:
            ok, err = False, f"{type(e).__name__}: {str(e)[:160]}"
        checked += 1; bad += not ok
        if i == 0 or not ok:
            t = triton.testing.do_bench(lambda: tri.matmul(A, B, bias=bias, residual=res, epilogue=epi, trans_b=tb, config=c)) if ok else 0
            def torch_fn():
                r = torch.matmul(A, B.transpose(-1, -2) if tb else B)
                return r
            tt = triton.testing.do_bench(torch_fn) if ok else 0
            print(f"{'ok ' if ok else 'BAD'} {key} cfg{i} {c.kwargs} w{c.num_warps} s{c.num_stages} ctas{c.num_ctas} err={err} triton={t*1e3:.1f}us torch_matmul={tt*1e3:.1f}us", flush=True)
print(f"configs checked {checked}, failed {bad}")
