#!/usr/bin/python3
"""A PyTorch MDTv2 written from the paper (Gao et al., "Masked Diffusion Transformer is a Strong Image
Synthesizer", ICCV 2023, and MDTv2) and the structure of sail-sg/MDT's masked_diffusion/models.py, for
ditflow's golden tests and checkpoint conversion: the same modules and state-dict names (relative_position_index is a buffer here
too), and a forward that takes the training mask as an input (ids_keep, ids_restore, mask) instead of
drawing it, so ditflow's Philox-drawn masks can be checked.

Run with Debian's system python: /usr/bin/python3.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from dit_reference import (FinalLayer, LabelEmbedder, Mlp, PatchEmbed, TimestepEmbedder,  # noqa: E402
                           get_2d_sincos_pos_embed, modulate)


class RelativePositionBias(nn.Module):
    """BEiT's relative position bias over a g×g grid: a table [(2g−1)² + 3, heads] indexed by offsets."""

    def __init__(self, g, num_heads):
        super().__init__()
        self.g = g
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * g - 1) ** 2 + 3, num_heads))
        hh, ww = torch.meshgrid(torch.arange(g), torch.arange(g), indexing="ij")
        coords = torch.stack([hh.flatten(), ww.flatten()])  # [2, T]
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (g - 1)  # [T, T, 2]
        self.register_buffer("relative_position_index", rel[:, :, 0] * (2 * g - 1) + rel[:, :, 1])

    def forward(self):
        T = self.g * self.g
        b = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(T, T, -1)
        return b.permute(2, 0, 1)  # [H, T, T]

    def masked(self, ids_keep):
        b = self.forward()  # [H, T, T]
        H = b.shape[0]
        N, K = ids_keep.shape
        b = b.unsqueeze(0).expand(N, -1, -1, -1)
        b = torch.gather(b, 2, ids_keep[:, None, :, None].expand(N, H, K, b.shape[-1]))
        return torch.gather(b, 3, ids_keep[:, None, None, :].expand(N, H, K, K))


class MdtAttention(nn.Module):
    def __init__(self, dim, num_heads, g):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=True)
        self.proj = nn.Linear(dim, dim)
        self.rel_pos_bias = RelativePositionBias(g, num_heads)

    def forward(self, x, ids_keep=None):
        B, L, C = x.shape
        H = self.num_heads
        q, k, v = self.qkv(x).reshape(B, L, 3, H, C // H).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1)) * (C // H) ** -0.5
        a = a + (self.rel_pos_bias() if ids_keep is None else self.rel_pos_bias.masked(ids_keep))
        return self.proj((a.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, L, C))


class MDTBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio, g, skip=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.attn = MdtAttention(dim, num_heads, g)
        self.norm2 = nn.LayerNorm(dim, elementwise_affine=False, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim, 6 * dim))
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x, c, skip=None, ids_keep=None):
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        s1, sc1, g1, s2, sc2, g2 = self.adaLN_modulation(c).chunk(6, dim=1)
        x = x + g1.unsqueeze(1) * self.attn(modulate(self.norm1(x), s1, sc1), ids_keep=ids_keep)
        return x + g2.unsqueeze(1) * self.mlp(modulate(self.norm2(x), s2, sc2))


class MDT(nn.Module):
    def __init__(self, input_size=32, patch_size=2, in_channels=4, hidden_size=1152, depth=28, num_heads=16,
                 mlp_ratio=4.0, class_dropout_prob=0.1, num_classes=1000, learn_sigma=True, decode_layer=4):
        super().__init__()
        D = hidden_size
        self.in_channels = in_channels
        self.out_channels = 2 * in_channels if learn_sigma else in_channels
        self.patch_size = patch_size
        T = (input_size // patch_size) ** 2
        g = int(T ** 0.5)
        # Root parameters first (the state-dict order): pos_embed, decoder_pos_embed, mask_token.
        self.pos_embed = nn.Parameter(torch.zeros(1, T, D))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, T, D))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, D))
        self.x_embedder = PatchEmbed(patch_size, in_channels, D)
        self.t_embedder = TimestepEmbedder(D)
        self.y_embedder = LabelEmbedder(num_classes, D, class_dropout_prob)
        half = (depth - decode_layer) // 2
        self.en_inblocks = nn.ModuleList([MDTBlock(D, num_heads, mlp_ratio, g) for _ in range(half)])
        self.en_outblocks = nn.ModuleList([MDTBlock(D, num_heads, mlp_ratio, g, skip=True) for _ in range(half)])
        self.de_blocks = nn.ModuleList([MDTBlock(D, num_heads, mlp_ratio, g, skip=True)
                                        for _ in range(decode_layer)])
        self.sideblocks = nn.ModuleList([MDTBlock(D, num_heads, mlp_ratio, g)])
        self.final_layer = FinalLayer(D, patch_size, self.out_channels, modulated=True)
        pos = torch.from_numpy(get_2d_sincos_pos_embed(D, g)).float().unsqueeze(0)
        self.pos_embed.data.copy_(pos)
        self.decoder_pos_embed.data.copy_(pos)

    def unpatchify(self, x):
        c, p = self.out_channels, self.patch_size
        h = w = int(x.shape[1] ** 0.5)
        x = torch.einsum("nhwpqc->nchpwq", x.reshape(x.shape[0], h, w, p, p, c))
        return x.reshape(x.shape[0], c, h * p, w * p)

    def side_interpolator(self, x, c, mask, ids_restore):
        N, K, D = x.shape
        tokens = self.mask_token.expand(N, ids_restore.shape[1] - K, D)
        x = torch.cat([x, tokens], dim=1)
        x = torch.gather(x, 1, ids_restore.unsqueeze(-1).expand(-1, -1, D)) + self.decoder_pos_embed
        before = x
        for blk in self.sideblocks:
            x = blk(x, c)
        m = mask.unsqueeze(-1)
        return x * m + (1 - m) * before

    def forward(self, x, t, y, ids_keep=None, ids_restore=None, mask=None):
        """Without a mask: the full model (sampling). With (ids_keep, ids_restore, mask): the training
        branch, the mask given (MDT's random_masking draws it from torch.rand)."""
        x = self.x_embedder(x) + self.pos_embed
        c = self.t_embedder(t) + self.y_embedder(y)
        input_skip = x
        if ids_keep is not None:
            x = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, x.shape[2]))
        skips = []
        for blk in self.en_inblocks:
            x = blk(x, c, ids_keep=ids_keep)
            skips.append(x)
        for blk in self.en_outblocks:
            x = blk(x, c, skip=skips.pop(), ids_keep=ids_keep)
        if ids_keep is not None:
            x = self.side_interpolator(x, c, mask, ids_restore)
        else:
            x = x + self.decoder_pos_embed
        for blk in self.de_blocks:
            x = blk(x, c, skip=input_skip)
        return self.unpatchify(self.final_layer(x, c))


def random_masking(noise, ratio):
    """MDT's random_masking from given uniforms: noise [N, L]; returns ids_keep, ids_restore, mask."""
    N, L = noise.shape
    keep = max(1, int(L * (1 - ratio)))
    ids_shuffle = torch.argsort(noise, dim=1)
    ids_restore = torch.argsort(ids_shuffle, dim=1)
    mask = torch.ones(N, L)
    mask[:, :keep] = 0
    return ids_shuffle[:, :keep], ids_restore, torch.gather(mask, 1, ids_restore)
