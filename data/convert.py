#!/usr/bin/python3
"""dino.c checkpoints <-> PyTorch, in the layout of facebookresearch/dino.

    /usr/bin/python3 data/convert.py to-torch   runs/x/model.bin model.pth
    /usr/bin/python3 data/convert.py from-torch model.pth model.bin [--heads 6] [--mean R G B --std R G B]
    /usr/bin/python3 data/convert.py check      runs/x/model.bin [--images FILE.bin] [--official DIR]
    /usr/bin/python3 data/convert.py fixture    # rewrites data/interop/, the fixture test_dino.c reads

Needs torch and numpy only (Debian: python3-torch, python3-numpy); `check` and `from-torch`
of a checkpoint that did not come from dino.c also run ./dino (build it with make).

to-torch writes what main_dino.py's checkpoint.pth holds, so the official tools load it:
  'teacher', 'student'  state_dicts of MultiCropWrapper(VisionTransformer, DINOHead):
                        backbone.cls_token (1,1,D), backbone.pos_embed (1,1+G*G,D),
                        backbone.patch_embed.proj.weight (D,C,P,P), backbone.blocks.<l>.*,
                        backbone.norm.*, head.mlp.{0,2,4}.*, head.last_layer.weight_g (K,1) = 1,
                        head.last_layer.weight_v (K,BN)
  'dino_loss'           {'center': (1,K)}
  'dino_c'              what else a dino.c checkpoint holds (config, step counts, RNG, the
                        AdamW moments), so from-torch gives back the very same file.
eval_knn.py, eval_linear.py and visualize_attention.py read it with --checkpoint_key teacher
(they drop the 'backbone.' prefix); build the VisionTransformer with img_size=[S],
patch_size=P, embed_dim=D, depth=L, num_heads=NH, mlp_ratio, qkv_bias=True and
norm_layer=partial(nn.LayerNorm, eps=1e-6), as vit_small does (`check --official DIR` does
exactly that with a clone of the repository).

from-torch reads such a file, or any state_dict with the official names (with or without
the 'backbone.' prefix, with or without a head). What the tensors do not say comes from
flags: the heads (default D / 64, the official models' head size), the pixel mean and std
(default ImageNet's, the official normalisation); the recipe takes dino.c's defaults
(`./dino info`). A missing head is initialised afresh (the backbone's features and
attention do not depend on it). The AdamW moments start at zero unless 'dino_c' has them.

The modules are those of data/reference.py, which mirrors the official structure and names.
"""
import argparse
import functools
import os
import re
import struct
import subprocess
import sys
import tempfile
from collections import OrderedDict

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import reference  # noqa: E402  (the official module structure, at any size)

MAGIC, VERSION, HEADER, STATE = 20210429, 1, 256, 64
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


# ------------------------------ dino.c checkpoints ------------------------------

def config_fields():
    """[(name, is_float)] in checkpoint-header order, read from dino.c's list of config fields
    (the CONFIG_FIELDS macro: FIELD(type, name, ...) rows, and PIXEL(name, ...) rows that are
    three float fields name_r, name_g, name_b) so that this script and dino.c cannot disagree."""
    src = open(os.path.join(ROOT, "dino.c")).read()
    start = src.index("#define CONFIG_FIELDS(FIELD, PIXEL)")
    end = start
    while src[end:src.index("\n", end)].rstrip().endswith("\\"):  # the macro's lines end in a backslash
        end = src.index("\n", end) + 1
    table = src[start:src.index("\n", end)]
    fields = []
    for m in re.finditer(r"\b(FIELD|PIXEL)\((?:(int|float), )?(\w+),", table.split("\n", 1)[1]):
        if m.group(1) == "FIELD":
            fields.append((m.group(3), m.group(2) == "float"))
        else:
            fields += [(m.group(3) + "_" + ch, True) for ch in "rgb"]
    if not fields:
        sys.exit("cannot read the config fields from dino.c's CONFIG_FIELDS")
    return fields


def read_dino(path):
    h = np.fromfile(path, dtype="<i4", count=HEADER)
    if len(h) < HEADER or h[0] != MAGIC or h[1] != VERSION:
        sys.exit(f"{path}: not a dino.c checkpoint (version {VERSION})")
    fields = config_fields()
    if not 0 < h[2] <= len(fields):
        sys.exit(f"{path}: {h[2]} config fields, this dino.c knows {len(fields)}")
    config = OrderedDict()
    for i, (name, is_float) in enumerate(fields[:h[2]]):
        config[name] = float(h.view("<f4")[3 + i]) if is_float else int(h[3 + i])
    u32 = h.view("<u4")
    n = int(u32[STATE + 5]) | int(u32[STATE + 6]) << 32
    K = config["out_dim"]
    data = np.fromfile(path, dtype="<f4", offset=4 * HEADER)
    if len(data) != 4 * n + K:
        sys.exit(f"{path}: {len(data)} floats after the header, expected {4 * n + K}")
    student, teacher, m, v, center = np.split(data, [n, 2 * n, 3 * n, 4 * n])
    return dict(config=config, step=int(h[STATE]), adam_steps=int(h[STATE + 1]), adam_steps_last=int(h[STATE + 2]),
                rng=int(u32[STATE + 3]) | int(u32[STATE + 4]) << 32,
                student=student, teacher=teacher, adam_m=m, adam_v=v, center=center)


def write_dino(path, ck):
    fields = config_fields()
    h = np.zeros(HEADER, dtype="<u4")
    h[0], h[1], h[2] = MAGIC, VERSION, len(fields)
    for i, (name, is_float) in enumerate(fields):
        v = ck["config"][name]
        h[3 + i] = np.array([v], "<f4").view("<u4")[0] if is_float else np.array([v], "<i4").view("<u4")[0]
    n = len(ck["student"])
    h[STATE:STATE + 7] = [ck["step"], ck["adam_steps"], ck["adam_steps_last"], ck["rng"] & 0xffffffff, ck["rng"] >> 32,
                          n & 0xffffffff, n >> 32]
    with open(path, "wb") as f:
        f.write(h.tobytes())
        for key in ("student", "teacher", "adam_m", "adam_v", "center"):
            f.write(np.asarray(ck[key], "<f4").tobytes())


# ------------------------- the parameter layout of dino.c -------------------------

def layout(c):
    """dino.c's parameter tensors in memory order: (official name, per_block, official shape of
    one block's slice). The same order as param_info in dino.c (README, "Parameters and checkpoints")."""
    D, L, C, P = c["dim"], c["depth"], c["channels"], c["patch"]
    H, HH, BN, K = c["mlp_ratio"] * D, c["head_hidden"], c["bottleneck"], c["out_dim"]
    T = 1 + (c["img_size"] // P) ** 2
    b = "backbone.blocks.%d."
    return [("backbone.cls_token", 0, (1, 1, D)), ("backbone.pos_embed", 0, (1, T, D)),
            ("backbone.patch_embed.proj.weight", 0, (D, C, P, P)), ("backbone.patch_embed.proj.bias", 0, (D,)),
            (b + "norm1.weight", 1, (D,)), (b + "norm1.bias", 1, (D,)),
            (b + "attn.qkv.weight", 1, (3 * D, D)), (b + "attn.qkv.bias", 1, (3 * D,)),
            (b + "attn.proj.weight", 1, (D, D)), (b + "attn.proj.bias", 1, (D,)),
            (b + "norm2.weight", 1, (D,)), (b + "norm2.bias", 1, (D,)),
            (b + "mlp.fc1.weight", 1, (H, D)), (b + "mlp.fc1.bias", 1, (H,)),
            (b + "mlp.fc2.weight", 1, (D, H)), (b + "mlp.fc2.bias", 1, (D,)),
            ("backbone.norm.weight", 0, (D,)), ("backbone.norm.bias", 0, (D,)),
            ("head.mlp.0.weight", 0, (HH, D)), ("head.mlp.0.bias", 0, (HH,)),
            ("head.mlp.2.weight", 0, (HH, HH)), ("head.mlp.2.bias", 0, (HH,)),
            ("head.mlp.4.weight", 0, (BN, HH)), ("head.mlp.4.bias", 0, (BN,)),
            ("head.last_layer.weight_v", 0, (K, BN))]


def official_keys(c):
    """The state_dict keys of MultiCropWrapper(VisionTransformer, DINOHead), in module order."""
    lay = layout(c)
    keys = [name for name, _, _ in lay[:4]]                                              # embeddings
    keys += [name % l for l in range(c["depth"]) for name, per_block, _ in lay if per_block]  # block by block
    keys += [name for name, _, _ in lay[16:24]]                                          # final norm, head MLP
    return keys + ["head.last_layer.weight_g", "head.last_layer.weight_v"]


def flat_to_state(flat, c):
    """One flat block of dino.c parameters -> a state_dict with the official names, in the
    official module order (dino.c stacks each per-block tensor over the blocks)."""
    pieces, off = {}, 0
    for name, per_block, shape in layout(c):
        size = int(np.prod(shape))
        for l in range(c["depth"] if per_block else 1):
            pieces[name % l if per_block else name] = torch.from_numpy(flat[off:off + size].reshape(shape).copy())
            off += size
    assert off == len(flat), f"{len(flat)} parameters, the config makes {off}"
    pieces["head.last_layer.weight_g"] = torch.ones(c["out_dim"], 1)  # norm_last_layer: g fixed at 1, dino.c does not store it
    return OrderedDict((k, pieces[k]) for k in official_keys(c))


def state_to_flat(state, c, what):
    """The reverse of flat_to_state; checks every name and shape."""
    g = state["head.last_layer.weight_g"]
    if not torch.all(g == 1):
        sys.exit(f"{what}: head.last_layer.weight_g is not all 1 (norm_last_layer=False?); dino.c fixes g at 1")
    out = []
    for name, per_block, shape in layout(c):
        blocks = [state.get(name % l if per_block else name) for l in range(c["depth"] if per_block else 1)]
        for l, t in enumerate(blocks):
            key = name % l if per_block else name
            if t is None:
                sys.exit(f"{what}: no tensor '{key}'")
            if tuple(t.shape) != shape:
                sys.exit(f"{what}: '{key}' has shape {tuple(t.shape)}, expected {shape}")
            out.append(t.detach().double().numpy().astype("<f4").ravel())
    extra = set(state) - set(official_keys(c))
    if extra:
        sys.exit(f"{what}: tensors dino.c has no place for: {', '.join(sorted(extra))}")
    return np.concatenate(out)


# ----------------------------------- converting -----------------------------------

def to_torch(ck):
    c = ck["config"]
    return {"teacher": flat_to_state(ck["teacher"], c), "student": flat_to_state(ck["student"], c),
            "dino_loss": {"center": torch.from_numpy(ck["center"].reshape(1, -1).copy())},
            "dino_c": {"config": dict(c), "step": ck["step"], "adam_steps": ck["adam_steps"],
                       "adam_steps_last": ck["adam_steps_last"], "rng": ck["rng"],
                       "adam_m": torch.from_numpy(ck["adam_m"].copy()), "adam_v": torch.from_numpy(ck["adam_v"].copy())}}


@functools.lru_cache(maxsize=1)
def dino_defaults():
    """dino.c's default config, from `./dino info` (so the recipe values are never copied here)."""
    exe = os.path.join(ROOT, "dino")
    if not os.path.exists(exe):
        sys.exit("this needs dino.c's defaults from ./dino info: build it first (make)")
    out = subprocess.run([exe, "info"], check=True, capture_output=True, text=True).stdout
    values = dict(re.findall(r"^  --(\w+)\s+(\S+)", out, re.M))
    return OrderedDict((name, float(values[name]) if is_float else int(values[name])) for name, is_float in config_fields())


def infer_config(state, args):
    """The model's config from the shapes of an official state_dict (backbone.* and head.* names)."""
    c = OrderedDict(dino_defaults())
    D, C, P, _ = state["backbone.patch_embed.proj.weight"].shape
    T = state["backbone.pos_embed"].shape[1]
    G = int(round((T - 1) ** 0.5))
    depth = 1 + max(int(k.split(".")[2]) for k in state if k.startswith("backbone.blocks."))
    heads = args.heads or (D // 64 if D % 64 == 0 else 0)
    if heads == 0:
        sys.exit(f"width {D} is not a multiple of 64: give the number of heads with --heads")
    c.update(img_size=G * P, channels=C, patch=P, dim=D, depth=depth, heads=heads,
             mlp_ratio=state["backbone.blocks.0.mlp.fc1.weight"].shape[0] // D,
             head_hidden=state["head.mlp.0.weight"].shape[0], bottleneck=state["head.mlp.4.weight"].shape[0],
             out_dim=state["head.last_layer.weight_v"].shape[0])
    for i, ch in enumerate("rgb"):
        c["mean_" + ch], c["std_" + ch] = float(args.mean[i]), float(args.std[i])
    return c


def with_head(state, args, what):
    """Official names with the 'backbone.' prefix; a fresh DINOHead (dino.c's default sizes or
    the flags) when the file has none, e.g. the official backbone-only weights."""
    state = {k.replace("module.", ""): v for k, v in state.items()}
    if not any(k.startswith("backbone.") for k in state):
        state = {("backbone." + k if not k.startswith("head.") else k): v for k, v in state.items()}
    if "head.mlp.0.weight" not in state:
        D = state["backbone.norm.weight"].shape[0]
        d = dino_defaults()
        head = reference.DINOHead(D, args.out_dim or d["out_dim"], nlayers=3, hidden_dim=args.head_hidden or d["head_hidden"],
                                  bottleneck_dim=args.bottleneck or d["bottleneck"])
        print(f"note: {what} has no DINO head: a freshly initialised one is added (features and attention do not use it)")
        state.update({"head." + k: v for k, v in head.state_dict().items()})
    return state


def from_torch(obj, args, what):
    if "teacher" in obj:
        teacher, student = with_head(obj["teacher"], args, what), with_head(obj.get("student", obj["teacher"]), args, what)
    else:  # a bare state_dict: it becomes both networks
        teacher = student = with_head(obj, args, what)
    extra = obj.get("dino_c", {})
    c = OrderedDict(extra["config"]) if "config" in extra else infer_config(teacher, args)
    for name, _ in config_fields():
        if name not in c:  # fields added to dino.c after the file was written keep their defaults
            c[name] = dino_defaults()[name]
    s, t = state_to_flat(student, c, what + " (student)"), state_to_flat(teacher, c, what + " (teacher)")
    center = obj.get("dino_loss", {}).get("center", torch.zeros(1, c["out_dim"]))
    return dict(config=c, step=extra.get("step", 0), adam_steps=extra.get("adam_steps", 0),
                adam_steps_last=extra.get("adam_steps_last", 0), rng=extra.get("rng", 1), student=s, teacher=t,
                adam_m=extra["adam_m"].numpy() if "adam_m" in extra else np.zeros_like(s),
                adam_v=extra["adam_v"].numpy() if "adam_v" in extra else np.zeros_like(s),
                center=center.double().numpy().astype("<f4").ravel())


# ------------------------------ the official modules ------------------------------

def build_modules(c, official=None):
    """VisionTransformer and DINOHead for config c: data/reference.py's, or with official=DIR
    those of a clone of facebookresearch/dino (built as its vit_small is)."""
    from functools import partial
    if official:
        sys.path.insert(0, official)
        import vision_transformer as vits
        vit = vits.VisionTransformer(img_size=[c["img_size"]], patch_size=c["patch"], in_chans=c["channels"], num_classes=0,
                                     embed_dim=c["dim"], depth=c["depth"], num_heads=c["heads"], mlp_ratio=c["mlp_ratio"],
                                     qkv_bias=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
        head = vits.DINOHead(c["dim"], c["out_dim"], use_bn=False, norm_last_layer=True, nlayers=3,
                             hidden_dim=c["head_hidden"], bottleneck_dim=c["bottleneck"])
    else:
        vit = reference.VisionTransformer(c["img_size"], c["patch"], c["channels"], c["dim"], c["depth"], c["heads"],
                                          c["mlp_ratio"], qkv_bias=True)
        head = reference.DINOHead(c["dim"], c["out_dim"], nlayers=3, hidden_dim=c["head_hidden"], bottleneck_dim=c["bottleneck"])
    return reference.MultiCropWrapper(vit, head).eval()


def load_modules(state, c, official=None, dtype=torch.float64):
    model = build_modules(c, official)
    model.load_state_dict(state, strict=True)  # every key and shape must match, both ways
    return model.to(dtype)


def read_cifar(path):
    """A CIFAR-10 binary file: uint8 images (n, 3, 32, 32) and labels."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 3073)
    return raw[:, 1:].reshape(-1, 3, 32, 32), raw[:, 0].astype(np.int64)


def torch_features(model, images, c):
    """Backbone output (CLS after the final norm) of the images as dino.c's evaluation view
    sees them: pixels / 255, normalised with the checkpoint's mean and std."""
    dtype = next(model.parameters()).dtype
    mean = torch.tensor([c["mean_r"], c["mean_g"], c["mean_b"]][:c["channels"]], dtype=torch.float32).view(1, -1, 1, 1)
    std = torch.tensor([c["std_r"], c["std_g"], c["std_b"]][:c["channels"]], dtype=torch.float32).view(1, -1, 1, 1)
    # float32, in dino.c's order of operations: pixel * (1 / 255), then (x - mean) / std
    x = (torch.from_numpy(images).float() * torch.tensor(1.0 / 255.0, dtype=torch.float32) - mean) / std
    with torch.no_grad():
        return model.backbone(x.to(dtype)).double().numpy()


# ----------------------------------- commands -----------------------------------

def cmd_check(args):
    ck = read_dino(args.model)
    c = ck["config"]
    with tempfile.TemporaryDirectory() as tmp:
        pth, back = os.path.join(tmp, "model.pth"), os.path.join(tmp, "back.bin")
        torch.save(to_torch(ck), pth)
        write_dino(back, from_torch(torch.load(pth), args, pth))
        if len(c) == len(config_fields()):
            same = open(args.model, "rb").read() == open(back, "rb").read()
            print(f"dino.c -> PyTorch -> dino.c gives back the same file byte for byte: {same}")
        else:  # an older checkpoint: the header gains the newer config fields at their defaults
            b = read_dino(back)
            same = all(b["config"][k] == v for k, v in c.items()) and all(
                np.array_equal(b[k], ck[k]) for k in ("student", "teacher", "adam_m", "adam_v", "center"))
            print(f"dino.c -> PyTorch -> dino.c gives back every value ({len(c)}-field header, now {len(config_fields())}): {same}")
        obj = torch.load(pth)
        bare = {k: v for k, v in obj.items() if k != "dino_c"}
        args.heads = args.heads or c["heads"]
        again = to_torch(from_torch(bare, args, "without dino_c"))
        equal = all(torch.equal(again[n][k], obj[n][k]) for n in ("teacher", "student") for k in obj[n])
        print(f"an official-style checkpoint (no dino_c entry) converts back to the same tensors: {equal}")
        models = {}
        for dtype in (torch.float64, torch.float32):
            models[dtype] = load_modules(obj["teacher"], c, args.official, dtype)
        print(f"the teacher loads with strict=True into {'the official' if args.official else 'data/reference.py'}'s "
              f"VisionTransformer + DINOHead ({sum(p.numel() for p in models[torch.float64].parameters())} parameters)")
        if c["img_size"] != 32 or c["channels"] != 3:
            print(f"features: skipped, this check compares on 32 px RGB CIFAR-format images (the model is {c['img_size']} px)")
            return same and equal
        images, _ = read_cifar(args.images)
        npy = os.path.join(tmp, "f.npy")
        subprocess.run([os.path.join(ROOT, "dino"), "embed", "--model", args.model, "--data", args.images, "--output", npy],
                       check=True, capture_output=True)
        ours = np.load(npy).astype(np.float64)
    truth, f32 = (torch_features(models[t], images, c) for t in (torch.float64, torch.float32))
    err, noise = np.abs(ours - truth).max(), np.abs(f32 - truth).max()
    ulps = 8 * np.abs(truth).max() * 2.0 ** -24
    ok = err <= max(8 * noise, ulps)
    print(f"teacher features of {len(images)} images ({args.images}): max |dino.c - torch float64| = {err:.3g}, "
          f"torch float32's own deviation {noise:.3g}: {'same' if ok else 'DIFFERENT'}")
    return same and equal and ok


def cmd_fixture(args):
    """data/interop/: a tiny model converted from PyTorch, 4 images, and PyTorch's features of
    them; test_dino.c checks that dino.c computes the same features from the converted file."""
    out = os.path.join(HERE, "interop")
    os.makedirs(out, exist_ok=True)
    # small enough to commit (the checkpoint is ~60 KB), with every kind of tensor and 2 blocks
    sizes = dict(img_size=32, channels=3, patch=8, dim=8, depth=2, heads=2, mlp_ratio=2, head_hidden=16, bottleneck=8, out_dim=16)
    torch.manual_seed(0)
    model = build_modules(sizes)
    with torch.no_grad():  # as in reference.py: no bias 0, no LayerNorm weight exactly 1
        for name, p in model.named_parameters():
            if p.ndim == 1:
                p.add_(0.05 * torch.randn(p.shape))
    student = OrderedDict((k, v.clone()) for k, v in model.state_dict().items())
    teacher = OrderedDict((k, v + (0.01 * torch.randn(v.shape) if not k.endswith("weight_g") else 0))
                          for k, v in student.items())  # the teacher differs, so using the wrong one shows
    obj = {"teacher": teacher, "student": student, "dino_loss": {"center": 0.1 * torch.randn(1, sizes["out_dim"])}}
    args.heads, args.mean, args.std = sizes["heads"], (0.45, 0.5, 0.55), (0.2, 0.25, 0.3)
    ck = from_torch(obj, args, "fixture")
    write_dino(os.path.join(out, "model.bin"), ck)
    rng = np.random.RandomState(0)  # 4 images: smooth colour gradients plus noise, labels 0..3
    yy, xx = np.mgrid[0:32, 0:32] / 31.0
    recs = []
    for i in range(4):
        base = np.stack([np.cos(3 * xx + i) * np.sin(2 * yy + 0.5 * c) for c in range(3)]) * 0.4 + 0.5
        img = np.clip(base + 0.1 * rng.randn(3, 32, 32), 0, 1)
        recs.append(np.concatenate([[i], np.round(img * 255).astype(np.uint8).ravel()]).astype(np.uint8))
    np.concatenate(recs).tofile(os.path.join(out, "images.bin"))
    images, _ = read_cifar(os.path.join(out, "images.bin"))
    c = ck["config"]
    for dtype, name in ((torch.float64, "features.npy"), (torch.float32, "features_f32.npy")):
        f = torch_features(load_modules(teacher, c, None, dtype), images, c)
        np.save(os.path.join(out, name), f.astype(np.float32))
    print(f"wrote {out}: model.bin ({os.path.getsize(os.path.join(out, 'model.bin'))} bytes), images.bin (4 images), "
          f"features.npy (torch float64), features_f32.npy (torch float32, for the tolerance)")
    args.model, args.images, args.official = os.path.join(out, "model.bin"), os.path.join(out, "images.bin"), None
    if os.path.exists(os.path.join(ROOT, "dino")):
        return cmd_check(args)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("to-torch", "from-torch", "check", "fixture"):
        s = sub.add_parser(name)
        if name != "fixture":
            s.add_argument("model" if name != "from-torch" else "pth")
        if name in ("to-torch", "from-torch"):
            s.add_argument("output")
        s.add_argument("--heads", type=int, default=0, help="attention heads (from-torch; default D / 64)")
        s.add_argument("--mean", type=float, nargs=3, default=IMAGENET_MEAN, help="pixel mean (from-torch)")
        s.add_argument("--std", type=float, nargs=3, default=IMAGENET_STD, help="pixel std (from-torch)")
        s.add_argument("--head_hidden", type=int, default=0, help="size of a fresh head (from-torch, when none)")
        s.add_argument("--bottleneck", type=int, default=0)
        s.add_argument("--out_dim", type=int, default=0)
        s.add_argument("--images", default=os.path.join(HERE, "interop", "images.bin"),
                       help="CIFAR-format .bin the features are compared on (check)")
        s.add_argument("--official", default=None, help="a clone of facebookresearch/dino: load into its modules (check)")
    args = p.parse_args()
    if args.cmd == "to-torch":
        torch.save(to_torch(read_dino(args.model)), args.output)
        print(f"wrote {args.output}: 'teacher', 'student' (official names), 'dino_loss', 'dino_c'")
    elif args.cmd == "from-torch":
        obj = torch.load(args.pth, map_location="cpu")
        write_dino(args.output, from_torch(obj, args, args.pth))
        print(f"wrote {args.output}")
    else:
        ok = cmd_check(args) if args.cmd == "check" else cmd_fixture(args)
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
