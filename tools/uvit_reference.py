#!/usr/bin/python3
"""A PyTorch U-ViT written from the paper ("All are Worth Words: A ViT Backbone for Diffusion Models",
Bao et al., CVPR 2023) and the structure of baofff/U-ViT's libs/uvit.py, for ditflow's golden tests and
checkpoint conversion; and a DiT with U-ViT's long skips (`DiTSkips`), the ablation that measures the
skips alone.

U-ViT: every input is a token, [label, time, patches] + a learned pos_embed; ⌊depth/2⌋ in_blocks, one
mid_block, ⌊depth/2⌋ out_blocks, each out_block first mixing its input with the matching in_block's
output: x = skip_linear(cat([x, skip], -1)). Pre-LN blocks with affine LayerNorms (eps 1e-5), attention
with qkv without bias, an MLP; a final LayerNorm, decoder_pred, unpatchify (p1 p2 C), and a 3×3 conv.
The time token is the D-wide sinusoidal embedding of t (time_embed is the identity, as in the official
ImageNet-latent configs). State-dict names are the official ones, so official checkpoints of the same
settings load with strict=True.

Deviation kept on both sides: the MLP's GELU is the tanh form (ditflow has only DiT's GELU); timm's Mlp in
the official code uses the exact erf form.

Run with Debian's system python: /usr/bin/python3.
"""
import math
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import DiT, Mlp  # noqa: E402


def timestep_embedding(t, dim, max_period=10000):
    """Sinusoidal embedding [cos | sin] of (possibly fractional) timesteps, float32 frequencies."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


class UAttention(nn.Module):
    """Multi-head self-attention; qkv without bias; the qkv features split as (3, heads, head_dim)."""

    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, L, C = x.shape
        H = self.num_heads
        q, k, v = self.qkv(x).reshape(B, L, 3, H, C // H).permute(2, 0, 3, 1, 4)
        a = ((q @ k.transpose(-2, -1)) * (C // H) ** -0.5).softmax(dim=-1)
        return self.proj((a @ v).transpose(1, 2).reshape(B, L, C))


class UBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0, skip=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = UAttention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x, skip=None):
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch_size, in_chans, embed_dim):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class UViT(nn.Module):
    def __init__(self, input_size=32, patch_size=2, in_channels=4, hidden_size=512, depth=12, num_heads=8,
                 mlp_ratio=4.0, num_classes=1000, class_dropout_prob=0.1):
        super().__init__()
        D = hidden_size
        self.in_channels = in_channels
        self.patch_size = patch_size
        self.extras = 2
        num_patches = (input_size // patch_size) ** 2
        # Registration order = the official state-dict order (pos_embed first: a direct parameter).
        self.pos_embed = nn.Parameter(torch.zeros(1, self.extras + num_patches, D))
        self.patch_embed = PatchEmbed(patch_size, in_channels, D)
        self.label_emb = nn.Embedding(num_classes + (1 if class_dropout_prob > 0 else 0), D)
        self.in_blocks = nn.ModuleList([UBlock(D, num_heads, mlp_ratio) for _ in range(depth // 2)])
        self.mid_block = UBlock(D, num_heads, mlp_ratio)
        self.out_blocks = nn.ModuleList([UBlock(D, num_heads, mlp_ratio, skip=True) for _ in range(depth // 2)])
        self.norm = nn.LayerNorm(D)
        self.decoder_pred = nn.Linear(D, patch_size ** 2 * in_channels)
        self.final_layer = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.embed_dim = D

    def unpatchify(self, x):
        p, c = self.patch_size, self.in_channels
        h = w = int(x.shape[1] ** 0.5)
        x = x.reshape(x.shape[0], h, w, p, p, c)
        return torch.einsum("nhwpqc->nchpwq", x).reshape(x.shape[0], c, h * p, w * p)

    def forward(self, x, t, y):
        x = self.patch_embed(x)
        L = x.shape[1]
        time_token = timestep_embedding(t, self.embed_dim).to(x.dtype).unsqueeze(1)
        x = torch.cat([self.label_emb(y).unsqueeze(1), time_token, x], dim=1) + self.pos_embed
        skips = []
        for blk in self.in_blocks:
            x = blk(x)
            skips.append(x)
        x = self.mid_block(x)
        for blk in self.out_blocks:
            x = blk(x, skips.pop())
        x = self.decoder_pred(self.norm(x))
        assert x.shape[1] == self.extras + L
        return self.final_layer(self.unpatchify(x[:, self.extras:]))


class DiTSkips(DiT):
    """An adaLN-Zero (or other) DiT with U-ViT's long skips: blocks i < ⌊d/2⌋ push their output, the last
    ⌊d/2⌋ blocks pop it in reverse order through `blocks.{i}.skip_linear` = Linear(2D, D) on
    cat([h, skip]) before the block (an odd middle block takes no skip)."""

    def __init__(self, **kw):
        super().__init__(**kw)
        d = len(self.blocks)
        D = self.x_embedder.proj.out_channels
        self.half = d // 2
        for i in range(d - self.half, d):
            self.blocks[i].skip_linear = nn.Linear(2 * D, D)

    def forward(self, x, t, y):
        x = self.x_embedder(x) + self.pos_embed
        te = self.t_embedder(t)
        ye = self.y_embedder(y)
        c = te + ye
        cond_seq = None
        if self.block == "in-context":
            x = torch.cat([x, te.unsqueeze(1), ye.unsqueeze(1)], dim=1)
        if self.block == "cross-attention":
            cond_seq = torch.stack([te, ye], dim=1)
        skips = []
        d = len(self.blocks)
        for i, block in enumerate(self.blocks):
            if i >= d - self.half:
                x = block.skip_linear(torch.cat([x, skips.pop()], dim=-1))
            x = block(x, c, cond_seq)
            if i < self.half:
                skips.append(x)
        if self.block == "in-context":
            x = x[:, : self.num_patches]
        return self.unpatchify(self.final_layer(x, c))
