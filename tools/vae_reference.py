#!/usr/bin/python3
"""AutoencoderKL (the Stable Diffusion VAE) in plain PyTorch, written from diffusers' code so that the module
tree, and therefore the state-dict names, are diffusers' own (diffusers is not installable here):

* src/diffusers/models/autoencoders/autoencoder_kl.py `AutoencoderKL` (encode: encoder → quant_conv →
  DiagonalGaussianDistribution; decode: post_quant_conv → decoder),
* src/diffusers/models/autoencoders/vae.py `Encoder`, `Decoder`, `DiagonalGaussianDistribution`,
* src/diffusers/models/unets/unet_2d_blocks.py `DownEncoderBlock2D`, `UpDecoderBlock2D`, `UNetMidBlock2D`
  (temb None, one attention, `attention_head_dim` = channels, so one head),
* src/diffusers/models/resnet.py `ResnetBlock2D` (no time embedding, output_scale_factor 1, eps 1e-6),
  `Downsample2D` (padding 0: F.pad(x, (0, 1, 0, 1)) then a stride-2 3x3 conv), `Upsample2D` (nearest 2x, 3x3
  conv),
* src/diffusers/models/attention_processor.py `Attention` + `AttnProcessor` (group_norm first, to_q/to_k/to_v,
  softmax(q k^T / sqrt(d)) v, to_out.0 (+ dropout to_out.1), residual, rescale_output_factor 1).

Defaults are the SD VAE's (block_out_channels (128, 256, 512, 512), layers_per_block 2, latent_channels 4,
norm_num_groups 32, scaling_factor 0.18215).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResnetBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, groups=32, eps=1e-6):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=1, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(0.0)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1)
        self.nonlinearity = nn.SiLU()
        self.conv_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, input_tensor):
        h = self.conv1(self.nonlinearity(self.norm1(input_tensor)))
        h = self.conv2(self.dropout(self.nonlinearity(self.norm2(h))))
        if self.conv_shortcut is not None:
            input_tensor = self.conv_shortcut(input_tensor)
        return input_tensor + h  # / output_scale_factor (1.0)


class Downsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, h):
        return self.conv(F.pad(h, (0, 1, 0, 1), mode="constant", value=0))


class Upsample2D(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, h):
        return self.conv(F.interpolate(h, scale_factor=2.0, mode="nearest"))


class Attention(nn.Module):
    """diffusers' Attention with heads = 1, dim_head = channels, bias, residual connection."""

    def __init__(self, channels, groups=32, eps=1e-6):
        super().__init__()
        self.group_norm = nn.GroupNorm(groups, channels, eps=eps, affine=True)
        self.to_q = nn.Linear(channels, channels, bias=True)
        self.to_k = nn.Linear(channels, channels, bias=True)
        self.to_v = nn.Linear(channels, channels, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(channels, channels, bias=True), nn.Dropout(0.0)])
        self.scale = channels ** -0.5

    def forward(self, hidden_states):
        residual = hidden_states
        b, c, h, w = hidden_states.shape
        hs = self.group_norm(hidden_states).view(b, c, h * w).transpose(1, 2)
        q, k, v = self.to_q(hs), self.to_k(hs), self.to_v(hs)
        probs = torch.softmax(torch.baddbmm(torch.empty(b, h * w, h * w, dtype=q.dtype), q, k.transpose(-1, -2),
                                            beta=0, alpha=self.scale), dim=-1)
        hs = torch.bmm(probs, v)
        hs = self.to_out[1](self.to_out[0](hs))
        hs = hs.transpose(-1, -2).reshape(b, c, h, w)
        return hs + residual


class UNetMidBlock2D(nn.Module):
    def __init__(self, channels, groups=32, eps=1e-6):
        super().__init__()
        self.attentions = nn.ModuleList([Attention(channels, groups, eps)])
        self.resnets = nn.ModuleList([ResnetBlock2D(channels, channels, groups, eps),
                                      ResnetBlock2D(channels, channels, groups, eps)])

    def forward(self, h):
        h = self.resnets[0](h)
        for attn, resnet in zip(self.attentions, self.resnets[1:]):
            h = resnet(attn(h))
        return h


class DownEncoderBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, groups, add_downsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups)
                                      for i in range(num_layers)])
        self.downsamplers = nn.ModuleList([Downsample2D(out_channels)]) if add_downsample else None

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        if self.downsamplers is not None:
            for d in self.downsamplers:
                h = d(h)
        return h


class UpDecoderBlock2D(nn.Module):
    def __init__(self, in_channels, out_channels, num_layers, groups, add_upsample):
        super().__init__()
        self.resnets = nn.ModuleList([ResnetBlock2D(in_channels if i == 0 else out_channels, out_channels, groups)
                                      for i in range(num_layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels)]) if add_upsample else None

    def forward(self, h):
        for r in self.resnets:
            h = r(h)
        if self.upsamplers is not None:
            for u in self.upsamplers:
                h = u(h)
        return h


class Encoder(nn.Module):
    def __init__(self, in_channels, out_channels, block_out_channels, layers_per_block, norm_num_groups):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], 3, stride=1, padding=1)
        self.down_blocks = nn.ModuleList([])
        output_channel = block_out_channels[0]
        for i, c in enumerate(block_out_channels):
            input_channel = output_channel
            output_channel = c
            is_final = i == len(block_out_channels) - 1
            self.down_blocks.append(DownEncoderBlock2D(input_channel, output_channel, layers_per_block,
                                                       norm_num_groups, not is_final))
        self.mid_block = UNetMidBlock2D(block_out_channels[-1], norm_num_groups)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[-1], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[-1], 2 * out_channels, 3, padding=1)  # double_z

    def forward(self, x):
        h = self.conv_in(x)
        for b in self.down_blocks:
            h = b(h)
        h = self.mid_block(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


class Decoder(nn.Module):
    def __init__(self, in_channels, out_channels, block_out_channels, layers_per_block, norm_num_groups):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[-1], 3, stride=1, padding=1)
        self.mid_block = UNetMidBlock2D(block_out_channels[-1], norm_num_groups)
        self.up_blocks = nn.ModuleList([])
        rev = list(reversed(block_out_channels))
        output_channel = rev[0]
        for i, c in enumerate(rev):
            prev_output_channel = output_channel
            output_channel = c
            is_final = i == len(block_out_channels) - 1
            self.up_blocks.append(UpDecoderBlock2D(prev_output_channel, output_channel, layers_per_block + 1,
                                                   norm_num_groups, not is_final))
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, block_out_channels[0], eps=1e-6)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(block_out_channels[0], out_channels, 3, padding=1)

    def forward(self, z):
        h = self.mid_block(self.conv_in(z))
        for b in self.up_blocks:
            h = b(h)
        return self.conv_out(self.conv_act(self.conv_norm_out(h)))


class DiagonalGaussianDistribution:
    def __init__(self, parameters):
        self.mean, self.logvar = torch.chunk(parameters, 2, dim=1)
        self.logvar = torch.clamp(self.logvar, -30.0, 20.0)
        self.std = torch.exp(0.5 * self.logvar)
        self.var = torch.exp(self.logvar)

    def sample(self, noise):
        return self.mean + self.std * noise

    def mode(self):
        return self.mean

    def kl(self):
        return 0.5 * torch.sum(torch.pow(self.mean, 2) + self.var - 1.0 - self.logvar, dim=[1, 2, 3])


class AutoencoderKL(nn.Module):
    def __init__(self, in_channels=3, out_channels=3, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
                 latent_channels=4, norm_num_groups=32, scaling_factor=0.18215):
        super().__init__()
        self.encoder = Encoder(in_channels, latent_channels, block_out_channels, layers_per_block, norm_num_groups)
        self.decoder = Decoder(latent_channels, out_channels, block_out_channels, layers_per_block, norm_num_groups)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1)
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1)
        self.scaling_factor = scaling_factor

    def encode(self, x):
        return DiagonalGaussianDistribution(self.quant_conv(self.encoder(x)))

    def decode(self, z):
        return self.decoder(self.post_quant_conv(z))
