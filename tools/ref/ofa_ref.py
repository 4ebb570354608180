#!/usr/bin/python3
"""PyTorch reference of the OFA micro model (models/ofa.h), written from SPEC section 3
and OFA's published code structure, for tests/test_models.cpp (llm.c's test_gpt2 idea).

It builds the model with OUR parameter names, fills it with seeded random weights (no
zeros, so every path matters: relative-bias tables, head scales and LayerNorm affines
all get random values), runs one multimodal batch (image + text -> text; one row has
no image, one row has padding and a no_loss token) in float64, and writes
tests/data/ofa_micro_ref.safetensors with
  param/<name>      every parameter and buffer before the step (f32)
  input/<name>      the batch
  out/logits        [B, Tt, V]
  out/loss          [] label-smoothed (0.1) cross-entropy, summed over scored tokens
  grad/<name>       d loss / d parameter
  buffer/<name>     BatchNorm running statistics after the training-mode forward
  __metadata__      {"config": the OfaConfig JSON, "sample_size": ...}
Run: /usr/bin/python3 tools/ref/ofa_ref.py   (torch 1.13 from Debian; CPU; < 10 s)
"""
import json
import math
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from st_io import save_safetensors  # noqa: E402

torch.set_default_dtype(torch.float64)

CFG = dict(model="ofa", name="micro-ref", vocab_size=64, d_model=32, ffn_dim=64, heads=2, encoder_layers=2,
           decoder_layers=2, image_adaptor="resnet", resnet_blocks=[1, 1, 1], resnet_width=8, freeze_bn=False,
           patch_size=16, patch_channels=4, patch_groups=2, audio_channels=0, n_mels=80, max_frames=0,
           dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, drop_path_rate=0.0,
           resnet_drop_path_rate=0.0, attn_scale_factor=2.0, normformer=True, seed=1)
TOKEN_BUCKET, MAX_POS, IMAGE_BUCKET = 256, 1024, 42
LABEL_SMOOTHING = 0.1


# ---- OFA's relative position buckets, as its code computes them ------------------------
def make_token_bucket_position(bucket_size, max_position=MAX_POS):
    context_pos = torch.arange(max_position, dtype=torch.long)[:, None]
    memory_pos = torch.arange(max_position, dtype=torch.long)[None, :]
    relative_pos = context_pos - memory_pos
    sign = torch.sign(relative_pos)
    mid = bucket_size // 2
    abs_pos = torch.where((relative_pos < mid) & (relative_pos > -mid), mid - 1, torch.abs(relative_pos))
    log_pos = torch.ceil(torch.log(abs_pos.float() / mid) / math.log((max_position - 1) / mid) * (mid - 1)) + mid
    log_pos = log_pos.int()
    bucket_pos = torch.where(abs_pos.le(mid), relative_pos, log_pos * sign).long()
    return bucket_pos + bucket_size - 1


def make_image_bucket_position(bucket_size, num_relative_distance):
    coords = torch.stack(torch.meshgrid([torch.arange(bucket_size), torch.arange(bucket_size)], indexing="ij"))
    coords_flatten = torch.flatten(coords, 1)
    rel = (coords_flatten[:, :, None] - coords_flatten[:, None, :]).permute(1, 2, 0).contiguous()
    rel[:, :, 0] += bucket_size - 1
    rel[:, :, 1] += bucket_size - 1
    rel[:, :, 0] *= 2 * bucket_size - 1
    idx = torch.zeros(size=(bucket_size * bucket_size + 1,) * 2, dtype=rel.dtype)
    idx[1:, 1:] = rel.sum(-1)
    idx[0, 0:] = num_relative_distance - 3
    idx[0:, 0] = num_relative_distance - 2
    idx[0, 0] = num_relative_distance - 1
    return idx


TOKEN_RP = make_token_bucket_position(TOKEN_BUCKET)
IMAGE_NUM_REL = (2 * IMAGE_BUCKET - 1) ** 2 + 3
IMAGE_RP = make_image_bucket_position(IMAGE_BUCKET, IMAGE_NUM_REL)


# ---- layers ----------------------------------------------------------------------------
class MHA(nn.Module):
    def __init__(self, d, H, factor):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.c_attn = nn.Parameter(torch.ones(H))
        self.H, self.Dh, self.scaling = H, d // H, (d // H * factor) ** -0.5

    def forward(self, x, kv, bias=None, key_padding=None, causal=False):
        B, Tq, d = x.shape
        Tk = kv.shape[1]
        q = self.q_proj(x).view(B, Tq, self.H, self.Dh).transpose(1, 2) * self.scaling
        k = self.k_proj(kv).view(B, Tk, self.H, self.Dh).transpose(1, 2)
        v = self.v_proj(kv).view(B, Tk, self.H, self.Dh).transpose(1, 2)
        s = q @ k.transpose(2, 3)
        if bias is not None:
            s = s + bias
        if key_padding is not None:
            s = s.masked_fill(key_padding[:, None, None, :], float("-inf"))
        if causal:
            s = s.masked_fill(torch.ones(Tq, Tk, dtype=torch.bool).triu(1 + Tk - Tq), float("-inf"))
        o = torch.softmax(s, -1) @ v
        o = o * self.c_attn.view(1, self.H, 1, 1)
        return self.out_proj(o.transpose(1, 2).reshape(B, Tq, d))


class Layer(nn.Module):
    def __init__(self, d, H, ffn, cross, factor):
        super().__init__()
        self.self_attn = MHA(d, H, factor)
        self.self_attn_layer_norm, self.self_attn_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.cross = cross
        if cross:
            self.encoder_attn = MHA(d, H, factor)
            self.encoder_attn_layer_norm, self.cross_attn_ln = nn.LayerNorm(d), nn.LayerNorm(d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.ffn_layernorm = nn.LayerNorm(ffn)

    def forward(self, x, bias, pad, causal, enc=None, cbias=None, cpad=None):
        h = self.self_attn_layer_norm(x)
        x = x + self.self_attn_ln(self.self_attn(h, h, bias, pad, causal))
        if self.cross:
            h = self.encoder_attn_layer_norm(x)
            x = x + self.cross_attn_ln(self.encoder_attn(h, enc, cbias, cpad))
        h = self.ffn_layernorm(F.gelu(self.fc1(self.final_layer_norm(x))))
        return x + self.fc2(h)


class Bottleneck(nn.Module):
    def __init__(self, inp, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(inp, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, 4 * planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(4 * planes)
        self.downsample = None
        if stride != 1 or inp != 4 * planes:
            self.downsample = nn.Sequential(nn.Conv2d(inp, 4 * planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(4 * planes))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = F.relu(self.bn2(self.conv2(h)))
        h = self.bn3(self.conv3(h))
        return F.relu(h + (self.downsample(x) if self.downsample is not None else x))


class ResNet(nn.Module):
    def __init__(self, blocks, w):
        super().__init__()
        self.conv1 = nn.Conv2d(3, w, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(w)
        inp = w
        for s in range(3):
            planes, layer = w << s, []
            for i in range(blocks[s]):
                layer.append(Bottleneck(inp, planes, 2 if (s > 0 and i == 0) else 1))
                inp = 4 * planes
            setattr(self, f"layer{s + 1}", nn.Sequential(*layer))

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 3, 2, 1)
        return self.layer3(self.layer2(self.layer1(x)))


def heads(x, H):  # [1, T, d] -> [1, H, T, Dh]
    return x.view(x.shape[0], x.shape[1], H, -1).transpose(1, 2)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, H, L = c["d_model"], c["heads"], c["encoder_layers"]
        self.type_embedding = nn.Embedding(4, d)
        self.layernorm_embedding = nn.LayerNorm(d)
        self.embed_images = ResNet(c["resnet_blocks"], c["resnet_width"])
        self.image_proj = nn.Linear(16 * c["resnet_width"], d)
        self.patch_layernorm_embedding = nn.LayerNorm(d)
        self.embed_image_positions = nn.Embedding(IMAGE_BUCKET ** 2 + 1, d)
        self.image_pos_ln = nn.LayerNorm(d)
        self.embed_positions = nn.Embedding(MAX_POS + 2, d)
        self.pos_ln = nn.LayerNorm(d)
        self.pos_q_linear, self.pos_k_linear = nn.Linear(d, d), nn.Linear(d, d)
        self.token_rel_pos_table_list = nn.ModuleList(nn.Embedding(2 * TOKEN_BUCKET - 1, H) for _ in range(L))
        self.image_rel_pos_table_list = nn.ModuleList(nn.Embedding(IMAGE_NUM_REL, H) for _ in range(L))
        self.layers = nn.ModuleList(Layer(d, H, c["ffn_dim"], False, c["attn_scale_factor"]) for _ in range(L))
        self.layer_norm = nn.LayerNorm(d)
        self.H, self.scaling = H, (d // H * c["attn_scale_factor"]) ** -0.5

    def forward(self, embed_tokens, images, image_present, src_tokens, src_mask):
        B, T = src_tokens.shape
        f = self.embed_images(images)
        h, w = f.shape[2], f.shape[3]
        P = h * w
        img = self.image_proj(f.flatten(2).transpose(1, 2)) + self.type_embedding.weight[1]
        img = self.patch_layernorm_embedding(img)
        ids = (torch.arange(w)[None, :].expand(h, w) + torch.arange(h)[:, None] * IMAGE_BUCKET + 1).flatten()
        ipos = self.image_pos_ln(self.embed_image_positions(ids))
        txt = self.layernorm_embedding(embed_tokens(src_tokens) + self.type_embedding.weight[0])
        tpos = self.pos_ln(self.embed_positions(torch.arange(T)))
        x = torch.cat([img, txt], 1)
        pad = torch.cat([(~image_present)[:, None].expand(B, P), ~src_mask], 1)
        pos = torch.cat([ipos, tpos], 0)[None]
        abs_bias = (heads(self.pos_q_linear(pos), self.H) * self.scaling) @ heads(self.pos_k_linear(pos), self.H).transpose(2, 3)
        img_rp = IMAGE_RP[ids][:, ids]
        for l, layer in enumerate(self.layers):
            bias = abs_bias.clone()
            bias[:, :, P:, P:] += self.token_rel_pos_table_list[l](TOKEN_RP[:T, :T]).permute(2, 0, 1)[None]
            bias[:, :, :P, :P] += self.image_rel_pos_table_list[l](img_rp).permute(2, 0, 1)[None]
            x = layer(x, bias, pad, False)
        return self.layer_norm(x), pad, pos


class Decoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, H, L = c["d_model"], c["heads"], c["decoder_layers"]
        self.layernorm_embedding = nn.LayerNorm(d)
        self.embed_positions = nn.Embedding(MAX_POS + 2, d)
        self.pos_ln = nn.LayerNorm(d)
        self.self_pos_q_linear, self.self_pos_k_linear = nn.Linear(d, d), nn.Linear(d, d)
        self.cross_pos_q_linear, self.cross_pos_k_linear = nn.Linear(d, d), nn.Linear(d, d)
        self.token_rel_pos_table_list = nn.ModuleList(nn.Embedding(2 * TOKEN_BUCKET - 1, H) for _ in range(L))
        self.layers = nn.ModuleList(Layer(d, H, c["ffn_dim"], True, c["attn_scale_factor"]) for _ in range(L))
        self.layer_norm = nn.LayerNorm(d)
        self.H, self.scaling = H, (d // H * c["attn_scale_factor"]) ** -0.5

    def forward(self, embed_tokens, enc, enc_pad, src_pos, prev):
        T = prev.shape[1]
        x = self.layernorm_embedding(embed_tokens(prev))
        tp = self.pos_ln(self.embed_positions(torch.arange(T)))[None]
        H, s = self.H, self.scaling
        self_abs = (heads(self.self_pos_q_linear(tp), H) * s) @ heads(self.self_pos_k_linear(tp), H).transpose(2, 3)
        cross_abs = (heads(self.cross_pos_q_linear(tp), H) * s) @ heads(self.cross_pos_k_linear(src_pos), H).transpose(2, 3)
        for l, layer in enumerate(self.layers):
            bias = self_abs + self.token_rel_pos_table_list[l](TOKEN_RP[:T, :T]).permute(2, 0, 1)[None]
            x = layer(x, bias, None, True, enc, cross_abs, enc_pad)
        return self.layer_norm(x) @ embed_tokens.weight.t()


class Ofa(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c["vocab_size"], c["d_model"])
        self.encoder = Encoder(c)
        self.decoder = Decoder(c)

    def forward(self, b):
        enc, pad, pos = self.encoder(self.embed_tokens, b["images"], b["image_present"], b["src_tokens"], b["src_mask"])
        return self.decoder(self.embed_tokens, enc, pad, pos, b["prev_tokens"])


def smoothed_ce_sum(logits, target, mask, eps):
    """Label smoothing spread over the whole vocabulary; summed over scored tokens."""
    lp = torch.log_softmax(logits, -1)
    nll = -lp.gather(-1, target[..., None])[..., 0]
    smooth = -lp.mean(-1)
    per = (1 - eps) * nll + eps * smooth
    keep = mask & (target != 0)
    return (per * keep).sum(), int(keep.sum())


def randomize(model, g):
    """Seeded random weights: nothing at its default, so every parameter matters."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.BatchNorm2d, nn.GroupNorm)):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                if isinstance(m, nn.BatchNorm2d):
                    m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                    m.running_var.copy_(1 + 0.1 * torch.rand(m.running_var.shape, generator=g))
            elif isinstance(m, nn.Conv2d):
                fan_out = m.weight.shape[0] * m.weight.shape[2] * m.weight.shape[3]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(m.weight.shape[1]))
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(0.2 * torch.randn(m.weight.shape, generator=g))
            elif isinstance(m, MHA):
                m.c_attn.copy_(1 + 0.2 * torch.randn(m.c_attn.shape, generator=g))


def state(model):
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/ofa_micro_ref.safetensors"
    g = torch.Generator().manual_seed(1234)
    model = Ofa(CFG)
    randomize(model, g)
    with torch.no_grad():  # the C++ side reads f32: start both from the same rounded values
        for v in model.state_dict().values():
            if v.is_floating_point():
                v.copy_(v.float().double())
    model.train()
    params_before = {k: v.detach().clone() for k, v in state(model).items()}

    B, V = 2, CFG["vocab_size"]
    batch = {
        "images": torch.randn(B, 3, 64, 64, generator=g).float().double(),
        "image_present": torch.tensor([True, False]),
        "src_tokens": torch.tensor([[1, 17, 23, 9, 40, 2], [1, 33, 12, 2, 0, 0]]),
        "src_mask": torch.tensor([[True] * 6, [True] * 4 + [False] * 2]),
        "prev_tokens": torch.tensor([[1, 50, 51, 52, 53], [1, 60, 61, 0, 0]]),
        "target": torch.tensor([[50, 51, 52, 53, 2], [60, 61, 2, 0, 0]]),
        # the first target token of row 0 is a no_loss prefix: fed, not scored
        "loss_mask": torch.tensor([[False, True, True, True, True], [True, True, True, False, False]]),
    }
    assert int(batch["target"].max()) < V
    logits = model(batch)
    loss, sample_size = smoothed_ce_sum(logits, batch["target"], batch["loss_mask"], LABEL_SMOOTHING)
    loss.backward()

    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = {}
    for k, v in params_before.items():
        tensors["param/" + k] = f32(v)
    for k, v in batch.items():
        tensors["input/" + k] = v.numpy() if v.dtype != torch.float64 else f32(v)
    tensors["out/logits"] = f32(logits)
    tensors["out/loss"] = np.array(loss.item(), dtype=np.float32)
    for k, p in model.named_parameters():
        assert p.grad is not None, k
        tensors["grad/" + k] = f32(p.grad)
    for k, v in state(model).items():
        if "running_" in k:
            tensors["buffer/" + k] = f32(v)
    meta = {"config": json.dumps(CFG), "sample_size": str(sample_size), "label_smoothing": str(LABEL_SMOOTHING),
            "loss_f64": repr(loss.item()), "producer": "tools/ref/ofa_ref.py torch " + torch.__version__}
    save_safetensors(out_path, tensors, meta)
    print(f"wrote {out_path}: {len(tensors)} tensors, loss {loss.item():.6f}, sample size {sample_size}, "
          f"{os.path.getsize(out_path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
