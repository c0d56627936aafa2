#!/usr/bin/python3
"""Reference for the tests: Hugging Face Qwen2VLImageProcessor's (slow path) steps, written with
PIL + numpy only (transformers is not installed here). Follows HF's semantics:
  convert("RGB") -> smart_resize -> PIL resize BICUBIC (reducing_gap=None)
  -> rescale: uint8.astype(float64) * rescale_factor, .astype(float32)
  -> normalize: (x - float32(mean)) / float32(std) in float32 (channels last)
  -> CHW, frame repeated to temporal_patch_size
  -> reshape (gt, tp, C, gh/m, m, p, gw/m, m, p), transpose (0,3,6,4,7,2,1,5,8), flatten.

Usage: hf_qwen2vl_preprocess.py INPUT OUT.f32 [--raw W H] [--size W H] [--min-pixels N] [--max-pixels N]
  INPUT: an image file, or raw RGB bytes with --raw W H.
  --size W H: resize to exactly this (already a multiple of 28); otherwise smart_resize.
Writes float32 little-endian patches to OUT.f32 and prints a JSON line with grid_thw and shape.
"""
import argparse
import json
import math
import sys

import numpy as np
from PIL import Image

MEAN = [0.48145466, 0.4578275, 0.40821073]
STD = [0.26862954, 0.26130258, 0.27577711]
RESCALE = 0.00392156862745098
PATCH, MERGE, TEMPORAL = 14, 2, 2


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    if max(height, width) / min(height, width) > 200:
        raise ValueError("absolute aspect ratio must be smaller than 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("input")
    ap.add_argument("out")
    ap.add_argument("--raw", nargs=2, type=int)
    ap.add_argument("--size", nargs=2, type=int)
    # Qwen2-VL / UI-TARS preprocessor_config.json values
    ap.add_argument("--min-pixels", type=int, default=3136)
    ap.add_argument("--max-pixels", type=int, default=12845056)
    a = ap.parse_args()

    if a.raw:
        with open(a.input, "rb") as f:
            img = Image.frombytes("RGB", tuple(a.raw), f.read())
    else:
        img = Image.open(a.input)
    if img.mode != "RGB":
        img = img.convert("RGB")
    arr = np.array(img)  # HWC uint8
    height, width = arr.shape[:2]
    if a.size:
        rw, rh = a.size
    else:
        rh, rw = smart_resize(height, width, PATCH * MERGE, a.min_pixels, a.max_pixels)

    # resize: numpy uint8 -> PIL -> resize -> numpy (HF always calls it, even for the same size)
    resized = np.array(Image.fromarray(arr).resize((rw, rh), resample=Image.BICUBIC, reducing_gap=None))
    # rescale
    x = (resized.astype(np.float64) * RESCALE).astype(np.float32)
    # normalize
    mean = np.array(MEAN, dtype=x.dtype)
    std = np.array(STD, dtype=x.dtype)
    x = (x - mean) / std
    assert x.dtype == np.float32
    x = x.transpose(2, 0, 1)  # CHW

    patches = np.array([x])
    if patches.shape[0] % TEMPORAL != 0:
        rep = np.repeat(patches[-1][np.newaxis], TEMPORAL - patches.shape[0] % TEMPORAL, axis=0)
        patches = np.concatenate([patches, rep], axis=0)
    c = patches.shape[1]
    gt = patches.shape[0] // TEMPORAL
    gh, gw = rh // PATCH, rw // PATCH
    patches = patches.reshape(gt, TEMPORAL, c, gh // MERGE, MERGE, PATCH, gw // MERGE, MERGE, PATCH)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(gt * gh * gw, c * TEMPORAL * PATCH * PATCH)
    flat.astype("<f4").tofile(a.out)
    print(json.dumps({"grid_thw": [gt, gh, gw], "shape": list(flat.shape), "resized": [rw, rh]}))


if __name__ == "__main__":
    sys.exit(main())
