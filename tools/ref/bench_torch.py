#!/usr/bin/python3
"""PyTorch side of build/bench_models: the same two training steps at
torch.set_num_threads(2), split into forward (model + loss), backward and optimizer.

  /usr/bin/python3 tools/ref/bench_torch.py [ofa|gpt2|all] [--steps N]

  ofa   OFA-tiny (tools/ref/ofa_ref.py's model at the tiny size): B=8, 128x128 images,
        source text 32, target 16, vocab 59457, label smoothing 0.1, AdamW
  gpt2  GPT-2-124M shape (tools/ref/gato_ref.py's blocks): B=4, T=64, vocab 50257, AdamW

Run it as shipped and tuned (the allocator's page faults and the OpenMP/BLAS threads'
spinning cost PyTorch about half its speed on 2 cores):
  MALLOC_MMAP_THRESHOLD_=4294967296 MALLOC_TRIM_THRESHOLD_=4294967296 MALLOC_TOP_PAD_=1073741824 \\
  OMP_WAIT_POLICY=PASSIVE OPENBLAS_NUM_THREADS=1 /usr/bin/python3 tools/ref/bench_torch.py
Dropout is off on both sides (the reference models have none; the C++ bench sets 0).
"""
import os
import resource
import statistics
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gato_ref  # noqa: E402
import ofa_ref  # noqa: E402

torch.set_default_dtype(torch.float32)  # the reference scripts set float64 on import
torch.set_num_threads(2)


class GPT2(nn.Module):
    def __init__(self, V=50257, T=1024, d=768, L=12, H=12):
        super().__init__()
        self.embed_tokens = nn.Embedding(V, d)
        self.embed_positions = nn.Embedding(T, d)
        self.layers = nn.ModuleList(gato_ref.Block(d, H, 4 * d) for _ in range(L))
        self.layer_norm = nn.LayerNorm(d)

    def forward(self, ids):
        x = self.embed_tokens(ids) + self.embed_positions(torch.arange(ids.shape[1]))
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x) @ self.embed_tokens.weight.t()


def time_steps(steps, forward, opt):
    f, b, o = [], [], []
    loss = None
    for s in range(steps + 1):
        t0 = time.perf_counter()
        loss = forward()
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if s > 0:
            f.append(t1 - t0), b.append(t2 - t1), o.append(t3 - t2)
    fm, bm, om = statistics.median(f), statistics.median(b), statistics.median(o)
    return fm, bm, om, fm + bm + om, loss.item()


def report(name, r, gflop=None):
    fm, bm, om, tot, loss = r
    print(f"{name:10s} step {tot:.3f} s = forward {fm:.3f} + backward {bm:.3f} + optimizer {om:.3f}   (loss {loss:.3f})")
    if gflop:
        print(f"{name:10s} {gflop:.1f} GFLOP/step -> {gflop / tot:.1f} GFLOP/s")
    print(f"{name:10s} process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def bench_ofa(steps):
    cfg = dict(ofa_ref.CFG, d_model=256, ffn_dim=1024, heads=4, encoder_layers=4, decoder_layers=4,
               resnet_blocks=[3, 4, 6], resnet_width=64, vocab_size=59457)
    m = ofa_ref.Ofa(cfg)
    m.train()
    g = torch.Generator().manual_seed(1)
    B, Ts, Tt, V = 8, 32, 16, cfg["vocab_size"]
    tgt = 6 + (torch.arange(B * Tt) * 104729) % (V - 6)
    tgt = tgt.view(B, Tt)
    batch = {
        "images": torch.rand(B, 3, 128, 128, generator=g) * 2 - 1,
        "image_present": torch.ones(B, dtype=torch.bool),
        "src_tokens": (6 + (torch.arange(B * Ts) * 7919) % (V - 6)).view(B, Ts),
        "src_mask": torch.ones(B, Ts, dtype=torch.bool),
        "prev_tokens": torch.cat([torch.ones(B, 1, dtype=torch.long), tgt[:, :-1]], 1),
    }
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)

    def forward():
        logits = m(batch)
        return F.cross_entropy(logits.reshape(-1, V), tgt.reshape(-1), label_smoothing=0.1, reduction="sum")

    print(f"OFA-tiny (PyTorch {torch.__version__}, {torch.get_num_threads()} threads): "
          f"{sum(p.numel() for p in m.parameters()) / 1e6:.1f}M parameters")
    report("ofa-tiny", time_steps(steps, forward, opt))


def bench_gpt2(steps):
    m = GPT2()
    m.train()
    B, T, V = 4, 64, 50257
    ids = ((torch.arange(B * T) * 7919 + 13) % V).view(B, T)
    opt = torch.optim.AdamW(m.parameters(), lr=1e-4, weight_decay=0.01)

    def forward():
        logits = m(ids)
        return F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1), reduction="sum")

    print(f"GPT-2-124M shape (PyTorch): {sum(p.numel() for p in m.parameters()) / 1e6:.1f}M parameters")
    report("gpt2-124m", time_steps(steps, forward, opt), 191.6)


def main():
    which, steps = "all", 3
    args = sys.argv[1:]
    while args:
        a = args.pop(0)
        if a == "--steps":
            steps = int(args.pop(0))
        else:
            which = a
    if which in ("ofa", "all"):
        bench_ofa(steps)
    if which in ("gpt2", "all"):
        bench_gpt2(steps)


if __name__ == "__main__":
    main()
