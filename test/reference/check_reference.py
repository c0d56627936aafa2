#!/usr/bin/python3
"""Internal consistency checks for qwen2_vl_reference.py (stdlib + numpy + torch + PIL).

  /usr/bin/python3 test/reference/check_reference.py [--checkpoint DIR]

Builds its own tiny random checkpoints in a temp dir (classic F32, tied; newer key layout,
sharded, BF16/F16; untied lm_head) and checks:
  * smart_resize on known sizes (round half to even, min/max pixel branches)
  * get_rope_index on hand-computed layouts (text / image / text, two images, text only)
  * the processor's patch order: Conv3d over the whole image, regrouped into 2x2 merge windows,
    equals the patch embedding of pixel_values
  * the vision tower's block-diagonal attention: two images together == each alone
  * safetensors reading: classic vs newer layout, sharded, BF16/F16, tied vs explicit lm_head
  * greedy decoding with the KV cache == full recompute (tokens equal, logprobs within 1e-4)
  * the decode-step position (cache length + rope_delta) == get_rope_index over the full sequence
With --checkpoint, the KV-cache vs recompute check also runs on that checkpoint.
Prints one line per check and 'N passed, N failed'; exits non-zero on a failure.
"""

import json
import os
import struct
import sys
import tempfile

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

sys.dont_write_bytecode = True  # keep test/reference/ free of __pycache__
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import qwen2_vl_reference as R  # noqa: E402

RESULTS = []


def check(name, cond, detail=""):
    RESULTS.append((name, bool(cond)))
    print(f"{'ok  ' if cond else 'FAIL'} {name}{(': ' + detail) if detail else ''}")


# ---------------------------------------------------------------------------------------------
# tiny checkpoint writer
# ---------------------------------------------------------------------------------------------

IDS = {"bos": 580, "eos": 581, "vs": 590, "ve": 591, "img": 593, "vid": 594}


def tiny_weights(seed=7, H=64, L=2, NH=4, KV=2, I=128, V=600, VD=2, VE=32, MR=4, P=14, T=2):
    g = np.random.default_rng(seed)
    w = {}

    def r(name, *shape, s=0.08):
        w[name] = (g.standard_normal(shape) * s).astype(np.float32)

    def ones(name, n):
        w[name] = (1.0 + 0.1 * g.standard_normal(n)).astype(np.float32)

    hd = H // NH
    r("model.embed_tokens.weight", V, H, s=0.5)
    for l in range(L):
        p = f"model.layers.{l}."
        # weights large enough that greedy decoding does not just repeat one token
        for nm, o in (("q", NH * hd), ("k", KV * hd), ("v", KV * hd)):
            r(p + f"self_attn.{nm}_proj.weight", o, H, s=0.25)
            r(p + f"self_attn.{nm}_proj.bias", o, s=0.2)
        r(p + "self_attn.o_proj.weight", H, NH * hd, s=0.25)
        r(p + "mlp.gate_proj.weight", I, H, s=0.25)
        r(p + "mlp.up_proj.weight", I, H, s=0.25)
        r(p + "mlp.down_proj.weight", H, I, s=0.25)
        ones(p + "input_layernorm.weight", H)
        ones(p + "post_attention_layernorm.weight", H)
    ones("model.norm.weight", H)
    r("visual.patch_embed.proj.weight", VE, 3, T, P, P, s=0.05)
    for b in range(VD):
        p = f"visual.blocks.{b}."
        for n in ("norm1", "norm2"):
            ones(p + n + ".weight", VE)
            r(p + n + ".bias", VE, s=0.05)
        r(p + "attn.qkv.weight", 3 * VE, VE, s=0.2)
        r(p + "attn.qkv.bias", 3 * VE, s=0.1)
        r(p + "attn.proj.weight", VE, VE, s=0.2)
        r(p + "attn.proj.bias", VE, s=0.05)
        r(p + "mlp.fc1.weight", VE * MR, VE, s=0.2)
        r(p + "mlp.fc1.bias", VE * MR, s=0.05)
        r(p + "mlp.fc2.weight", VE, VE * MR, s=0.1)
        r(p + "mlp.fc2.bias", VE, s=0.05)
    ones("visual.merger.ln_q.weight", VE)
    r("visual.merger.ln_q.bias", VE, s=0.05)
    r("visual.merger.mlp.0.weight", VE * 4, VE * 4, s=0.1)
    r("visual.merger.mlp.0.bias", VE * 4, s=0.05)
    r("visual.merger.mlp.2.weight", H, VE * 4, s=0.1)
    r("visual.merger.mlp.2.bias", H, s=0.05)
    cfg = {
        "architectures": ["Qwen2VLForConditionalGeneration"], "model_type": "qwen2_vl", "attention_dropout": 0.0,
        "bos_token_id": IDS["bos"], "eos_token_id": IDS["eos"], "vision_start_token_id": IDS["vs"],
        "vision_end_token_id": IDS["ve"], "vision_token_id": 592, "image_token_id": IDS["img"],
        "video_token_id": IDS["vid"], "hidden_act": "silu", "hidden_size": H, "intermediate_size": I,
        "max_position_embeddings": 32768, "max_window_layers": L, "num_attention_heads": NH,
        "num_hidden_layers": L, "num_key_value_heads": KV, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0,
        "sliding_window": 32768, "tie_word_embeddings": True, "torch_dtype": "float32", "use_cache": True,
        "use_sliding_window": False, "vocab_size": V,
        "vision_config": {"depth": VD, "embed_dim": VE, "mlp_ratio": MR, "num_heads": 2, "in_chans": 3,
                          "hidden_size": H, "patch_size": P, "spatial_merge_size": 2, "spatial_patch_size": P,
                          "temporal_patch_size": T},
        "rope_scaling": {"type": "mrope", "mrope_section": [2, 3, 3]},
    }
    return w, cfg


def encode(a, dt):
    if dt == "F32":
        return a.astype("<f4").tobytes()
    if dt == "F16":
        return a.astype("<f2").tobytes()
    u = a.astype("<f4").view("<u4").astype(np.uint64)
    u = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype("<u2")  # round to nearest even
    return u.tobytes()


def write_safetensors(path, tensors, dt):
    header, blobs, off = {}, [], 0
    for k, a in tensors.items():
        b = encode(a, dt)
        header[k] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        off += len(b)
        blobs.append(b)
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def write_ckpt(out, w, cfg, dt="F32", layout="classic", shards=1, untied=False):
    os.makedirs(out, exist_ok=True)
    w = dict(w)
    cfg = json.loads(json.dumps(cfg))
    if untied:
        w["lm_head.weight"] = w["model.embed_tokens.weight"].copy()
        cfg["tie_word_embeddings"] = False
    if layout == "new":
        nw = {}
        for k, v in w.items():
            if k.startswith("model."):
                nw["model.language_model." + k[len("model."):]] = v
            elif k.startswith("visual."):
                nw["model." + k] = v
            else:
                nw[k] = v
        w = nw
        # newer transformers also nest the text config
        text_keys = ["hidden_size", "intermediate_size", "num_attention_heads", "num_hidden_layers",
                     "num_key_value_heads", "rms_norm_eps", "rope_theta", "vocab_size", "rope_scaling", "hidden_act"]
        cfg["text_config"] = {k: cfg.pop(k) for k in text_keys}
    keys = sorted(w)
    if shards == 1:
        write_safetensors(os.path.join(out, "model.safetensors"), w, dt)
    else:
        wm = {}
        for i in range(shards):
            part = keys[i::shards]
            fn = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
            write_safetensors(os.path.join(out, fn), {k: w[k] for k in part}, dt)
            wm.update({k: fn for k in part})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {}, "weight_map": wm}, f)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f)
    with open(os.path.join(out, "preprocessor_config.json"), "w") as f:
        json.dump({"min_pixels": 3136, "max_pixels": 12845056, "patch_size": 14, "temporal_patch_size": 2,
                   "merge_size": 2, "image_mean": [0.48145466, 0.4578275, 0.40821073],
                   "image_std": [0.26862954, 0.26130258, 0.27577711],
                   "image_processor_type": "Qwen2VLImageProcessor"}, f)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"bos_token_id": IDS["bos"], "eos_token_id": [IDS["eos"], IDS["bos"]], "do_sample": False}, f)
    return out


def make_images(d):
    g = np.random.default_rng(3)
    # smooth-ish content so bicubic resizing is exercised meaningfully
    def img(h, w, c):
        base = g.integers(0, 256, (h // 7 + 2, w // 7 + 2, c), dtype=np.uint8)
        pil = Image.fromarray(base, "RGBA" if c == 4 else "RGB").resize((w, h), Image.BILINEAR)
        a = np.array(pil).astype(np.int16) + g.integers(-20, 21, (h, w, c))
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8), "RGBA" if c == 4 else "RGB")

    paths = {}
    for name, (h, w, c, ext) in {"a": (70, 100, 3, "png"), "b": (90, 45, 4, "png"), "c": (123, 77, 3, "jpg")}.items():
        p = os.path.join(d, f"{name}.{ext}")
        img(h, w, c).save(p)
        paths[name] = p
    return paths


# ---------------------------------------------------------------------------------------------
# checks
# ---------------------------------------------------------------------------------------------


def check_smart_resize():
    sr = R.smart_resize
    cases = [((70, 100), (56, 112)),  # 70/28 = 2.5 -> round half to even -> 2
             ((42, 42), (56, 56)),  # 1.5 -> 2 (even); 56*56 >= min
             ((98, 98), (112, 112)),  # 3.5 -> 4
             ((126, 126), (112, 112)),  # 4.5 -> 4
             ((28, 28), (56, 56)),  # below min_pixels -> ceil branch
             ((1080, 1920), (1092, 1932)),
             ]
    ok = True
    for (h, w), exp in cases:
        got = sr(h, w, 28, 3136, 12845056)
        ok &= got == exp
        if got != exp:
            print("   smart_resize", (h, w), got, "!=", exp)
    # max_pixels branch: beta = sqrt(h*w/max), floor
    h, w, mx = 2000, 3000, 1003520
    got = sr(h, w, 28, 3136, mx)
    import math
    beta = math.sqrt(h * w / mx)
    exp = (math.floor(h / beta / 28) * 28, math.floor(w / beta / 28) * 28)
    ok &= got == exp and got[0] * got[1] <= mx
    try:
        sr(20, 100)
        ok = False
    except ValueError:
        pass
    check("smart_resize known values", ok)


class _Cfg:
    v_merge = 2
    image_token_id = IDS["img"]
    video_token_id = IDS["vid"]
    vision_start_token_id = IDS["vs"]


def check_rope_index():
    c = _Cfg()
    # 3 text tokens (the last is <|vision_start|>), image grid 1x4x6 -> 6 tokens at 2x3, 2 text
    ids = [IDS["bos"], 10, IDS["vs"]] + [IDS["img"]] * 6 + [IDS["ve"], 11]
    pos, delta = R.get_rope_index(ids, [(1, 4, 6)], c)
    exp_t = [0, 1, 2, 3, 3, 3, 3, 3, 3, 6, 7]
    exp_h = [0, 1, 2, 3, 3, 3, 4, 4, 4, 6, 7]
    exp_w = [0, 1, 2, 3, 4, 5, 3, 4, 5, 6, 7]
    check("rope index: text/image(1x4x6)/text", pos.tolist() == [exp_t, exp_h, exp_w] and delta == 8 - 11,
          f"delta={delta}")
    # two images: 1x4x4 (2x2 merged) then 1x2x6 (1x3), text between and after
    ids = [1, IDS["vs"]] + [IDS["img"]] * 4 + [IDS["ve"], 5, IDS["vs"]] + [IDS["img"]] * 3 + [IDS["ve"], 9]
    pos, delta = R.get_rope_index(ids, [(1, 4, 4), (1, 2, 6)], c)
    # text after an image continues at max(previous positions) + 1 (here 10, not 8)
    t = [0, 1, 2, 2, 2, 2, 4, 5, 6, 7, 7, 7, 10, 11]
    h = [0, 1, 2, 2, 3, 3, 4, 5, 6, 7, 7, 7, 10, 11]
    w = [0, 1, 2, 3, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    check("rope index: two images", pos.tolist() == [t, h, w] and delta == 12 - 14, f"delta={delta}")
    pos, delta = R.get_rope_index([1, 2, 3, 4], [], c)
    check("rope index: text only", pos.tolist() == [[0, 1, 2, 3]] * 3 and delta == 0)


def check_patch_order(model, paths):
    """Conv3d over the whole (temporally duplicated) image, regrouped into merge windows, must
    equal the patch embedding of the processor's flattened patches."""
    pp, cfg, W = model.pp, model.cfg, model.W
    img = R.convert_to_rgb(Image.open(paths["a"]))
    pv, (gt, gh, gw) = R.preprocess_image(img, pp)
    # rebuild the normalized full image independently of the patch reshape
    rh, rw = gh * 14, gw * 14
    arr = np.array(img.resize((rw, rh), resample=Image.BICUBIC)).astype(np.float64) * pp.rescale_factor
    arr = ((arr.astype(np.float32) - np.array(pp.image_mean, np.float32)) / np.array(pp.image_std, np.float32))
    full = torch.from_numpy(arr.transpose(2, 0, 1).copy())[:, None].expand(3, 2, rh, rw)[None]  # [1,C,T,H,W]
    conv = F.conv3d(full, W["visual.patch_embed.proj.weight"], stride=(2, 14, 14))[0, :, 0]  # [E, gh, gw]
    E = conv.shape[0]
    m = cfg.v_merge
    grouped = conv.reshape(E, gh // m, m, gw // m, m).permute(1, 3, 2, 4, 0).reshape(-1, E)
    d = {}
    model.vision.forward(torch.from_numpy(pv), [(gt, gh, gw)], d)
    diff = float((grouped - d["vision_patch_embed"]).abs().max())
    check("processor patch order == merge-window order of a whole-image conv", diff < 1e-4, f"max|d|={diff:.2e}")
    # rot_pos_emb rows carry (h, w) of each patch in the same order
    rot = model.vision.rot_pos_emb([(1, gh, gw)])
    hh, ww = torch.meshgrid(torch.arange(gh), torch.arange(gw), indexing="ij")
    hh = hh.reshape(gh // m, m, gw // m, m).permute(0, 2, 1, 3).flatten()
    ww = ww.reshape(gh // m, m, gw // m, m).permute(0, 2, 1, 3).flatten()
    inv = model.vision.inv_freq
    exp = torch.cat([hh[:, None].float() * inv[None], ww[:, None].float() * inv[None]], dim=1)
    check("vision rotary (h, w) per patch", torch.equal(rot, exp))


def check_vision_blocks(model, paths):
    imgs = [{"path": paths["a"]}, {"path": paths["b"]}]
    pvs, grids = [], []
    for im in imgs:
        pv, g = R.preprocess_image(Image.open(im["path"]), model.pp)
        pvs.append(torch.from_numpy(pv))
        grids.append(g)
    joint = model.vision.forward(torch.cat(pvs), grids)
    alone = torch.cat([model.vision.forward(pvs[i], [grids[i]]) for i in range(2)])
    diff = float((joint - alone).abs().max())
    check("vision: two images together == each alone (block-diagonal attention)", diff < 1e-5, f"max|d|={diff:.2e}")


def run(model, ids, images, n=16, use_cache=True):
    return model.generate(ids, images, n, top_k=5, use_cache=use_cache)


def check_cache_vs_recompute(model, label, requests):
    for ids, images in requests:
        a = run(model, ids, images, use_cache=True)
        b = run(model, ids, images, use_cache=False)
        dl = max(abs(x - y) for x, y in zip(a["logprobs"], b["logprobs"]))
        check(f"{label}: KV cache == recompute ({len(images)} image(s))",
              a["tokens"] == b["tokens"] and dl < 1e-4, f"tokens={a['tokens'][:6]}... max|dlp|={dl:.2e}")


def check_decode_positions(model, paths):
    ids = [IDS["bos"], 10, IDS["vs"], IDS["img"], IDS["ve"], 12]
    exp, pv, grids = model.prepare(ids, [{"path": paths["c"]}])
    _, delta = R.get_rope_index(exp, grids, model.cfg)
    seq = exp + [100, 101, 102]
    pos_full, _ = R.get_rope_index(seq, grids, model.cfg)
    ok = all(pos_full[:, len(exp) + i].tolist() == [len(exp) + i + delta] * 3 for i in range(3))
    check("decode position = cache length + rope_delta", ok)


def check_loading(tmp, w, cfg, paths):
    base = R.Qwen2VLReference(write_ckpt(os.path.join(tmp, "classic"), w, cfg))
    ids = [IDS["bos"], 10, 11, IDS["vs"], IDS["img"], IDS["ve"], 12, IDS["vs"], IDS["img"], IDS["ve"], 13]
    imgs = [{"path": paths["a"]}, {"path": paths["b"]}]
    ref = run(base, ids, imgs, n=6)
    for label, kw in [("newer layout + nested text_config, 3 shards", dict(layout="new", shards=3)),
                      ("explicit lm_head (untied)", dict(untied=True))]:
        m = R.Qwen2VLReference(write_ckpt(os.path.join(tmp, label.split()[0]), w, cfg, **kw))
        o = run(m, ids, imgs, n=6)
        same = o["tokens"] == ref["tokens"] and o["logprobs"] == ref["logprobs"]
        check(f"loading: {label} == classic", same)
    for dt in ("BF16", "F16"):
        m = R.Qwen2VLReference(write_ckpt(os.path.join(tmp, dt), w, cfg, dt=dt, layout="new", shards=2))
        ok = True
        for k, v in base.W.items():
            a = v.numpy()
            if dt == "F16":
                exp = a.astype(np.float16).astype(np.float32)
            else:
                u = a.view(np.uint32).astype(np.uint64)
                exp = (((u + 0x7FFF + ((u >> 16) & 1)) >> 16) << 16).astype(np.uint32).view(np.float32)
            ok &= np.array_equal(m.W[k].numpy(), exp)
        check(f"loading: {dt} tensors widen exactly", ok and set(m.W) == set(base.W))
    return base


def main(argv):
    extra = None
    if "--checkpoint" in argv:
        extra = argv[argv.index("--checkpoint") + 1]
    with tempfile.TemporaryDirectory() as tmp:
        paths = make_images(tmp)
        w, cfg = tiny_weights()
        check_smart_resize()
        check_rope_index()
        model = check_loading(tmp, w, cfg, paths)
        check_patch_order(model, paths)
        check_vision_blocks(model, paths)
        check_decode_positions(model, paths)
        reqs = [([IDS["bos"], 10, 11, 12], []),
                ([IDS["bos"], 10, IDS["vs"], IDS["img"], IDS["ve"], 12], [{"path": paths["c"]}]),
                ([IDS["bos"], 10, IDS["vs"], IDS["img"], IDS["ve"], 11, IDS["vs"], IDS["img"], IDS["ve"], 12],
                 [{"path": paths["a"]}, {"path": paths["b"], "resized_width": 60, "resized_height": 100}])]
        check_cache_vs_recompute(model, "tiny", reqs)
        # repetition penalty: step-0 scores = HF RepetitionPenaltyLogitsProcessor over the prompt
        ids, imgs = reqs[1]
        d0, d1 = {}, {}
        model.generate(ids, imgs, 2, top_k=3, repetition_penalty=1.3, dumps=d1)
        model.generate(ids, imgs, 2, top_k=3, dumps=d0)
        raw = d0["prompt_logits"][-1]
        exp = raw.clone()
        for t in set(model.prepare(ids, imgs)[0]):
            exp[t] = raw[t] * 1.3 if raw[t] < 0 else raw[t] / 1.3
        check("repetition_penalty matches HF's processor on step 0", torch.equal(d1["step_logits"][0], exp))
        # CLI round trip with dumps
        req = {"checkpoint": os.path.join(tmp, "classic"), "input_ids": reqs[2][0], "images": reqs[2][1],
               "max_new_tokens": 4, "top_logprobs": 3, "dump_dir": os.path.join(tmp, "dump")}
        out = R.run_request(req)
        with open(os.path.join(tmp, "dump", "manifest.json")) as f:
            man = json.load(f)["tensors"]
        pl = np.fromfile(os.path.join(tmp, "dump", man["prompt_logits"]["file"]), "<f4").reshape(man["prompt_logits"]["shape"])
        ok = (len(out["tokens"]) == 4 and len(out["expanded_input_ids"]) == pl.shape[0]
              and np.allclose(pl[-1, :16], out["prompt_last_logits_head"], atol=0, rtol=0)
              and man["pixel_values"]["shape"][1] == 1176 and man["image_embeds"]["shape"][0] ==
              sum(t * h * w // 4 for t, h, w in out["image_grid_thw"]))
        check("run_request + dumps consistent", ok)
        if extra:
            m = R.Qwen2VLReference(extra)
            c = m.cfg
            reqs = [([1, 2, 3], []),
                    ([1, c.vision_start_token_id, c.image_token_id, c.vision_end_token_id, 4], [{"path": paths["c"]}])]
            check_cache_vs_recompute(m, os.path.basename(extra.rstrip("/")), reqs)
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
