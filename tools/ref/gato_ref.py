#!/usr/bin/python3
"""PyTorch reference of the Gato micro model (models/gato.h), written from SPEC section 2/3
and the Gato paper, for tests/test_models.cpp.

One batch of two sequences, float64, seeded random weights (nothing at its default):
  row 0: a text prompt, an image as 2x2 patches (Gato patch embedding + row/column
         position embeddings), then text tokens (scored)
  row 1: control data: two timesteps of [observation tokens (local positions 0..2),
         separator, action token (scored)]
Writes tests/data/gato_micro_ref.safetensors with param/, input/, out/logits, out/loss
(next-token cross-entropy summed over text and action targets) and grad/ entries.
Run: /usr/bin/python3 tools/ref/gato_ref.py
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

CFG = dict(model="gato", name="micro-ref", vocab_size=64, d_model=32, heads=2, layers=2, ffn_dim=64,
           max_positions=16, patches=True, patch_size=16, patch_channels=4, patch_groups=2, patch_pos_bins=128,
           max_local_positions=16, dropout=0.0, attention_dropout=0.0, drop_path_rate=0.0, gelu_tanh=True, seed=1)


class Attention(nn.Module):
    def __init__(self, d, H):
        super().__init__()
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))
        self.H, self.Dh = H, d // H

    def forward(self, x):
        B, T, d = x.shape
        q, k, v = (p(x).view(B, T, self.H, self.Dh).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        s = (q @ k.transpose(2, 3)) / math.sqrt(self.Dh)
        s = s.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        return self.out_proj((torch.softmax(s, -1) @ v).transpose(1, 2).reshape(B, T, d))


class Block(nn.Module):  # GPT-2's pre-LN block
    def __init__(self, d, H, ffn):
        super().__init__()
        self.self_attn = Attention(d, H)
        self.self_attn_layer_norm, self.final_layer_norm = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x):
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x)), approximate="tanh"))


class PatchEmbed(nn.Module):  # one ResNet-v2 block per patch, then a linear map
    def __init__(self, P, C, G, d):
        super().__init__()
        self.conv_in = nn.Conv2d(3, C, 3, 1, 1)
        self.norm1, self.norm2 = nn.GroupNorm(G, C), nn.GroupNorm(G, C)
        self.conv1, self.conv2 = nn.Conv2d(C, C, 3, 1, 1), nn.Conv2d(C, C, 3, 1, 1)
        self.proj = nn.Linear(C * P * P, d)

    def forward(self, x):
        h = self.conv_in(x)
        h = h + self.conv2(F.gelu(self.norm2(self.conv1(F.gelu(self.norm1(h))))))
        return self.proj(h.flatten(1))


class Gato(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["d_model"]
        self.embed_tokens = nn.Embedding(c["vocab_size"], d)
        self.embed_positions = nn.Embedding(c["max_positions"], d)
        self.patch_embed = PatchEmbed(c["patch_size"], c["patch_channels"], c["patch_groups"], d)
        self.patch_row_embedding = nn.Embedding(c["patch_pos_bins"], d)
        self.patch_col_embedding = nn.Embedding(c["patch_pos_bins"], d)
        self.local_pos_embedding = nn.Embedding(c["max_local_positions"], d)
        self.layers = nn.ModuleList(Block(d, c["heads"], c["ffn_dim"]) for _ in range(c["layers"]))
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, b):
        tokens, pm, lp = b["tokens"], b["patch_mask"], b["local_pos"]
        T = tokens.shape[1]
        x = self.embed_tokens(torch.where(pm, torch.zeros_like(tokens), tokens)).clone()
        pe = self.patch_embed(b["patches"]) + self.patch_row_embedding(b["patch_row"]) + \
            self.patch_col_embedding(b["patch_col"])
        x[pm] = pe  # row-major over (b, t), as the C++ side
        x = x + self.local_pos_embedding(lp.clamp(min=0)) * (lp >= 0)[..., None]
        x = x + self.embed_positions(torch.arange(T))
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x) @ self.embed_tokens.weight.t()


def randomize(model, g):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.LayerNorm, nn.GroupNorm)):
                m.weight.copy_(1 + 0.1 * torch.randn(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.Conv2d):
                fan_out = m.weight.shape[0] * m.weight.shape[2] * m.weight.shape[3]
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * math.sqrt(2.0 / fan_out))
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.Linear):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) / math.sqrt(m.weight.shape[1]))
                m.bias.copy_(0.05 * torch.randn(m.bias.shape, generator=g))
            elif isinstance(m, nn.Embedding):
                m.weight.copy_(0.2 * torch.randn(m.weight.shape, generator=g))
        for v in model.state_dict().values():  # the C++ side reads f32
            v.copy_(v.float().double())


def main():
    out_path = sys.argv[1] if len(sys.argv) > 1 else "tests/data/gato_micro_ref.safetensors"
    g = torch.Generator().manual_seed(4321)
    model = Gato(CFG)
    randomize(model, g)
    SEP = 5
    # row 0: <bos> 20 21 | 4 patches | 30 31 32 <eos> <pad> ; row 1: two control timesteps
    tokens = torch.tensor([[1, 20, 21, 0, 0, 0, 0, 30, 31, 32, 2, 0],
                           [40, 41, 42, SEP, 50, 43, 44, 45, SEP, 51, 2, 0]])
    patch_mask = torch.zeros(2, 12, dtype=torch.bool)
    patch_mask[0, 3:7] = True
    local_pos = torch.tensor([[-1] * 12, [0, 1, 2, -1, -1, 0, 1, 2, -1, -1, -1, -1]])
    loss_mask = torch.tensor([[False, False, False, False, False, False, False, True, True, True, True, False],
                              [False, False, False, False, True, False, False, False, False, True, True, False]])
    batch = {
        "tokens": tokens, "patch_mask": patch_mask, "local_pos": local_pos, "loss_mask": loss_mask,
        # pixels in [-1, 1] / sqrt(16), as tasks/image.h gato_patches gives them
        "patches": (torch.rand(4, 3, 16, 16, generator=g) * 2 - 1).div(4).float().double(),
        "patch_row": torch.tensor([31, 32, 95, 96]), "patch_col": torch.tensor([31, 96, 32, 95]),
    }
    logits = model(batch)
    target = tokens[:, 1:]
    scored = loss_mask[:, 1:] & ~patch_mask[:, 1:] & (target != 0)
    nll = -torch.log_softmax(logits[:, :-1], -1).gather(-1, target[..., None])[..., 0]
    loss = (nll * scored).sum()
    loss.backward()

    f32 = lambda t: t.detach().to(torch.float32).numpy()
    tensors = {"param/" + k: f32(v) for k, v in model.state_dict().items()}
    for k, v in batch.items():
        tensors["input/" + k] = f32(v) if v.is_floating_point() else v.numpy()
    tensors["out/logits"] = f32(logits)
    tensors["out/loss"] = np.array(loss.item(), dtype=np.float32)
    for k, p in model.named_parameters():
        tensors["grad/" + k] = f32(p.grad)
    meta = {"config": json.dumps(CFG), "sample_size": str(int(scored.sum())), "loss_f64": repr(loss.item()),
            "producer": "tools/ref/gato_ref.py torch " + torch.__version__}
    save_safetensors(out_path, tensors, meta)
    print(f"wrote {out_path}: {len(tensors)} tensors, loss {loss.item():.6f}, sample size {int(scored.sum())}, "
          f"{os.path.getsize(out_path) / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
