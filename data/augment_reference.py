#!/usr/bin/python3
"""torchvision reference for dino.c's multi-crop augmentation: writes data/augment_reference.bin
(the layout of data/reference.bin, see data/REFERENCE_FORMAT.md, which also lists the names).

Run with Debian's torch and torchvision:
    /usr/bin/python3 data/augment_reference.py          (writes the file)
    /usr/bin/python3 data/augment_reference.py --check  (only reads it back)

The official pipeline (facebookresearch/dino main_dino.py DataAugmentationDINO) draws its
random numbers inside each transform. Here every operation is applied with FIXED draws,
through torchvision.transforms.functional on float tensors in [0, 1] (torchvision's
documented behaviour for tensors), in float64; the test then applies dino.c's operations
with the same draws and compares. torchvision is used only to make this file.

Float against PIL's uint8 pipeline: the official transforms run on uint8 PIL images, which
round every result to a multiple of 1/255 and clip it to [0, 255]. dino.c works in float and
does not round; where the two differ by more than that rounding, the comments say so, and
the script prints how far PIL's own results lie from the stored ones.
"""
import math
import os
import sys

import numpy as np
import torch
import torch.nn.functional as TF
import torchvision.transforms.functional as F
import torchvision.transforms.functional_tensor as F_t
from PIL import Image
from torchvision.transforms import InterpolationMode

from reference import print_reference, read_reference, write_reference   # data/reference.py: the same file layout

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "augment_reference.bin")
S = 32                                          # the test images are 3 x 32 x 32
MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)   # CIFAR-10's, for normalize
THRESHOLD = 128 / 255   # ImageOps.solarize's 128 on uint8: x >= 128 exactly when x/255 >= 128/255
                        # (a float threshold of 0.5 would also invert the values of [0.5, 128/255))


def f32(v):
    """A draw as dino.c holds it: a float32 value."""
    return float(np.float32(v))


def make_images():
    """Two 3 x 32 x 32 uint8 images in which every operation shows: colour gradients, a
    saturated disc, black and white regions (what a bicubic overshoot is clipped at), grey
    pixels (no hue), pixels whose two largest channels tie (hue's branches), a grey of
    exactly 128 (solarisation's threshold) and one-pixel texture (what antialiasing is for)."""
    y, x = np.mgrid[0:S, 0:S]
    a = np.stack([40 + 6 * x, 30 + 5 * y, 120 + 3 * (x - y)]).astype(np.float64)
    def paint(img, mask, rgb):
        for c in range(3):
            img[c][mask] = rgb[c]
    paint(a, (x - 20) ** 2 + (y - 12) ** 2 < 49, (250, 30, 40))
    paint(a, (y >= 20) & (y < 28) & (x >= 3) & (x < 11), (0, 0, 0))
    paint(a, (y >= 2) & (y < 4), (255, 255, 255))
    paint(a, (y >= 8) & (y < 16) & (x < 6), (128, 128, 128))
    checker = (y >= 22) & (x >= 16) & ((x + y) % 2 == 0)
    paint(a, (y >= 22) & (x >= 16), (20, 90, 200))
    paint(a, checker, (200, 200, 60))
    # image 1: hashed noise under diagonal stripes of pure and tied colours
    b = np.stack([((x * 73856093) ^ (y * 19349663) ^ ((c + 1) * 83492791)) % 256 for c in range(3)]).astype(np.float64)
    stripe = (x + y) // 4
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (127, 128, 255), (0, 0, 0)]
    for k, rgb in enumerate(colours):
        paint(b, ((x + y) % 4 == 0) & (stripe % len(colours) == k), rgb)
    paint(b, (y >= 24) & (x < 8), (128, 127, 128))
    return [np.clip(img, 0, 255).astype(np.uint8) for img in (a, b)]


# ------------------------------ the operations --------------------------------

def rgb_to_grayscale_pil(img, num_output_channels=1):
    """torchvision's rgb_to_grayscale for tensors weighs red 0.2989; PIL's convert("L"),
    which the official pipeline's RandomGrayscale, contrast and saturation use, weighs it
    0.299 (ITU-R 601-2: 299/1000, 587/1000, 114/1000), as dino.c does. Put in place of
    torchvision's below, so that F.rgb_to_grayscale, F.adjust_contrast and
    F.adjust_saturation use PIL's weights (the two differ by at most 1e-4, 0.03/255)."""
    r, g, b = img.unbind(dim=-3)
    grey = (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(dim=-3)
    return grey.expand(img.shape) if num_output_channels == 3 else grey


F_t.rgb_to_grayscale = rgb_to_grayscale_pil


def resized_crop(img, top, left, h, w, s):
    """transforms.RandomResizedCrop(..., interpolation=Image.BICUBIC) once its box is drawn:
    F.resized_crop cuts the box first (so the filter never reads outside it), then resizes it
    to s x s. PIL's bicubic resize is torch's antialiased bicubic (cubic a = -0.5, the
    support widened by the scale when shrinking, the weights normalised per output pixel):
    a horizontal pass, then a vertical one. PIL keeps the horizontal pass in uint8, so it is
    clipped to [0, 1] before the vertical pass, as the result is; a pass that keeps a size
    is the identity, so two calls of interpolate are the two passes."""
    x = F.crop(img, top, left, h, w)[None]
    x = TF.interpolate(x, size=(h, s), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    x = TF.interpolate(x, size=(s, s), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)
    return x[0]


JITTER = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]


def color_jitter(x, order, factors):
    """ColorJitter.forward with its draws given: fn_idx = order (torch.randperm(4)), then
    brightness, contrast, saturation, hue factors. Each op clamps to [0, 1] (hue: through HSV).
    PIL differs beyond rounding in two places: ImageEnhance.Contrast blends with the grey
    mean rounded to a whole 1/255, and PIL's hue shift works on 8-bit HSV."""
    for i in order:
        x = JITTER[i](x, factors[i])
    return x


def blur_radius(sigma):
    """dino.c's kernel radius: ceil(3 sigma) in float32, at least 1."""
    return max(1, math.ceil(np.float32(3.0) * np.float32(sigma)))


def gaussian_blur(x, sigma):
    """F.gaussian_blur with kernel 2 rad + 1: torchvision's kernel (exp(-i^2 / 2 sigma^2) for
    i = -rad..rad, normalised), 'reflect' padding (the edge pixel not repeated). The
    official utils.GaussianBlur is PIL's ImageFilter.GaussianBlur(radius=sigma), a box-blur
    approximation of it; dino.c keeps the true Gaussian."""
    k = 2 * blur_radius(sigma) + 1
    return F.gaussian_blur(x, [k, k], [sigma, sigma])


def gaussian_blur_wide(x, sigma):
    """The same blur for a kernel wider than the image, which torch's reflect padding
    refuses: numpy's reflect padding reflects again and again, as dino.c does."""
    rad = blur_radius(sigma)
    i = np.arange(-rad, rad + 1, dtype=np.float64)
    k = np.exp(-0.5 * (i / sigma) ** 2)
    k /= k.sum()                                  # torchvision's _get_gaussian_kernel1d
    p = np.pad(x.numpy(), ((0, 0), (rad, rad), (rad, rad)), mode="reflect")
    n = x.shape[-1]
    rows = sum(k[i] * p[:, :, i:i + n] for i in range(2 * rad + 1))             # along x
    return torch.from_numpy(sum(k[i] * rows[:, i:i + n, :] for i in range(2 * rad + 1)))  # along y


def pipeline(u8, d, dtype):
    """DataAugmentationDINO's transform of one crop with its draws given, in the official
    order: RandomResizedCrop, flip, colour jitter, grayscale, blur, solarisation, normalize."""
    x = resized_crop(torch.from_numpy(u8).to(dtype) / 255, d["top"], d["left"], d["h"], d["w"], d["size"])
    if d["flip"]:
        x = F.hflip(x)
    if d["jitter"]:
        x = color_jitter(x, d["order"], d["factors"])
    if d["gray"]:
        x = F.rgb_to_grayscale(x, num_output_channels=3)
    if d["blur"]:
        x = gaussian_blur(x, d["sigma"])
    if d["solarize"]:
        x = F.solarize(x, THRESHOLD)
    return F.normalize(x, MEAN, STD)


def draws_vector(d):
    """The draws as the file stores them (dino.c's CropDraws, field by field)."""
    return np.array([d["top"], d["left"], d["h"], d["w"], d["flip"], d["jitter"], *d["order"], *d["factors"],
                     d["gray"], d["blur"], d["sigma"], d["solarize"]], dtype=np.float64)


# ------------------------------ the fixed draws -------------------------------

CROPS = {   # name: (image, top, left, h, w, output size)
    "crop_up": (0, 5, 3, 20, 24, 32),      # a global crop: 20 x 24 up to 32 x 32
    "crop_down": (1, 2, 7, 24, 20, 16),    # shrinking both ways (by 1.5 and 1.25): antialiased
    "crop_local": (0, 10, 12, 9, 11, 16),  # a local crop: 9 x 11 up to 16 x 16
    "crop_shrink": (1, 0, 0, 32, 32, 12),  # the whole image down to 12: the widest support
}
FACTORS = {"brightness": (0, 1.27), "contrast": (1, 0.66), "saturation": (2, 1.18),   # name: (op, factor)
           "hue_pos": (3, 0.083), "hue_neg": (3, -0.061)}
JITTER_ORDER, JITTER_FACTORS = (3, 0, 2, 1), (1.33, 0.63, 1.19, 0.091)   # hue first, contrast last
BLURS = {   # name: (input, sigma); rad = ceil(3 sigma)
    "blur_small": ("jitter_in", 0.23),     # a global crop's sigma at 32 px: rad 1
    "blur_mid": ("crop_down", 1.3),        # rad 4 on 16 px
    "blur_large": ("jitter_in", 2.0),      # rad 6 on 32 px (the official sigma range's end)
    "blur_wide": ("tiny", 1.9),            # rad 6 on 4 px: the kernel is wider than the image
}
PIPES = {   # one global crop 2 (every operation on but grayscale) and one local crop (grayscale on)
    "pipe_global": dict(image=0, top=3, left=5, h=22, w=19, size=32, flip=1, jitter=1, order=(2, 3, 0, 1),
                        factors=(1.31, 0.67, 1.17, -0.083), gray=0, blur=1, sigma=0.23, solarize=1),
    "pipe_local": dict(image=1, top=9, left=4, h=13, w=15, size=16, flip=0, jitter=1, order=(1, 0, 3, 2),
                       factors=(0.74, 1.36, 0.85, 0.052), gray=1, blur=1, sigma=0.31, solarize=0),
}


def make_inputs(images):
    """The float inputs of the operations after the crop: float32 values, as dino.c gets them
    (a crop's output, a corner of image 1, the jitter's output), the same for both runs."""
    crop = lambda name: resized_crop(torch.from_numpy(images[CROPS[name][0]]).double() / 255, *CROPS[name][1:])
    as_f32 = lambda t: torch.from_numpy(np.float32(t.numpy())).double()
    inputs = {"jitter_in": as_f32(crop("crop_up")), "crop_down": as_f32(crop("crop_down")),
              "tiny": as_f32(torch.from_numpy(images[1][:, 10:14, 20:24] / 255))}
    inputs["solarize_in"] = as_f32(color_jitter(inputs["jitter_in"], JITTER_ORDER, [f32(v) for v in JITTER_FACTORS]))
    return inputs


def compute(images, inputs, dtype):
    """Every stored output, computed in dtype from the same inputs."""
    out, inputs = {}, {k: v.to(dtype) for k, v in inputs.items()}
    for name, (i, top, left, h, w, s) in CROPS.items():
        out[name + ".out"] = resized_crop(torch.from_numpy(images[i]).to(dtype) / 255, top, left, h, w, s)
    x = inputs["jitter_in"]
    out["hflip.out"] = F.hflip(x)
    for name, (op, v) in FACTORS.items():
        out[name + ".out"] = JITTER[op](x, f32(v))
    out["jitter.out"] = color_jitter(x, JITTER_ORDER, [f32(v) for v in JITTER_FACTORS])
    out["gray.out"] = F.rgb_to_grayscale(x, num_output_channels=3)
    for name, (src, sigma) in BLURS.items():
        blur = gaussian_blur_wide if name == "blur_wide" else gaussian_blur
        out[name + ".out"] = blur(inputs[src], f32(sigma))
    # the numpy blur is torchvision's where torch can do it (its kernel is float32: 1e-7 apart)
    assert (gaussian_blur_wide(inputs["crop_down"], f32(1.3)) - out["blur_mid.out"]).abs().max() < 1e-6
    out["solarize.out"] = F.solarize(inputs["solarize_in"], THRESHOLD)
    out["normalize.out"] = F.normalize(x, MEAN, STD)
    for name, d in PIPES.items():
        d = dict(d, factors=[f32(v) for v in d["factors"]], sigma=f32(d["sigma"]))
        out[name + ".out"] = pipeline(images[d["image"]], d, dtype)
    return out


def pil_deviations(images, truth):
    """How far the official uint8 PIL transforms lie from the stored float results, in 1/255."""
    pil = [Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0))) for im in images]
    to_float = lambda p: np.asarray(p, dtype=np.float64).transpose(2, 0, 1) / 255
    dev = {}
    for name, (i, top, left, h, w, s) in CROPS.items():
        p = F.resized_crop(pil[i], top, left, h, w, [s, s], InterpolationMode.BICUBIC)
        dev[name] = np.abs(to_float(p) - truth[name + ".out"].numpy()).max() * 255
        # PIL rounds the horizontal pass and the result to uint8: at most about one step apart
        assert dev[name] <= 1.5, f"{name}: PIL's bicubic is {dev[name]:.2f}/255 from the stored resize"
    i, top, left, h, w, s = CROPS["crop_up"]
    src = F.resized_crop(pil[i], top, left, h, w, [s, s], InterpolationMode.BICUBIC)
    x = torch.from_numpy(to_float(src))
    for name, (op, v) in FACTORS.items():   # each on the PIL crop against the same in float
        dev[name] = np.abs(to_float(JITTER[op](src, f32(v))) - JITTER[op](x, f32(v)).numpy()).max() * 255
    return dev


def main():
    if "--check" in sys.argv:
        ref = read_reference(OUT)
        print(f"{OUT}: {len(ref)} tensors")
        print_reference(ref)
        return
    torch.set_num_threads(1)
    images = make_images()
    inputs = make_inputs(images)
    truth = compute(images, inputs, torch.float64)
    f32_run = compute(images, inputs, torch.float32)   # torch's own float32 deviation, printed

    T = {"aug.image0": images[0], "aug.image1": images[1]}
    for name, (i, top, left, h, w, s) in CROPS.items():
        T[f"aug.{name}.image"], T[f"aug.{name}.box"], T[f"aug.{name}.size"] = i, [top, left, h, w], s
        T[f"aug.{name}.out"] = truth[name + ".out"]
    T["aug.jitter_in"] = inputs["jitter_in"]
    T["aug.hflip.out"] = truth["hflip.out"]
    for name, (op, v) in FACTORS.items():
        T[f"aug.{name}.factor"], T[f"aug.{name}.out"] = f32(v), truth[name + ".out"]
    T["aug.jitter.order"], T["aug.jitter.factors"] = JITTER_ORDER, JITTER_FACTORS
    T["aug.jitter.out"] = truth["jitter.out"]
    T["aug.gray.out"] = truth["gray.out"]
    for name, (src, sigma) in BLURS.items():
        T[f"aug.{name}.sigma"], T[f"aug.{name}.kernel"] = f32(sigma), 2 * blur_radius(f32(sigma)) + 1
        T[f"aug.{name}.in"], T[f"aug.{name}.out"] = inputs[src], truth[name + ".out"]
    T["aug.solarize.threshold"], T["aug.solarize.in"] = THRESHOLD, inputs["solarize_in"]
    T["aug.solarize.out"] = truth["solarize.out"]
    T["aug.normalize.mean"], T["aug.normalize.std"], T["aug.normalize.out"] = MEAN, STD, truth["normalize.out"]
    for name, d in PIPES.items():
        d = dict(d, factors=[f32(v) for v in d["factors"]], sigma=f32(d["sigma"]))
        T[f"aug.{name}.image"], T[f"aug.{name}.size"] = d["image"], d["size"]
        T[f"aug.{name}.draws"], T[f"aug.{name}.out"] = draws_vector(d), truth[name + ".out"]
    T = {k: (v.numpy() if torch.is_tensor(v) else np.asarray(v)) for k, v in T.items()}
    write_reference(OUT, T)

    back = read_reference(OUT)   # the file reads back to exactly what was meant
    assert list(back) == list(T)
    for k in T:
        assert back[k].shape == T[k].shape and np.array_equal(back[k], T[k].astype(np.float32)), k
    dev = pil_deviations(images, truth)
    print("  %-18s %14s %16s" % ("output", "torch f32 noise", "PIL uint8, 1/255"))
    for k in truth:
        noise = (f32_run[k].double() - truth[k]).abs().max().item()
        name = k[:-4]
        print("  %-18s %14.2e %16s" % (name, noise, f"{dev[name]:.2f}" if name in dev else ""))
    print(f"wrote {OUT}: {len(T)} tensors, {os.path.getsize(OUT)} bytes, round trip OK")


if __name__ == "__main__":
    main()
