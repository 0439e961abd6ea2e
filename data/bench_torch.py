#!/usr/bin/python3
"""PyTorch counterpart of `./dino bench` (issue 5): times full DINO training steps.

Run with Debian's torch:  /usr/bin/python3 data/bench_torch.py [--threads 2] [--steps 10] ...

One step, on fixed random crops (no data loading), is exactly main_dino.py's inner loop:
teacher forward on the 2 global crops (no_grad), student forward on all crops, DINO loss
(with its center update), backward, per-tensor gradient clipping at 3.0, AdamW step (the
official param groups, lr and wd set every step), EMA of the teacher over all parameters.
The modules are the official ones as rewritten in reference.py (importing it only defines
them).  Peak RSS is the peak of this whole process, so run the benchmark on its own.

FLOPs are counted analytically, the same way the C side does: only matmuls and attention.
A Linear (or the patch conv as a matmul) with N rows, C in, OC out costs 2*N*C*OC forward
and 4*N*C*OC backward (dinput + dweight; the patch embedding needs no dinput: 2*N*C*OC);
attention per (image, head) costs 2*T*T*hs for QK^T plus 2*T*T*hs for AV forward, twice
that backward.  Teacher: forward of the 2 global crops.  Student: forward + backward of all
crops.  The head (3-layer MLP + bottleneck x K last layer) runs on every crop's CLS row.

Threading: Debian's torch runs its own ops on an OpenMP (libgomp) pool and its GEMMs on
OpenBLAS's separate pthread pool; both busy-wait after each parallel region and steal each
other's cores (at 2 threads steps were erratic, 3.3-10.7 s, never faster than 1 thread).
Unless --stock is given, the script therefore sets OMP_WAIT_POLICY=PASSIVE and
OPENBLAS_THREAD_TIMEOUT=4 (shortest OpenBLAS spin) before torch loads; values already in the
environment win.  torch.set_num_threads does not reach OpenBLAS, so its threads are set too.
"""
import argparse
import ctypes
import os
import resource
import statistics
import sys
import time

# read only when libgomp / OpenBLAS load, so set before importing torch
THREADING_ENV = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_THREAD_TIMEOUT": "4"}
if "--stock" not in sys.argv:
    for key, value in THREADING_ENV.items():
        os.environ.setdefault(key, value)

import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference as ref  # noqa: E402  (definitions only; its main() is __main__-guarded)

CHANNELS, CLIP_GRAD = 3, 3.0


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name, default in [("img-size", 32), ("patch", 4), ("dim", 192), ("depth", 6), ("heads", 3),
                          ("head-hidden", 1024), ("bottleneck", 256), ("out-dim", 4096),
                          ("n-local", 6), ("local-size", 16), ("batch", 64), ("steps", 10),
                          ("warmup", 2), ("threads", 2)]:
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--mlp-ratio", type=float, default=4.0)
    p.add_argument("--drop-path", type=float, default=0.1)
    p.add_argument("--blas-threads", type=int, default=None,
                   help="OpenBLAS threads (default: --threads; torch.set_num_threads does not set them)")
    p.add_argument("--stock", action="store_true",
                   help="do not set " + " ".join(f"{k}={v}" for k, v in THREADING_ENV.items()))
    return p.parse_args()


def openblas():
    """Debian's torch does its float32 GEMMs through libblas.so.3 -> OpenBLAS (pthread build).
    OpenBLAS keeps its own thread pool that torch.set_num_threads() does not touch, so we set
    it through its C API.  Returns (ctypes handle or None, description)."""
    try:
        lib = ctypes.CDLL("libopenblas.so.0")      # the copy torch already loaded
        lib.openblas_get_config.restype = ctypes.c_char_p
        return lib, lib.openblas_get_config().decode()
    except (OSError, AttributeError):
        with open("/proc/self/maps") as f:
            libs = sorted({line.split()[-1] for line in f if "blas" in line.lower()})
        return None, "not OpenBLAS? loaded: " + (", ".join(libs) or "none")


def flops_per_step(a):
    """Analytic matmul + attention FLOPs of one step: dict of teacher fwd, student fwd/bwd."""
    D, hid, hs = a.dim, int(a.dim * a.mlp_ratio), a.dim // a.heads

    def vit(img):                                  # (forward, backward) of one image
        n = (img // a.patch) ** 2
        T = n + 1                                  # patches + CLS
        embed = 2 * n * (CHANNELS * a.patch ** 2) * D
        mm = 2 * T * D * 3 * D + 2 * T * D * D + 2 * T * D * hid + 2 * T * hid * D  # qkv proj fc1 fc2
        att = a.heads * (2 * T * T * hs + 2 * T * T * hs)                          # QK^T, AV
        return embed + a.depth * (mm + att), embed + 2 * a.depth * (mm + att)

    H, bn = a.head_hidden, a.bottleneck
    head = 2 * (D * H + H * H + H * bn + bn * a.out_dim)   # per CLS row, forward
    (gf, gb), (lf, lb) = vit(a.img_size), vit(a.local_size)
    ng, nl = 2 * a.batch, a.n_local * a.batch               # global / local images
    return {"teacher fwd": ng * (gf + head),
            "student fwd": ng * gf + nl * lf + (ng + nl) * head,
            "student bwd": ng * gb + nl * lb + (ng + nl) * 2 * head}


def build(a, drop_path):
    vit = ref.VisionTransformer(a.img_size, a.patch, CHANNELS, a.dim, a.depth, a.heads, a.mlp_ratio,
                                qkv_bias=True, drop_path_rate=drop_path)
    head = ref.DINOHead(a.dim, a.out_dim, nlayers=3, hidden_dim=a.head_hidden, bottleneck_dim=a.bottleneck)
    return ref.MultiCropWrapper(vit, head)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # ru_maxrss is KiB on Linux


def main():
    a = parse_args()
    rss_import = peak_rss_mib()
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"WARNING: {var}={os.environ[var]} is set: OpenBLAS may not use its auto-detected "
                  f"kernels/blocking; figures may differ from a run without it")
    torch.set_num_threads(a.threads)
    blas, blas_desc = openblas()
    blas_threads = a.blas_threads or a.threads
    if blas is not None:
        blas.openblas_set_num_threads(blas_threads)
        blas_threads = blas.openblas_get_num_threads()
    torch.manual_seed(0)

    # models: the teacher starts as an exact copy of the student and never drops paths
    student, teacher = build(a, a.drop_path), build(a, 0.0)
    teacher.load_state_dict(student.state_dict())
    for p in teacher.parameters():
        p.requires_grad = False
    ncrops = 2 + a.n_local
    dino_loss = ref.DINOLoss(a.out_dim, ncrops, 0.04, 0.04, 0, 1)   # teacher temp fixed at 0.04
    optimizer = torch.optim.AdamW(ref.get_params_groups(student))   # official groups, defaults
    # official schedules (lr 0.0005 * batch / 256 -> 1e-6, wd 0.04 -> 0.4, momentum 0.996 -> 1)
    # stretched over the steps run; the values do not matter for timing, only that they are set
    nsteps = a.warmup + a.steps
    lr_s = ref.cosine_scheduler(0.0005 * a.batch / 256, 1e-6, 1, nsteps)
    wd_s = ref.cosine_scheduler(0.04, 0.4, 1, nsteps)
    mom_s = ref.cosine_scheduler(0.996, 1.0, 1, nsteps)

    # fixed random crops, one list of ncrops tensors of `batch` images (the loader's format)
    crops = ([torch.randn(a.batch, CHANNELS, a.img_size, a.img_size) for _ in range(2)] +
             [torch.randn(a.batch, CHANNELS, a.local_size, a.local_size) for _ in range(a.n_local)])

    def train_step(it):
        for i, group in enumerate(optimizer.param_groups):
            group["lr"] = lr_s[it]
            if i == 0:                              # only the first group is decayed
                group["weight_decay"] = wd_s[it]
        with torch.no_grad():
            teacher_output = teacher(crops[:2])     # teacher: 2 global crops only
        student_output = student(crops)             # student: all crops
        loss = dino_loss(student_output, teacher_output, 0)   # also updates the center
        optimizer.zero_grad()
        loss.backward()
        ref.clip_gradients(student, CLIP_GRAD)      # per tensor
        optimizer.step()
        with torch.no_grad():                       # EMA over every parameter
            m = mom_s[it]
            for p_s, p_t in zip(student.parameters(), teacher.parameters()):
                p_t.data.mul_(m).add_((1 - m) * p_s.detach().data)
        return loss.item()

    # header
    fl = flops_per_step(a)
    total = sum(fl.values())
    nparams = sum(p.numel() for p in student.parameters() if p.requires_grad)
    print(f"config: img {a.img_size} patch {a.patch} dim {a.dim} depth {a.depth} heads {a.heads} "
          f"mlp-ratio {a.mlp_ratio:g}, head {a.head_hidden}/{a.bottleneck}/K {a.out_dim}, crops "
          f"2x{a.img_size} + {a.n_local}x{a.local_size}, batch {a.batch}, drop_path {a.drop_path:g}, "
          f"float32, {nparams} trainable student params")
    print(f"torch {torch.__version__}: intra-op threads {torch.get_num_threads()} "
          f"({torch.__config__.parallel_info().splitlines()[-1].strip()}), "
          f"mkldnn {torch.backends.mkldnn.is_available()}; BLAS threads {blas_threads}: {blas_desc}")
    print("threading env: " + " ".join(f"{k}={os.environ.get(k, '(unset)')}" for k in THREADING_ENV)
          + (" (--stock)" if a.stock else ""))
    print("FLOPs per step: %.3f GFLOP (%s)" % (total / 1e9, ", ".join(
        f"{k} {v / 1e9:.3f}" for k, v in fl.items())))

    # warm-up, then timed steps
    times = []
    for it in range(nsteps):
        t0 = time.perf_counter()
        loss = train_step(it)
        dt = time.perf_counter() - t0
        if loss != loss or abs(loss) == float("inf"):
            sys.exit(f"loss is {loss} at step {it}")
        if it >= a.warmup:
            times.append(dt)
        print(f"  step {it:2d}{' (warm-up)' if it < a.warmup else ''}: {dt * 1e3:9.1f} ms  loss {loss:.6f}")

    med = statistics.median(times)
    print(f"bench torch: step {med * 1e3:.1f} ms (median of {len(times)}, min {min(times) * 1e3:.1f}, "
          f"max {max(times) * 1e3:.1f}), {a.batch / med:.1f} img/s, {total / med / 1e9:.1f} GFLOP/s, "
          f"peak RSS {peak_rss_mib():.0f} MiB ({rss_import:.0f} after importing torch), "
          f"threads {a.threads}" + (f" (BLAS {blas_threads})" if blas_threads != a.threads else ""))


if __name__ == "__main__":
    main()
