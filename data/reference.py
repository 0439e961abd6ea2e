#!/usr/bin/python3
"""PyTorch reference for dino.c: writes data/reference.bin (format: data/REFERENCE_FORMAT.md).

Run with Debian's torch:   /usr/bin/python3 data/reference.py          (writes the file)
                           /usr/bin/python3 data/reference.py --check  (only reads it back)

The network, loss and training step follow facebookresearch/dino (vision_transformer.py,
utils.py, main_dino.py) with the same module structure and parameter names, rewritten
here at toy size.  Everything is computed twice: in float64 (the stored truth) and in
float32 (to measure how far plain float32 arithmetic drifts: the `noise.*` entries).
"""
import math
import os
import struct
import sys
from functools import partial

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CFG = dict(img_size=16, channels=3, patch=4, local_size=8, dim=24, depth=2, heads=3,
           mlp_ratio=4, head_hidden=32, bottleneck=16, K=32, n_local=2, ncrops=4, batch=2,
           student_temp=0.1, center_momentum=0.9, warmup_teacher_temp=0.04, teacher_temp=0.07,
           warmup_teacher_temp_epochs=3, epochs=4, niter_per_epoch=3, nsteps=7,
           base_lr=0.128, lr=0.128 * 2 / 256, min_lr=1e-6, warmup_epochs=1,
           weight_decay=0.04, weight_decay_end=0.4, momentum_teacher=0.9,
           clip_grad=0.06, freeze_last_layer=1, drop_path=0.0)
DP_RATE = 0.2          # drop-path rate of the separate drop-path check (dp.*)
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "reference.bin")

# =========================== vision_transformer.py ===========================

def drop_path(x, drop_prob=0., training=False):
    """Stochastic depth: zero whole rows (samples) of a residual branch, rescale the rest."""
    if drop_prob == 0. or not training:
        return x
    keep_prob = 1 - drop_prob
    keep = (keep_prob + torch.rand((x.shape[0],) + (1,) * (x.ndim - 1),
                                   dtype=x.dtype, device=x.device)).floor()  # 1 w.p. keep_prob
    return x.div(keep_prob) * keep


class DropPath(nn.Module):
    def __init__(self, drop_prob=None):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        # looks up the module-level name at call time, so the check below can swap it
        return drop_path(x, self.drop_prob, self.training)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()                      # exact erf form
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))   # (dropout p=0 omitted)


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        # qkv features are laid out [3][heads][head_dim]  ->  (3, B, heads, N, head_dim)
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        x = (attn @ v).transpose(1, 2).reshape(B, N, C)   # heads concatenated per token
        return self.proj(x), attn


class Block(nn.Module):
    """Pre-norm transformer block: x += attn(LN1 x); x += mlp(LN2 x)."""
    def __init__(self, dim, num_heads, mlp_ratio, qkv_bias, drop_path, norm_layer):
        super().__init__()
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x):
        y, _ = self.attn(self.norm1(x))
        x = x + self.drop_path(y)                              # branch 0 (attn)
        return x + self.drop_path(self.mlp(self.norm2(x)))     # branch 1 (mlp)


class PatchEmbed(nn.Module):
    """Conv with kernel = stride = patch: one linear map per non-overlapping patch."""
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_size = patch_size
        self.num_patches = (img_size // patch_size) ** 2
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)    # (B, grid*grid, D), row-major grid


class VisionTransformer(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim, depth, num_heads, mlp_ratio,
                 qkv_bias=True, drop_path_rate=0., norm_layer=partial(nn.LayerNorm, eps=1e-6)):
        super().__init__()
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        # rates rise linearly over depth; like the original these are float32 values
        # (0.2 -> 0.20000000298...), a 4e-9 relative difference, far below float32 noise
        rates = [r.item() for r in torch.linspace(0, drop_path_rate, depth)]
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias, rates[i], norm_layer)
                                     for i in range(depth)])
        self.norm = norm_layer(embed_dim)
        self.head = nn.Identity()                 # num_classes = 0
        nn.init.trunc_normal_(self.pos_embed, std=.02)
        nn.init.trunc_normal_(self.cls_token, std=.02)
        # Linear: trunc-normal weights, zero bias; LayerNorm 1/0.  The patch Conv2d is not
        # a Linear, so (as in the original) it keeps PyTorch's default conv init.
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def interpolate_pos_encoding(self, x, w, h):
        """Resize the patch part of the position table bicubically to the crop's grid.
        Like the original, the scale factor is (grid + 0.1) / sqrt(N) and PyTorch maps
        output pixel i to input coordinate (i + 0.5) / scale - 0.5 with THAT factor
        (align_corners=False), not with target/source size."""
        npatch, N = x.shape[1] - 1, self.pos_embed.shape[1] - 1
        if npatch == N and w == h:
            return self.pos_embed
        cls_pos, patch_pos = self.pos_embed[:, 0], self.pos_embed[:, 1:]
        dim, side = x.shape[-1], int(math.sqrt(N))
        w0 = w // self.patch_embed.patch_size + 0.1
        h0 = h // self.patch_embed.patch_size + 0.1
        patch_pos = F.interpolate(patch_pos.reshape(1, side, side, dim).permute(0, 3, 1, 2),
                                  scale_factor=(w0 / math.sqrt(N), h0 / math.sqrt(N)), mode='bicubic')
        assert int(w0) == patch_pos.shape[-2] and int(h0) == patch_pos.shape[-1]
        patch_pos = patch_pos.permute(0, 2, 3, 1).view(1, -1, dim)
        return torch.cat((cls_pos.unsqueeze(0), patch_pos), dim=1)

    def prepare_tokens(self, x):
        B, _, w, h = x.shape
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(B, -1, -1), x), dim=1)   # CLS first
        return x + self.interpolate_pos_encoding(x, w, h)

    def forward(self, x):
        x = self.prepare_tokens(x)
        for blk in self.blocks:
            x = blk(x)
        return self.norm(x)[:, 0]                  # CLS token after the final norm


class DINOHead(nn.Module):
    """MLP -> L2 normalise -> weight-normalised Linear without bias (g fixed at 1)."""
    def __init__(self, in_dim, out_dim, nlayers=3, hidden_dim=2048, bottleneck_dim=256):
        super().__init__()
        layers = [nn.Linear(in_dim, hidden_dim), nn.GELU()]
        for _ in range(nlayers - 2):
            layers += [nn.Linear(hidden_dim, hidden_dim), nn.GELU()]
        layers.append(nn.Linear(hidden_dim, bottleneck_dim))
        self.mlp = nn.Sequential(*layers)
        self.apply(self._init_weights)             # before last_layer exists: it keeps the
        self.last_layer = nn.utils.weight_norm(    # default Linear init (kaiming uniform)
            nn.Linear(bottleneck_dim, out_dim, bias=False))
        self.last_layer.weight_g.data.fill_(1)     # norm_last_layer=True: g = 1, frozen
        self.last_layer.weight_g.requires_grad = False

    @staticmethod
    def _init_weights(m):
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward(self, x):
        x = F.normalize(self.mlp(x), dim=-1, p=2)
        return self.last_layer(x)


# ================================= utils.py ==================================

class MultiCropWrapper(nn.Module):
    """Backbone once per run of consecutive same-resolution crops, head once on all."""
    def __init__(self, backbone, head):
        super().__init__()
        self.backbone, self.head = backbone, head
        self.features = None                       # (reference only) last backbone output

    def forward(self, x):
        sizes = torch.tensor([inp.shape[-1] for inp in x])
        ends = torch.cumsum(torch.unique_consecutive(sizes, return_counts=True)[1], 0).tolist()
        outs, start = [], 0
        for end in ends:
            outs.append(self.backbone(torch.cat(x[start:end])))
            start = end
        self.features = torch.cat(outs)            # crop-major rows
        return self.head(self.features)


def cosine_scheduler(base_value, final_value, epochs, niter_per_ep, warmup_epochs=0, start_warmup_value=0):
    """Per-iteration values: linear warm-up (np.linspace, endpoint included), then a
    half cosine from base_value to final_value over the remaining iterations."""
    warmup_iters = warmup_epochs * niter_per_ep
    warmup = np.linspace(start_warmup_value, base_value, warmup_iters) if warmup_epochs > 0 else np.array([])
    iters = np.arange(epochs * niter_per_ep - warmup_iters)
    cosine = final_value + 0.5 * (base_value - final_value) * (1 + np.cos(np.pi * iters / len(iters)))
    return np.concatenate((warmup, cosine))


def clip_gradients(model, clip):
    """Per-tensor clipping; returns (name, norm, clipped) for every tensor with a grad."""
    report = []
    for name, p in model.named_parameters():
        if p.grad is not None:
            norm = p.grad.data.norm(2)
            coef = clip / (norm + 1e-6)
            if coef < 1:
                p.grad.data.mul_(coef)
            report.append((name, norm.item(), bool(coef < 1)))
    return report


def cancel_gradients_last_layer(epoch, model, freeze_last_layer):
    """During the first epochs drop last-layer grads: AdamW then skips those tensors
    entirely (no moments, no weight decay, their step counter starts later)."""
    if epoch >= freeze_last_layer:
        return
    for n, p in model.named_parameters():
        if "last_layer" in n:
            p.grad = None


def get_params_groups(model):
    """Group 0 gets weight decay; biases and 1-D tensors (LayerNorm) go to group 1 (wd 0)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:                    # the frozen weight_g
            continue
        (no_decay if name.endswith(".bias") or p.ndim == 1 else decay).append(p)
    return [{'params': decay}, {'params': no_decay, 'weight_decay': 0.}]


# =============================== main_dino.py ================================

class DINOLoss(nn.Module):
    def __init__(self, out_dim, ncrops, warmup_teacher_temp, teacher_temp,
                 warmup_teacher_temp_epochs, nepochs, student_temp=0.1, center_momentum=0.9):
        super().__init__()
        self.student_temp, self.center_momentum, self.ncrops = student_temp, center_momentum, ncrops
        self.register_buffer("center", torch.zeros(1, out_dim))
        self.teacher_temp_schedule = np.concatenate((      # per EPOCH
            np.linspace(warmup_teacher_temp, teacher_temp, warmup_teacher_temp_epochs),
            np.ones(nepochs - warmup_teacher_temp_epochs) * teacher_temp))

    def forward(self, student_output, teacher_output, epoch):
        student_out = (student_output / self.student_temp).chunk(self.ncrops)
        temp = self.teacher_temp_schedule[epoch]
        teacher_out = F.softmax((teacher_output - self.center) / temp, dim=-1).detach().chunk(2)
        total, n_terms = 0, 0
        for iq, q in enumerate(teacher_out):              # teacher: the 2 global crops
            for v in range(len(student_out)):             # student: every crop but the same one
                if v == iq:
                    continue
                total += torch.sum(-q * F.log_softmax(student_out[v], dim=-1), dim=-1).mean()
                n_terms += 1
        total /= n_terms
        self.update_center(teacher_output)                # after the loss used the old center
        return total

    @torch.no_grad()
    def update_center(self, teacher_output):
        batch_center = teacher_output.sum(dim=0, keepdim=True) / len(teacher_output)  # 1 process
        self.center = self.center * self.center_momentum + batch_center * (1 - self.center_momentum)


# ============================ reference generation ===========================

def build_student(drop_path_rate=0.):
    c = CFG
    vit = VisionTransformer(c['img_size'], c['patch'], c['channels'], c['dim'], c['depth'],
                            c['heads'], c['mlp_ratio'], qkv_bias=True, drop_path_rate=drop_path_rate)
    head = DINOHead(c['dim'], c['K'], nlayers=3, hidden_dim=c['head_hidden'], bottleneck_dim=c['bottleneck'])
    return MultiCropWrapper(vit, head)


def initial_state():
    """Official init (seed 0), then 0.05*randn on every 1-D parameter so that no bias
    is 0 and no LayerNorm weight is exactly 1 (those would hide bugs)."""
    torch.manual_seed(0)
    model = build_student()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 1 and not name.endswith("weight_g"):
                p.add_(0.05 * torch.randn(p.shape))
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def make_inputs():
    """Fixed float32 crops per step and the drop-path keep masks."""
    c, B = CFG, CFG['batch']
    g = torch.Generator().manual_seed(1)
    crops = [(torch.randn(2 * B, c['channels'], c['img_size'], c['img_size'], generator=g),
              torch.randn(c['n_local'] * B, c['channels'], c['local_size'], c['local_size'], generator=g))
             for _ in range(c['nsteps'])]
    # mask[block, branch, row]; block 0 has rate 0 (Identity) so its rows are all kept.
    # Every call of block 1 (one per branch and backbone group) drops >= 1 row and keeps >= 1.
    g = torch.Generator().manual_seed(2)
    rows, groups = c['ncrops'] * B, [(0, 2 * B), (2 * B, c['ncrops'] * B)]
    while True:
        mask = (1 - DP_RATE + torch.rand(c['depth'], 2, rows, generator=g)).floor()
        mask[0] = 1
        calls = [mask[1, br, a:b] for br in range(2) for a, b in groups]
        if all(0 < m.sum() < len(m) for m in calls):
            return crops, mask


def split_crops(glob, loc, dtype):
    B = CFG['batch']
    return list(glob.to(dtype).split(B)) + list(loc.to(dtype).split(B))   # [g1, g2, l1, l2]


def trainable_grads(model, prefix):
    return {prefix + n: p.grad.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def fresh_model(init, dtype, drop_path_rate=0.):
    model = build_student(drop_path_rate)
    model.load_state_dict(init)
    return model.to(dtype)


def new_loss(dtype):
    c = CFG
    return DINOLoss(c['K'], c['ncrops'], c['warmup_teacher_temp'], c['teacher_temp'],
                    c['warmup_teacher_temp_epochs'], c['epochs'],
                    c['student_temp'], c['center_momentum']).to(dtype)


def train(dtype, init, crops, verbose):
    """The nsteps training steps of train_one_epoch in one dtype.  Returns {key: tensor}."""
    c, out = CFG, {}
    student, teacher = fresh_model(init, dtype), fresh_model(init, dtype)   # exact copies
    for p in teacher.parameters():
        p.requires_grad = False
    with torch.no_grad():                        # the position table resized for a local crop
        probe = torch.zeros(1, 1 + (c['local_size'] // c['patch']) ** 2, c['dim'], dtype=dtype)
        out['step0.pos_embed_local'] = student.backbone.interpolate_pos_encoding(
            probe, c['local_size'], c['local_size']).clone()
    dino_loss = new_loss(dtype)
    optimizer = torch.optim.AdamW(get_params_groups(student))   # default betas/eps
    lr_s, wd_s, mom_s = schedules()
    for it in range(c['nsteps']):
        epoch = it // c['niter_per_epoch']
        for i, group in enumerate(optimizer.param_groups):
            group['lr'] = lr_s[it]
            if i == 0:                           # only the first group is decayed
                group['weight_decay'] = wd_s[it]
        images = split_crops(*crops[it], dtype)
        teacher_output = teacher(images[:2])     # teacher: 2 global crops only
        student_output = student(images)         # student: all crops
        loss = dino_loss(student_output, teacher_output, epoch)   # also updates the center
        if not math.isfinite(loss.item()):
            sys.exit(f"loss is {loss.item()}, stopping")
        if it == 0:
            out['step0.student_cls'] = student.features.detach().clone()
            out['step0.teacher_cls'] = teacher.features.detach().clone()
            out['step0.student_out'] = student_output.detach().clone()
            out['step0.teacher_out'] = teacher_output.detach().clone()
        optimizer.zero_grad()
        loss.backward()
        if it == 0:
            out.update(trainable_grads(student, 'grad.'))
        clip_report = clip_gradients(student, c['clip_grad'])
        cancel_gradients_last_layer(epoch, student, c['freeze_last_layer'])
        optimizer.step()
        with torch.no_grad():                    # EMA over every parameter, head included
            m = mom_s[it]
            for p_q, p_k in zip(student.parameters(), teacher.parameters()):
                p_k.data.mul_(m).add_((1 - m) * p_q.detach().data)
        out[f'step{it}.loss'] = loss.detach()
        out[f'step{it}.center'] = dino_loss.center.clone()
        if verbose:
            clipped = [n.replace('backbone.', 'b.') for n, _, cl in clip_report if cl]
            margin = min(abs(math.log(norm / c['clip_grad'])) for _, norm, _ in clip_report)
            print(f"step {it} (epoch {epoch}): loss {loss.item():.9f}  |center| "
                  f"{dino_loss.center.norm().item():.6f}  nearest norm/clip e^±{margin:.2f}  "
                  f"clipped {len(clipped)}/{len(clip_report)}: " + ", ".join(clipped))
            if it == 0:
                print(f"  step-0 per-tensor grad norms (* = clipped at clip_grad={c['clip_grad']:g}):")
                for n, norm, cl in clip_report:
                    print(f"    {'*' if cl else ' '} {norm:10.6f}  {n}")
    for n, p in student.named_parameters():
        out['final.student.' + n] = p.detach().clone()
    for n, p in teacher.named_parameters():
        out['final.teacher.' + n] = p.detach().clone()
    return out


def drop_path_check(dtype, init, crops, dp_mask):
    """Step 0 again (initial params, step-0 crops, center 0, epoch 0) with a student of
    drop-path rate DP_RATE whose random masks are replaced by the given ones."""
    global drop_path
    c = CFG
    masks = []                                   # in call order: backbone group, block, branch
    for a, b in [(0, 2 * c['batch']), (2 * c['batch'], c['ncrops'] * c['batch'])]:
        for blk in range(1, c['depth']):         # block 0 has rate 0: Identity, never called
            masks += [dp_mask[blk, br, a:b] for br in range(2)]

    def drop_path_with_given_mask(x, drop_prob=0., training=False):
        if drop_prob == 0. or not training:
            return x
        keep = masks.pop(0).to(x.dtype).reshape((x.shape[0],) + (1,) * (x.ndim - 1))
        return x.div(1 - drop_prob) * keep       # the official formula, mask given

    student, teacher = fresh_model(init, dtype, DP_RATE), fresh_model(init, dtype)
    images = split_crops(*crops[0], dtype)
    original, drop_path = drop_path, drop_path_with_given_mask
    try:
        student_out = student(images)
    finally:
        drop_path = original
    assert not masks, "every given mask must be used exactly once"
    with torch.no_grad():
        teacher_out = teacher(images[:2])        # the teacher never drops
    loss = new_loss(dtype)(student_out, teacher_out, 0)
    loss.backward()
    out = {'dp.student_out': student_out.detach(), 'dp.loss': loss.detach()}
    out.update(trainable_grads(student, 'grad_dp.'))
    return out


def run(dtype, init, crops, dp_mask, verbose):
    """The whole computation in one dtype."""
    out = train(dtype, init, crops, verbose)
    out.update(drop_path_check(dtype, init, crops, dp_mask))
    return out


def schedules():
    c = CFG
    args = (c['epochs'], c['niter_per_epoch'])
    lr = cosine_scheduler(c['base_lr'] * c['batch'] / 256., c['min_lr'], *args, warmup_epochs=c['warmup_epochs'])
    wd = cosine_scheduler(c['weight_decay'], c['weight_decay_end'], *args)
    mom = cosine_scheduler(c['momentum_teacher'], 1, *args)
    return lr, wd, mom


# ------------------------------ file format ----------------------------------

def write_reference(path, tensors):
    with open(path, "wb") as f:
        f.write(b"DINOREF1" + struct.pack("<i", len(tensors)))
        for name, t in tensors.items():
            a = np.asarray(t, dtype="<f4")          # tobytes() below is C order
            f.write(struct.pack("<i", len(name)) + name.encode("ascii"))
            f.write(struct.pack("<i", a.ndim) + struct.pack(f"<{a.ndim}i", *a.shape))
            f.write(a.tobytes())


def read_reference(path):
    with open(path, "rb") as f:
        data = f.read()
    assert data[:8] == b"DINOREF1", "bad magic"
    (count,), pos, out = struct.unpack_from("<i", data, 8), 12, {}
    for _ in range(count):
        (n,) = struct.unpack_from("<i", data, pos)
        name = data[pos + 4:pos + 4 + n].decode("ascii")
        pos += 4 + n
        (ndim,) = struct.unpack_from("<i", data, pos)
        shape = struct.unpack_from(f"<{ndim}i", data, pos + 4)
        pos += 4 + 4 * ndim
        size = int(np.prod(shape))
        out[name] = np.frombuffer(data, "<f4", size, pos).reshape(shape)
        pos += 4 * size
    assert pos == len(data), "trailing bytes"
    return out


def print_reference(ref):
    """One line per tensor of a reference file: its name and shape (the --check listing)."""
    for k, v in ref.items():
        print(f"  {k} {list(v.shape)}")


def check_semantics(ref):
    """Recompute step 0's loss and center from the stored head outputs (numpy, float64)."""
    c = CFG
    s = ref['step0.student_out'].astype(np.float64) / c['student_temp']
    t = ref['step0.teacher_out'].astype(np.float64)
    logp = s - s.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    q = np.exp(t / ref['step0.teacher_temp'])          # center is 0 before step 0
    q /= q.sum(1, keepdims=True)
    B, terms = c['batch'], []
    for iq in range(2):
        for v in range(c['ncrops']):
            if v != iq:
                terms.append(-(q[iq * B:(iq + 1) * B] * logp[v * B:(v + 1) * B]).sum(1).mean())
    assert abs(np.mean(terms) - ref['step0.loss']) < 1e-6, "step0.loss"
    center = (1 - c['center_momentum']) * t.mean(0, keepdims=True)
    assert np.abs(center - ref['step0.center']).max() < 1e-7, "step0.center"


def main():
    if "--check" in sys.argv:
        ref = read_reference(OUT)
        check_semantics(ref)
        print(f"{OUT}: {len(ref)} tensors, step-0 loss and center consistent")
        print_reference(ref)
        return
    torch.set_num_threads(1)
    init = initial_state()
    crops, dp_mask = make_inputs()
    print("== float64 run (stored truth) ==")
    truth = run(torch.float64, init, crops, dp_mask, verbose=True)
    print("== float32 run (noise floor) ==")
    f32 = run(torch.float32, init, crops, dp_mask, verbose=False)

    # assemble the file in a readable order
    T = {f"config.{k}": np.float32(v) for k, v in CFG.items()}
    T.update({f"init.{k}": v for k, v in init.items()})
    lr_s, wd_s, mom_s = schedules()
    temps = new_loss(torch.float64).teacher_temp_schedule
    for s in range(CFG['nsteps']):
        T[f"step{s}.global"], T[f"step{s}.local"] = crops[s]
        T[f"step{s}.lr"], T[f"step{s}.wd"], T[f"step{s}.momentum"] = lr_s[s], wd_s[s], mom_s[s]
        T[f"step{s}.teacher_temp"] = temps[s // CFG['niter_per_epoch']]
    T["dp.rate"], T["dp.mask"] = DP_RATE, dp_mask
    computed = list(truth)                       # step0.*, grad.*, step{s}.*, final.*, dp.*, grad_dp.*
    T.update(truth)
    print("\n  %-46s %12s %12s" % ("noise floor: max|f32 - f64|", "noise", "max|f64|"))
    for k in computed:
        noise = (f32[k].double() - truth[k]).abs().max().item()
        T["noise." + k] = noise
        print("  %-46s %12.3e %12.3e" % (k, noise, truth[k].abs().max().item()))
    T = {k: (v.numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in T.items()}
    write_reference(OUT, T)

    # self-check: the file reads back to exactly what was meant
    back = read_reference(OUT)
    assert list(back) == list(T)
    for k in T:
        assert back[k].shape == T[k].shape and np.array_equal(back[k], T[k].astype(np.float32)), k
    check_semantics(back)
    print(f"\nwrote {OUT}: {len(T)} tensors, round trip OK; losses:",
          " ".join(f"{back[f'step{s}.loss'].item():.6f}" for s in range(CFG['nsteps'])))


if __name__ == "__main__":
    main()
