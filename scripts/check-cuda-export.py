#!/usr/bin/env python3
# Runs a C/CUDA export (`tessera db export --format header --with-kernels -o NAME.h`) as a user
# would, where a GPU, nvcc and PyTorch are (the lent machine): NAME.cu is built by nvcc into a
# shared library (-arch=sm_90a, or the flags given after the header), and every launch function
# the header declares is called through ctypes on PyTorch tensors and compared with PyTorch in
# f32 (matmul, batch_matmul, conv2d NHWC, softmax, layernorm with their epilogues).
#   python3 scripts/check-cuda-export.py NAME.h [NVCC FLAGS...]
import ctypes, os, re, subprocess, sys, tempfile, time
import torch
import torch.nn.functional as F

header = sys.argv[1]
flags = sys.argv[2:] or ["-arch=sm_90a"]
cu = header[:-2] + ".cu"
lib_path = os.path.join(tempfile.mkdtemp(), "export.so")
start = time.time()
subprocess.run(["nvcc", *flags, "-shared", "-Xcompiler", "-fPIC", "-o", lib_path, cu], check=True)
print(f"built {cu} with {' '.join(flags)} in {time.time() - start:.0f} s")
lib = ctypes.CDLL(lib_path)
text = open(header).read()
entries = re.findall(r"/\* (\S+) \| (\S+)(?:\n[^\n]*)? \*/\n#define TESSERA_WORKSPACE_BYTES_\w+ (\d+)ULL\nint (tessera_launch_\w+)\(",
                     text)
dt = {"f16": torch.float16, "bf16": torch.bfloat16, "f32": torch.float32}
torch.manual_seed(0)


def parse(key):
    parts = key.split(":")
    kv = dict(x.split("=") for x in parts[1].split(",")) if len(parts) > 1 else {}
    opts = dict(p.split("=", 1) for p in parts[3:] if "=" in p)
    return parts[0], kv, dt[parts[2]], opts


def epilogue(ref, steps, extras):
    for s in steps:
        if s == "bias": ref = ref + extras["bias"].float()
        elif s == "relu": ref = torch.relu(ref)
        elif s == "gelu": ref = F.gelu(ref)
        elif s == "residual": ref = ref + extras["residual"].float()
    return ref


def problem(key):
    """The tensors in the workload's order (inputs, then the output) and the f32 reference."""
    kind, kv, dtype, opts = parse(key)
    steps = [s for s in opts.get("epilogue", "").split("+") if s]
    g = lambda *shape: torch.randn(*shape, device="cuda", dtype=dtype)
    if kind in ("matmul", "batch_matmul"):
        b, m, n, k = int(kv.get("b", 1)), int(kv["m"]), int(kv["n"]), int(kv["k"])
        ta, tb = kv.get("ta") == "1", kv.get("tb") == "1"
        lead = (b,) if kind == "batch_matmul" else ()
        A = g(*lead, *((k, m) if ta else (m, k)))
        B = g(*lead, *((n, k) if tb else (k, n)))
        extras = {"bias": g(n), "residual": g(*lead, m, n)}
        ref = (A.float().transpose(-1, -2) if ta else A.float()) @ (B.float().transpose(-1, -2) if tb else B.float())
        out = torch.empty(*lead, m, n, device="cuda", dtype=dtype)
        ins = [A, B] + [extras[s] for s in steps if s in extras]
        return ins + [out], epilogue(ref, steps, extras), dtype
    if kind == "conv2d":
        n, h, w, c, k = (int(kv[x]) for x in "nhwck")
        r, s = int(kv.get("r", 1)), int(kv.get("s", 1))
        hw = lambda name, d: tuple(int(v) for v in kv.get(name, str(d)).split("x")) * (1 if "x" in kv.get(name, "") else 2)
        stride, pad, dil = hw("stride", 1), hw("pad", 0), hw("dilation", 1)
        groups = int(kv.get("groups", 1))
        X, W = g(n, h, w, c), g(k, r, s, c // groups)
        ref = F.conv2d(X.float().permute(0, 3, 1, 2), W.float().permute(0, 3, 1, 2), stride=stride, padding=pad,
                       dilation=dil, groups=groups).permute(0, 2, 3, 1)
        extras = {"bias": g(k), "residual": g(*ref.shape)}
        out = torch.empty(*ref.shape, device="cuda", dtype=dtype)
        return [X, W] + [extras[s] for s in steps if s in extras] + [out], epilogue(ref, steps, extras), dtype
    if kind in ("softmax", "layernorm"):
        rows, cols = int(kv["rows"]), int(kv["cols"])
        X = g(rows, cols)
        out = torch.empty(rows, cols, device="cuda", dtype=dtype)
        if kind == "softmax":
            return [X, out], torch.softmax(X.float(), -1), dtype
        gamma, beta = g(cols), g(cols)
        eps = float(kv.get("eps", "1e-5"))  # the key's epsilon, ONNX's default when it has none
        return [X, gamma, beta, out], F.layer_norm(X.float(), (cols,), gamma.float(), beta.float(), eps), dtype
    return None


bad = checked = 0
for key, schedule, workspace, fn in entries:
    p = problem(key)
    if p is None:
        print(f"skipped {key}: no PyTorch reference here")
        continue
    tensors, ref, dtype = p
    ws = torch.empty(max(int(workspace), 1), device="cuda", dtype=torch.uint8)
    ptrs = (ctypes.c_void_p * len(tensors))(*[t.data_ptr() for t in tensors])
    launch = getattr(lib, fn)
    launch.restype = ctypes.c_int
    launch.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    stream = torch.cuda.current_stream().cuda_stream
    rc = launch(ptrs, ctypes.c_void_p(ws.data_ptr() if int(workspace) else None), ctypes.c_void_p(stream))
    torch.cuda.synchronize()
    out = tensors[-1].float()
    err = ((out - ref).abs().max() / ref.abs().max().clamp_min(1e-6)).item() if rc == 0 else float("inf")
    ok = rc == 0 and err < (2e-2 if dtype != torch.float32 else 5e-3)
    us = 0.0
    if ok:
        t0, t1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        t0.record()
        for _ in range(20): launch(ptrs, ctypes.c_void_p(ws.data_ptr() if int(workspace) else None), ctypes.c_void_p(stream))
        t1.record(); torch.cuda.synchronize()
        us = t0.elapsed_time(t1) * 1000 / 20
    checked += 1; bad += not ok
    print(f"{'ok ' if ok else 'BAD'} {key} | {schedule.split(':')[0]} rc={rc} max rel err {err:.2e} {us:.1f} us")
print(f"{checked} launch functions called, {checked - bad} matched PyTorch, {bad} did not")
sys.exit(1 if bad or not checked else 0)
