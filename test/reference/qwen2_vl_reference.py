#!/usr/bin/python3
"""Independent float32 PyTorch reference of Qwen2-VL inference (the parity oracle for the engine).

It reproduces the semantics of Hugging Face transformers' Qwen2-VL stack, written from scratch:
  * Qwen2VLImageProcessor (slow, PIL path)  -> pixel_values [N, C*T*P*P], image_grid_thw
  * Qwen2VLProcessor                        -> each <|image_pad|> expanded to t*h*w/merge^2 copies
  * Qwen2VLModel.get_rope_index             -> M-RoPE position ids [3, seq] and rope_delta
  * Qwen2VisionTransformerPretrainedModel   -> image embeddings (eager attention, cu_seqlens blocks)
  * Qwen2VLForConditionalGeneration         -> logits (eager attention, float32), greedy decode
                                               with a KV cache as HF generate() does it.
Only stdlib + numpy + torch + PIL are used; the safetensors reader is our own.

CLI:  /usr/bin/python3 test/reference/qwen2_vl_reference.py request.json > out.json

request.json:
  checkpoint          HF checkpoint dir (config.json, preprocessor_config.json, generation_config.json,
                      model.safetensors or model.safetensors.index.json + shards; F32/BF16/F16;
                      classic keys model.layers.* / visual.* or newer model.language_model.* /
                      model.visual.*; lm_head tied to embed_tokens when lm_head.weight is absent)
  input_ids           chat-template prompt ids with ONE <|image_pad|> per image (before expansion)
  images              [{path, resized_width?, resized_height?, min_pixels?, max_pixels?}]; paths are
                      opened relative to the current directory; no EXIF rotation (as HF)
  max_new_tokens      default 16; greedy (argmax of raw logits), never stops early unless stop_at_eos
  top_logprobs        default 5
  dump_dir            optional: float32 little-endian .bin files + manifest.json
  dump_hidden_states  optional bool: also dump each decoder layer's output (hidden_layer{i})
  use_cache           default true (KV cache, as HF generate); false = full recompute each step
  stop_at_eos         default false; true stops after an eos id from generation_config.json
  repetition_penalty  default none; HF RepetitionPenaltyLogitsProcessor over prompt+generated ids,
                      applied before argmax and log_softmax

out.json: {expanded_input_ids, position_ids [[t..],[h..],[w..]], rope_delta, image_grid_thw,
           tokens, logprobs, top_logprobs [[[id, logprob], ...] per step], prompt_last_logits_head}
dump_dir/manifest.json: {"dtype": "float32", "endianness": "little", "tensors": {name: {file, shape,
  dtype}}} with pixel_values [N, 1176], vision_patch_embed [N, embed_dim], image_embeds
  [N/4, hidden], inputs_embeds [L, hidden], prompt_logits [L, vocab], step_logits [steps, vocab]
  (the scores each generated token was chosen from), hidden_layer{i} [L, hidden] on request.
"""

import json
import math
import mmap
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

torch.set_grad_enabled(False)

F32 = torch.float32

# ---------------------------------------------------------------------------------------------
# safetensors (own parser)
# ---------------------------------------------------------------------------------------------

_NP_DTYPES = {"F32": "<f4", "F16": "<f2", "BF16": "<u2", "F64": "<f8"}


class SafetensorsFile:
    """One .safetensors file, memory mapped. Header: u64 LE length, JSON, then raw data."""

    def __init__(self, path):
        self.path = path
        self._fh = open(path, "rb")
        (hlen,) = struct.unpack("<Q", self._fh.read(8))
        header = json.loads(self._fh.read(hlen).decode("utf-8"))
        header.pop("__metadata__", None)
        self.entries = header
        self.data_start = 8 + hlen
        self._mm = mmap.mmap(self._fh.fileno(), 0, access=mmap.ACCESS_READ)

    def read_f32(self, name):
        e = self.entries[name]
        dt = e["dtype"]
        if dt not in _NP_DTYPES:
            raise ValueError(f"{self.path}: tensor {name} has unsupported dtype {dt}")
        b0, b1 = e["data_offsets"]
        shape = tuple(e["shape"])
        npdt = np.dtype(_NP_DTYPES[dt])
        count = (b1 - b0) // npdt.itemsize
        raw = np.frombuffer(self._mm, dtype=npdt, count=count, offset=self.data_start + b0)
        if dt == "BF16":
            arr = (raw.astype(np.uint32) << np.uint32(16)).view(np.float32)
        else:
            arr = raw.astype(np.float32)  # copies (F32 too), so the mmap can be closed later
        return torch.from_numpy(np.ascontiguousarray(arr).reshape(shape))


def canonical_name(name):
    """Map the newer layout (model.language_model.*, model.visual.*) onto the classic one."""
    if name.startswith("model.language_model."):
        return "model." + name[len("model.language_model."):]
    if name.startswith("model.visual."):
        return "visual." + name[len("model.visual."):]
    return name


def load_weights(ckpt_dir):
    index_path = os.path.join(ckpt_dir, "model.safetensors.index.json")
    if os.path.exists(index_path):
        with open(index_path) as f:
            wm = json.load(f)["weight_map"]
        files = sorted(set(wm.values()))
    else:
        files = sorted(fn for fn in os.listdir(ckpt_dir) if fn.endswith(".safetensors"))
        if not files:
            raise FileNotFoundError(f"no .safetensors in {ckpt_dir}")
    weights = {}
    for fn in files:
        st = SafetensorsFile(os.path.join(ckpt_dir, fn))
        for name in st.entries:
            cn = canonical_name(name)
            if cn in weights:
                raise ValueError(f"duplicate tensor {cn}")
            weights[cn] = st.read_f32(name)
    return weights


# ---------------------------------------------------------------------------------------------
# config
# ---------------------------------------------------------------------------------------------


class Config:
    def __init__(self, ckpt_dir):
        with open(os.path.join(ckpt_dir, "config.json")) as f:
            c = json.load(f)
        t = dict(c)
        if isinstance(c.get("text_config"), dict):  # newer transformers nest the text part
            t.update(c["text_config"])
        v = c["vision_config"]
        self.raw = c
        # special ids (top level; text_config may repeat them)
        def tok(key, default=None):
            return c.get(key, t.get(key, default))

        self.image_token_id = tok("image_token_id", 151655)
        self.video_token_id = tok("video_token_id", 151656)
        self.vision_start_token_id = tok("vision_start_token_id", 151652)
        self.vision_end_token_id = tok("vision_end_token_id", 151653)
        # text
        self.vocab_size = t["vocab_size"]
        self.hidden_size = t["hidden_size"]
        self.intermediate_size = t["intermediate_size"]
        self.num_layers = t["num_hidden_layers"]
        self.num_heads = t["num_attention_heads"]
        self.num_kv_heads = t.get("num_key_value_heads", self.num_heads)
        # Qwen2VLAttention: head_dim = hidden_size // num_heads (a head_dim key is not consulted)
        self.head_dim = self.hidden_size // self.num_heads
        self.rms_norm_eps = t.get("rms_norm_eps", 1e-6)
        self.hidden_act = t.get("hidden_act", "silu")
        rope = t.get("rope_scaling") or t.get("rope_parameters") or c.get("rope_scaling") or {}
        self.rope_theta = float(t.get("rope_theta", rope.get("rope_theta", 1000000.0)))
        rtype = rope.get("rope_type", rope.get("type", "default"))
        if rtype not in ("default", "mrope"):
            raise ValueError(f"unsupported rope type {rtype}")
        self.mrope_section = list(rope["mrope_section"])
        if sum(self.mrope_section) * 2 != self.head_dim:
            raise ValueError(f"mrope_section {self.mrope_section} does not cover head_dim {self.head_dim}")
        self.tie_word_embeddings = bool(c.get("tie_word_embeddings", t.get("tie_word_embeddings", True)))
        if t.get("use_sliding_window", False):
            print("warning: use_sliding_window=true is ignored (full causal attention)", file=sys.stderr)
        # vision
        self.v_depth = v["depth"]
        self.v_embed_dim = v["embed_dim"]
        self.v_num_heads = v["num_heads"]
        self.v_mlp_ratio = v.get("mlp_ratio", 4)
        self.v_in_channels = v.get("in_channels", v.get("in_chans", 3))
        self.v_out_hidden = v.get("hidden_size", self.hidden_size)
        self.v_patch_size = v.get("patch_size", v.get("spatial_patch_size", 14))
        self.v_merge = v.get("spatial_merge_size", 2)
        self.v_temporal = v.get("temporal_patch_size", 2)
        self.v_hidden_act = v.get("hidden_act", "quick_gelu")


class PreprocessorConfig:
    def __init__(self, ckpt_dir):
        path = os.path.join(ckpt_dir, "preprocessor_config.json")
        p = {}
        if os.path.exists(path):
            with open(path) as f:
                p = json.load(f)
        size = p.get("size") or {}
        # precedence as in HF: explicit min_pixels/max_pixels, else size.{shortest,longest}_edge
        self.min_pixels = p.get("min_pixels", size.get("shortest_edge", size.get("min_pixels", 56 * 56)))
        self.max_pixels = p.get("max_pixels", size.get("longest_edge", size.get("max_pixels", 28 * 28 * 1280)))
        self.patch_size = p.get("patch_size", 14)
        self.temporal_patch_size = p.get("temporal_patch_size", 2)
        self.merge_size = p.get("merge_size", 2)
        self.image_mean = p.get("image_mean", [0.48145466, 0.4578275, 0.40821073])
        self.image_std = p.get("image_std", [0.26862954, 0.26130258, 0.27577711])
        self.rescale_factor = p.get("rescale_factor", 1 / 255)
        self.do_resize = p.get("do_resize", True)
        self.do_rescale = p.get("do_rescale", True)
        self.do_normalize = p.get("do_normalize", True)
        self.do_convert_rgb = p.get("do_convert_rgb", True)
        self.resample = p.get("resample", 3)  # PIL BICUBIC


def read_generation_config(ckpt_dir):
    path = os.path.join(ckpt_dir, "generation_config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


# ---------------------------------------------------------------------------------------------
# image processor (Qwen2VLImageProcessor, slow path)
# ---------------------------------------------------------------------------------------------


def smart_resize(height, width, factor=28, min_pixels=56 * 56, max_pixels=14 * 14 * 4 * 1280):
    """HF smart_resize: python float division, round() (half to even), floor/ceil, sqrt."""
    if height < factor or width < factor:  # transformers 4.45 - 4.5x raise here
        raise ValueError(f"height:{height} or width:{width} must be larger than factor:{factor}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"absolute aspect ratio must be smaller than 200, got {max(height, width) / min(height, width)}")
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


def convert_to_rgb(img):
    """transformers.image_transforms.convert_to_rgb: non-RGB images are alpha-composited on white."""
    if img.mode == "RGB":
        return img
    rgba = img.convert("RGBA")
    bg = Image.new("RGBA", rgba.size, (255, 255, 255))
    return Image.alpha_composite(bg, rgba).convert("RGB")


def preprocess_image(img, pp, resized_hw=None, min_pixels=None, max_pixels=None):
    """Returns (flatten_patches float32 [grid_t*grid_h*grid_w, C*T*P*P], (grid_t, grid_h, grid_w)).

    resized_hw: optional explicit (height, width) target (qwen_vl_utils' resized_height /
    resized_width). It is rounded with smart_resize and the image is resized to it first, as
    qwen_vl_utils.fetch_image does; then the HF processor runs unchanged on that image (its own
    smart_resize is the identity for a size that is already a multiple of 28 within bounds).
    """
    factor = pp.patch_size * pp.merge_size
    mn = pp.min_pixels if min_pixels is None else min_pixels
    mx = pp.max_pixels if max_pixels is None else max_pixels
    if pp.do_convert_rgb:
        img = convert_to_rgb(img)
    if resized_hw is not None:
        th, tw = smart_resize(int(resized_hw[0]), int(resized_hw[1]), factor, mn, mx)
        img = img.resize((tw, th), resample=pp.resample)
    arr = np.array(img)  # uint8 HWC
    if arr.ndim == 2:
        arr = arr[:, :, None]
    height, width = arr.shape[0], arr.shape[1]
    resized_height, resized_width = height, width
    if pp.do_resize:
        resized_height, resized_width = smart_resize(height, width, factor, mn, mx)
        # transformers.image_transforms.resize: uint8 array -> PIL -> PIL.resize((w, h), resample,
        # reducing_gap=None) -> uint8 array (PIL returns a copy when the size is unchanged).
        pil = Image.fromarray(arr.squeeze(-1) if arr.shape[-1] == 1 else arr)
        pil = pil.resize((resized_width, resized_height), resample=pp.resample, reducing_gap=None)
        arr = np.array(pil)
        if arr.ndim == 2:
            arr = arr[:, :, None]
    x = arr
    if pp.do_rescale:
        # rescale(): upcast to float64, multiply, downcast to float32
        x = (x.astype(np.float64) * pp.rescale_factor).astype(np.float32)
    if pp.do_normalize:
        # normalize(): float32 (image - mean) / std with mean/std cast to the image dtype
        if not np.issubdtype(x.dtype, np.floating):
            x = x.astype(np.float32)
        mean = np.array(pp.image_mean, dtype=x.dtype)
        std = np.array(pp.image_std, dtype=x.dtype)
        x = (x - mean) / std
    x = np.ascontiguousarray(x.transpose(2, 0, 1))  # CHW (ChannelDimension.FIRST)
    patches = x[None]  # [frames=1, C, H, W]
    tps = pp.temporal_patch_size
    if patches.shape[0] % tps != 0:  # a single image is repeated to fill the temporal patch
        reps = np.repeat(patches[-1:], tps - patches.shape[0] % tps, axis=0)
        patches = np.concatenate([patches, reps], axis=0)
    c = patches.shape[1]
    ps, ms = pp.patch_size, pp.merge_size
    grid_t = patches.shape[0] // tps
    grid_h, grid_w = resized_height // ps, resized_width // ps
    patches = patches.reshape(grid_t, tps, c, grid_h // ms, ms, ps, grid_w // ms, ms, ps)
    patches = patches.transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
    flat = patches.reshape(grid_t * grid_h * grid_w, c * tps * ps * ps)
    return np.ascontiguousarray(flat, dtype=np.float32), (grid_t, grid_h, grid_w)


# ---------------------------------------------------------------------------------------------
# processor: <|image_pad|> expansion
# ---------------------------------------------------------------------------------------------


def expand_image_tokens(input_ids, image_token_id, grids, merge_size):
    n_pads = sum(1 for t in input_ids if t == image_token_id)
    if n_pads != len(grids):
        raise ValueError(f"{n_pads} <|image_pad|> tokens in the prompt but {len(grids)} images")
    out, k = [], 0
    for t in input_ids:
        if t == image_token_id:
            gt, gh, gw = grids[k]
            out.extend([image_token_id] * (gt * gh * gw // (merge_size ** 2)))
            k += 1
        else:
            out.append(t)
    return out


# ---------------------------------------------------------------------------------------------
# M-RoPE position ids (Qwen2VLModel.get_rope_index, batch of one, no padding)
# ---------------------------------------------------------------------------------------------


def get_rope_index(input_ids, image_grid_thw, cfg, video_grid_thw=None):
    """Returns (position_ids LongTensor [3, seq], rope_delta int)."""
    ids = torch.tensor(input_ids, dtype=torch.long)
    seq = ids.shape[0]
    if not image_grid_thw and not video_grid_thw:
        pos = torch.arange(seq, dtype=torch.long).view(1, -1).expand(3, -1)
        return pos.clone(), 0
    merge = cfg.v_merge
    img_id, vid_id = cfg.image_token_id, cfg.video_token_id
    vs = torch.argwhere(ids == cfg.vision_start_token_id).squeeze(1)
    vs = vs[vs + 1 < seq]
    after = ids[vs + 1]
    image_nums = int((after == img_id).sum())
    video_nums = int((after == vid_id).sum())
    tokens = ids.tolist()
    pieces = []
    st = 0
    img_i = vid_i = 0
    rem_img, rem_vid = image_nums, video_nums
    for _ in range(image_nums + video_nums):
        ed_img = tokens.index(img_id, st) if (img_id in tokens and rem_img > 0) else len(tokens) + 1
        ed_vid = tokens.index(vid_id, st) if (vid_id in tokens and rem_vid > 0) else len(tokens) + 1
        if ed_img < ed_vid:
            t, h, w = image_grid_thw[img_i]
            img_i += 1
            rem_img -= 1
            ed = ed_img
        else:
            t, h, w = video_grid_thw[vid_i]
            vid_i += 1
            rem_vid -= 1
            ed = ed_vid
        gt, gh, gw = int(t), int(h) // merge, int(w) // merge
        text_len = ed - st
        st_idx = int(pieces[-1].max()) + 1 if pieces else 0
        pieces.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
        t_index = torch.arange(gt).view(-1, 1).expand(-1, gh * gw).flatten()
        h_index = torch.arange(gh).view(1, -1, 1).expand(gt, -1, gw).flatten()
        w_index = torch.arange(gw).view(1, 1, -1).expand(gt, gh, -1).flatten()
        pieces.append(torch.stack([t_index, h_index, w_index]) + text_len + st_idx)
        st = ed + gt * gh * gw
    if st < len(tokens):
        st_idx = int(pieces[-1].max()) + 1 if pieces else 0
        text_len = len(tokens) - st
        pieces.append(torch.arange(text_len).view(1, -1).expand(3, -1) + st_idx)
    pos = torch.cat(pieces, dim=1).reshape(3, -1).to(torch.long)
    delta = int(pos.max()) + 1 - seq
    return pos, delta


# ---------------------------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------------------------


def act_fn(name):
    if name == "silu":
        return F.silu
    if name == "quick_gelu":
        return lambda x: x * torch.sigmoid(1.702 * x)
    if name == "gelu":
        return F.gelu
    if name in ("gelu_pytorch_tanh", "gelu_new", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    raise ValueError(f"unsupported activation {name}")


def rms_norm(x, weight, eps):
    input_dtype = x.dtype
    h = x.to(F32)
    variance = h.pow(2).mean(-1, keepdim=True)
    h = h * torch.rsqrt(variance + eps)
    return weight * h.to(input_dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def eager_attention(q, k, v, scaling, mask=None, n_rep=1):
    """q [b, hq, lq, d], k/v [b, hkv, lk, d]; HF eager_attention_forward (with repeat_kv)."""
    if n_rep > 1:
        b, hkv, lk, d = k.shape
        k = k[:, :, None, :, :].expand(b, hkv, n_rep, lk, d).reshape(b, hkv * n_rep, lk, d)
        v = v[:, :, None, :, :].expand(b, hkv, n_rep, lk, d).reshape(b, hkv * n_rep, lk, d)
    w = torch.matmul(q, k.transpose(2, 3)) * scaling
    if mask is not None:
        w = w + mask[:, :, :, : k.shape[-2]]
    w = F.softmax(w, dim=-1, dtype=F32).to(q.dtype)
    out = torch.matmul(w, v)
    return out.transpose(1, 2).contiguous()  # [b, lq, h, d]


# ---------------------------------------------------------------------------------------------
# vision tower
# ---------------------------------------------------------------------------------------------


class VisionTower:
    def __init__(self, cfg, W):
        self.cfg = cfg
        self.W = W
        self.head_dim = cfg.v_embed_dim // cfg.v_num_heads
        rot_dim = self.head_dim // 2  # VisionRotaryEmbedding(head_dim // 2)
        self.inv_freq = 1.0 / (10000.0 ** (torch.arange(0, rot_dim, 2, dtype=torch.float) / rot_dim))
        self.act = act_fn(cfg.v_hidden_act)

    def rot_pos_emb(self, grid_thw):
        m = self.cfg.v_merge
        pos_ids = []
        for t, h, w in grid_thw:
            hpos = torch.arange(h).unsqueeze(1).expand(-1, w)
            hpos = hpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            wpos = torch.arange(w).unsqueeze(0).expand(h, -1)
            wpos = wpos.reshape(h // m, m, w // m, m).permute(0, 2, 1, 3).flatten()
            pos_ids.append(torch.stack([hpos, wpos], dim=-1).repeat(t, 1))
        pos_ids = torch.cat(pos_ids, dim=0)
        max_grid = max(max(h, w) for _, h, w in grid_thw)
        seq = torch.arange(max_grid, dtype=self.inv_freq.dtype)
        table = torch.outer(seq, self.inv_freq)
        return table[pos_ids].flatten(1)

    def forward(self, pixel_values, grid_thw, dumps=None):
        cfg, W = self.cfg, self.W
        C, T, P, E = cfg.v_in_channels, cfg.v_temporal, cfg.v_patch_size, cfg.v_embed_dim
        x = pixel_values.to(F32).view(-1, C, T, P, P)
        x = F.conv3d(x, W["visual.patch_embed.proj.weight"], None, stride=(T, P, P)).view(-1, E)
        if dumps is not None:
            dumps["vision_patch_embed"] = x
        rot = self.rot_pos_emb(grid_thw)
        emb = torch.cat((rot, rot), dim=-1)
        cos, sin = emb.cos(), emb.sin()
        lengths = []
        for t, h, w in grid_thw:
            lengths.extend([h * w] * t)
        for b in range(cfg.v_depth):
            p = f"visual.blocks.{b}."
            h1 = F.layer_norm(x, (E,), W[p + "norm1.weight"], W[p + "norm1.bias"], eps=1e-6)
            x = x + self.attention(h1, p + "attn.", cos, sin, lengths)
            h2 = F.layer_norm(x, (E,), W[p + "norm2.weight"], W[p + "norm2.bias"], eps=1e-6)
            h2 = F.linear(h2, W[p + "mlp.fc1.weight"], W[p + "mlp.fc1.bias"])
            h2 = F.linear(self.act(h2), W[p + "mlp.fc2.weight"], W[p + "mlp.fc2.bias"])
            x = x + h2
        # PatchMerger
        hs = E * cfg.v_merge ** 2
        y = F.layer_norm(x, (E,), W["visual.merger.ln_q.weight"], W["visual.merger.ln_q.bias"], eps=1e-6).view(-1, hs)
        y = F.linear(y, W["visual.merger.mlp.0.weight"], W["visual.merger.mlp.0.bias"])
        y = F.gelu(y)  # nn.GELU(): exact erf form
        y = F.linear(y, W["visual.merger.mlp.2.weight"], W["visual.merger.mlp.2.bias"])
        return y

    def attention(self, x, p, cos, sin, lengths):
        W = self.W
        n = x.shape[0]
        nh = self.cfg.v_num_heads
        qkv = F.linear(x, W[p + "qkv.weight"], W[p + "qkv.bias"])
        q, k, v = qkv.reshape(n, 3, nh, -1).permute(1, 0, 2, 3).unbind(0)  # each [n, heads, d]
        # apply_rotary_pos_emb_vision (float32)
        c, s = cos.unsqueeze(-2).float(), sin.unsqueeze(-2).float()
        q = (q.float() * c) + (rotate_half(q.float()) * s)
        k = (k.float() * c) + (rotate_half(k.float()) * s)
        q = q.transpose(0, 1).unsqueeze(0)
        k = k.transpose(0, 1).unsqueeze(0)
        v = v.transpose(0, 1).unsqueeze(0)
        scaling = self.head_dim ** -0.5
        outs = []
        for qq, kk, vv in zip(torch.split(q, lengths, dim=2), torch.split(k, lengths, dim=2), torch.split(v, lengths, dim=2)):
            outs.append(eager_attention(qq, kk, vv, scaling))  # block-diagonal, not causal
        o = torch.cat(outs, dim=1).reshape(n, -1).contiguous()
        return F.linear(o, W[p + "proj.weight"], W[p + "proj.bias"])


# ---------------------------------------------------------------------------------------------
# language model
# ---------------------------------------------------------------------------------------------


class LanguageModel:
    def __init__(self, cfg, W):
        self.cfg = cfg
        self.W = W
        d = cfg.head_dim
        # default rope init: 1 / base^(arange(0, d, 2, int64).float() / d); attention_scaling = 1
        self.inv_freq = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.int64).float() / d))
        self.act = act_fn(cfg.hidden_act)
        if "lm_head.weight" in W:
            self.lm_head = W["lm_head.weight"]
        else:
            self.lm_head = W["model.embed_tokens.weight"]  # tied

    def rotary(self, position_ids):
        """position_ids [3, b, L] -> cos, sin [3, b, L, d] (Qwen2VLRotaryEmbedding.forward)."""
        inv = self.inv_freq[None, None, :, None].float().expand(3, position_ids.shape[1], -1, 1)
        pos = position_ids[:, :, None, :].float()
        freqs = (inv.float() @ pos.float()).transpose(2, 3)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos(), emb.sin()

    def mrope(self, q, k, cos, sin):
        sec = self.cfg.mrope_section * 2
        cos = torch.cat([m[i % 3] for i, m in enumerate(cos.split(sec, dim=-1))], dim=-1).unsqueeze(1)
        sin = torch.cat([m[i % 3] for i, m in enumerate(sin.split(sec, dim=-1))], dim=-1).unsqueeze(1)
        return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)

    def forward(self, inputs_embeds, position_ids, cache=None, dumps=None):
        """inputs_embeds [1, L, H]; position_ids [3, 1, L]; cache: list of (k, v) per layer or None
        (then a fresh one is filled). Returns (logits [1, L, V], cache)."""
        cfg, W = self.cfg, self.W
        b, L, H = inputs_embeds.shape
        past = 0 if (cache is None or cache[0] is None) else cache[0][0].shape[2]
        if cache is None:
            cache = [None] * cfg.num_layers
        mask = None
        if L > 1:
            # create_causal_mask (eager): 0 where allowed, finfo(float32).min elsewhere
            total = past + L
            q_pos = torch.arange(past, past + L).view(-1, 1)
            k_pos = torch.arange(total).view(1, -1)
            mask = torch.zeros(L, total, dtype=F32).masked_fill(k_pos > q_pos, torch.finfo(F32).min)[None, None]
        cos, sin = self.rotary(position_ids)
        nh, nkv, d = cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        x = inputs_embeds
        for l in range(cfg.num_layers):
            p = f"model.layers.{l}."
            residual = x
            h = rms_norm(x, W[p + "input_layernorm.weight"], cfg.rms_norm_eps)
            q = F.linear(h, W[p + "self_attn.q_proj.weight"], W[p + "self_attn.q_proj.bias"])
            k = F.linear(h, W[p + "self_attn.k_proj.weight"], W[p + "self_attn.k_proj.bias"])
            v = F.linear(h, W[p + "self_attn.v_proj.weight"], W[p + "self_attn.v_proj.bias"])
            q = q.view(b, L, -1, d).transpose(1, 2)
            k = k.view(b, L, -1, d).transpose(1, 2)
            v = v.view(b, L, -1, d).transpose(1, 2)
            q, k = self.mrope(q, k, cos, sin)
            if cache[l] is not None:  # DynamicCache.update: concat along the sequence axis
                k = torch.cat([cache[l][0], k], dim=-2)
                v = torch.cat([cache[l][1], v], dim=-2)
            cache[l] = (k, v)
            a = eager_attention(q, k, v, d ** -0.5, mask, n_rep=nh // nkv)
            a = a.reshape(b, L, -1).contiguous()
            a = F.linear(a, W[p + "self_attn.o_proj.weight"])
            x = residual + a
            residual = x
            h = rms_norm(x, W[p + "post_attention_layernorm.weight"], cfg.rms_norm_eps)
            h = F.linear(self.act(F.linear(h, W[p + "mlp.gate_proj.weight"])) * F.linear(h, W[p + "mlp.up_proj.weight"]),
                         W[p + "mlp.down_proj.weight"])
            x = residual + h
            if dumps is not None:
                dumps[f"hidden_layer{l}"] = x[0]
        x = rms_norm(x, W["model.norm.weight"], cfg.rms_norm_eps)
        logits = F.linear(x, self.lm_head)
        return logits, cache


# ---------------------------------------------------------------------------------------------
# full model
# ---------------------------------------------------------------------------------------------


class Qwen2VLReference:
    def __init__(self, ckpt_dir):
        self.cfg = Config(ckpt_dir)
        self.pp = PreprocessorConfig(ckpt_dir)
        self.gen_cfg = read_generation_config(ckpt_dir)
        self.W = load_weights(ckpt_dir)
        self.vision = VisionTower(self.cfg, self.W)
        self.lm = LanguageModel(self.cfg, self.W)

    def embed(self, ids):
        return F.embedding(torch.tensor(ids, dtype=torch.long).view(1, -1), self.W["model.embed_tokens.weight"])

    def prepare(self, input_ids, images):
        """images: list of dicts {path | pil, resized_width?, resized_height?, min_pixels?, max_pixels?}."""
        pvs, grids = [], []
        for im in images:
            pil = im["pil"] if "pil" in im else Image.open(im["path"])
            pil.load()
            rhw = None
            if im.get("resized_height") is not None and im.get("resized_width") is not None:
                rhw = (im["resized_height"], im["resized_width"])
            pv, g = preprocess_image(pil, self.pp, rhw, im.get("min_pixels"), im.get("max_pixels"))
            pvs.append(pv)
            grids.append(tuple(int(v) for v in g))
        expanded = expand_image_tokens(list(input_ids), self.cfg.image_token_id, grids, self.pp.merge_size)
        pixel_values = torch.from_numpy(np.concatenate(pvs, axis=0)) if pvs else None
        return expanded, pixel_values, grids

    def prefill_embeds(self, expanded, pixel_values, grids, dumps=None):
        embeds = self.embed(expanded)
        image_embeds = None
        if pixel_values is not None:
            image_embeds = self.vision.forward(pixel_values, grids, dumps)
            mask = torch.tensor(expanded, dtype=torch.long).view(1, -1) == self.cfg.image_token_id
            n_tok = int(mask.sum())
            if n_tok != image_embeds.shape[0]:
                raise ValueError(f"Image features and image tokens do not match: tokens: {n_tok}, features {image_embeds.shape[0]}")
            mask = mask.unsqueeze(-1).expand_as(embeds)
            embeds = embeds.masked_scatter(mask, image_embeds.to(embeds.dtype))
        return embeds, image_embeds

    def generate(self, input_ids, images, max_new_tokens, top_k=5, use_cache=True, stop_ids=None,
                 repetition_penalty=None, dumps=None):
        expanded, pixel_values, grids = self.prepare(input_ids, images)
        position_ids, rope_delta = get_rope_index(expanded, grids, self.cfg)
        embeds, image_embeds = self.prefill_embeds(expanded, pixel_values, grids, dumps)
        if dumps is not None:
            if pixel_values is not None:
                dumps["pixel_values"] = pixel_values
                dumps["image_embeds"] = image_embeds
            dumps["inputs_embeds"] = embeds[0]
        logits, cache = self.lm.forward(embeds, position_ids[:, None, :], None, dumps)
        prompt_logits = logits[0]
        if dumps is not None:
            dumps["prompt_logits"] = prompt_logits
        seq = list(expanded)
        tokens, logprobs, tops, step_logits = [], [], [], []
        last = prompt_logits[-1]
        for step in range(max_new_tokens):
            scores = last.clone()
            if repetition_penalty is not None and repetition_penalty != 1.0:
                # RepetitionPenaltyLogitsProcessor over every id seen so far (prompt included)
                idx = torch.tensor(seq, dtype=torch.long)
                sc = torch.gather(scores, 0, idx)
                sc = torch.where(sc < 0, sc * repetition_penalty, sc / repetition_penalty)
                scores = scores.scatter(0, idx, sc)
            step_logits.append(scores)
            lp = F.log_softmax(scores.float(), dim=-1)
            tok = int(torch.argmax(scores))
            tokens.append(tok)
            logprobs.append(float(lp[tok]))
            if top_k > 0:
                tv, ti = torch.topk(lp, min(top_k, lp.shape[0]))
                tops.append([[int(i), float(v)] for i, v in zip(ti.tolist(), tv.tolist())])
            else:
                tops.append([])
            seq.append(tok)
            if stop_ids and tok in stop_ids:
                break
            if step == max_new_tokens - 1:
                break
            if use_cache:
                # decode step: position = cache length + rope_delta on all three axes
                cur = len(seq) - 1
                pos = torch.full((3, 1, 1), cur + rope_delta, dtype=torch.long)
                lg, cache = self.lm.forward(self.embed([tok]), pos, cache)
                last = lg[0, -1]
            else:
                # full recompute (use_cache=False). Image features go into the prompt's pad
                # positions only; generated tokens get position index + rope_delta, which equals
                # get_rope_index over the whole sequence for text continuations (check_reference
                # verifies this) and stays defined if a generated id happens to be <|image_pad|>.
                n_prompt = len(expanded)
                gen_pos = torch.arange(n_prompt, len(seq), dtype=torch.long) + rope_delta
                pos_full = torch.cat([position_ids, gen_pos.view(1, -1).expand(3, -1)], dim=1)
                emb_full = torch.cat([embeds, self.embed(seq[n_prompt:])], dim=1)
                lg, _ = self.lm.forward(emb_full, pos_full[:, None, :], None)
                last = lg[0, -1]
        if dumps is not None and step_logits:
            dumps["step_logits"] = torch.stack(step_logits)
        return {
            "expanded_input_ids": expanded,
            "position_ids": position_ids.tolist(),
            "rope_delta": int(rope_delta),
            "image_grid_thw": [list(g) for g in grids],
            "tokens": tokens,
            "logprobs": logprobs,
            "top_logprobs": tops,
            "prompt_last_logits_head": [float(v) for v in prompt_logits[-1][:16].tolist()],
        }


# ---------------------------------------------------------------------------------------------
# dumps & CLI
# ---------------------------------------------------------------------------------------------


def write_dumps(dump_dir, dumps):
    os.makedirs(dump_dir, exist_ok=True)
    manifest = {"dtype": "float32", "endianness": "little", "tensors": {}}
    for name, t in dumps.items():
        a = t.detach().to(F32).contiguous().numpy().astype("<f4")
        fn = f"{name}.bin"
        with open(os.path.join(dump_dir, fn), "wb") as f:
            f.write(a.tobytes())
        manifest["tensors"][name] = {"file": fn, "shape": list(a.shape), "dtype": "float32"}
    with open(os.path.join(dump_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


def parse_request(req):
    """Request fields:
    checkpoint (dir), input_ids (prompt ids, ONE <|image_pad|> per image), images ([{path,
    resized_width?, resized_height?, min_pixels?, max_pixels?}]), max_new_tokens (default 16),
    top_logprobs (default 5), dump_dir (optional), dump_hidden_states (bool, default false),
    use_cache (bool, default true), stop_at_eos (bool, default false: eos ids from
    generation_config.json), repetition_penalty (float, default none = raw logits)."""
    return {
        "checkpoint": req["checkpoint"],
        "input_ids": [int(t) for t in req["input_ids"]],
        "images": req.get("images") or [],
        "max_new_tokens": int(req.get("max_new_tokens", 16)),
        "top_logprobs": int(req.get("top_logprobs", 5)),
        "dump_dir": req.get("dump_dir"),
        "dump_hidden_states": bool(req.get("dump_hidden_states", False)),
        "use_cache": bool(req.get("use_cache", True)),
        "stop_at_eos": bool(req.get("stop_at_eos", False)),
        "repetition_penalty": req.get("repetition_penalty"),
    }


def run_request(req, model=None):
    r = parse_request(req)
    model = model or Qwen2VLReference(r["checkpoint"])
    stop_ids = None
    if r["stop_at_eos"]:
        eos = model.gen_cfg.get("eos_token_id", model.cfg.raw.get("eos_token_id"))
        stop_ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else None
    dumps = {} if r["dump_dir"] else None
    out = model.generate(r["input_ids"], r["images"], r["max_new_tokens"], r["top_logprobs"], r["use_cache"],
                         stop_ids, r["repetition_penalty"], dumps)
    if dumps is not None:
        if not r["dump_hidden_states"]:
            for k in [k for k in dumps if k.startswith("hidden_layer")]:
                del dumps[k]
        write_dumps(r["dump_dir"], dumps)
    return out


def main(argv):
    if len(argv) != 2:
        print("usage: qwen2_vl_reference.py request.json > out.json", file=sys.stderr)
        return 2
    with open(argv[1]) as f:
        req = json.load(f)
    out = run_request(req)
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
