#!/usr/bin/python3
"""The FID Inception-v3 in PyTorch, as pytorch-fid builds it (src/pytorch_fid/inception.py), for the golden
fixtures (tools/golden_inception.py) and the weight converter (tools/convert_inception_checkpoint.py).
pytorch-fid is not installable here, so its patched blocks are re-implemented below from its source:

* `fid_inception_v3()`: torchvision's `inception_v3(num_classes=1008, aux_logits=False, weights=None,
  init_weights=False)` with Mixed_5b/5c/5d -> FIDInceptionA(192/256/288, pool_features 32/64/64),
  Mixed_6b-6e -> FIDInceptionC(768, channels_7x7 128/160/160/192), Mixed_7b -> FIDInceptionE_1(1280),
  Mixed_7c -> FIDInceptionE_2(2048);
* FIDInceptionA, FIDInceptionC, FIDInceptionE_1: the pool branch is
  F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False) (TF's average pool ignores the padding);
* FIDInceptionE_2: the pool branch is F.max_pool2d(x, 3, stride=1, padding=1);
* `pool3()`: pytorch-fid's `InceptionV3(output_blocks=[3], resize_input=True, normalize_input=True)`
  forward: F.interpolate(size=(299, 299), mode="bilinear", align_corners=False), 2x - 1, blocks 0-3
  (Conv2d_1a..2b, max pool 3/2, Conv2d_3b, Conv2d_4a, max pool 3/2, Mixed_5b..Mixed_7c, adaptive average
  pool), flattened to [N, 2048].

Run with Debian's system Python (torch 1.13, torchvision 0.14): /usr/bin/python3.
"""
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import inception as tvi

FID_WEIGHTS_URL = (
    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth"
)


class FIDInceptionA(tvi.InceptionA):
    """InceptionA block patched for FID computation."""

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch5x5 = self.branch5x5_2(self.branch5x5_1(x))
        branch3x3dbl = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        # TF's average pool does not count the padded zeros.
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch5x5, branch3x3dbl, branch_pool], 1)


class FIDInceptionC(tvi.InceptionC):
    """InceptionC block patched for FID computation."""

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        branch7x7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b = self.branch7x7dbl_1(x)
        b = self.branch7x7dbl_2(b)
        b = self.branch7x7dbl_3(b)
        b = self.branch7x7dbl_4(b)
        branch7x7dbl = self.branch7x7dbl_5(b)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch7x7, branch7x7dbl, branch_pool], 1)


class FIDInceptionE_1(tvi.InceptionE):
    """First InceptionE block patched for FID computation (average pool without the padding)."""

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        branch_pool = F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


class FIDInceptionE_2(tvi.InceptionE):
    """Second InceptionE block patched for FID computation (max pool in the pool branch)."""

    def forward(self, x):
        branch1x1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        branch3x3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        branch3x3dbl = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        # The FID Inception uses max pooling here.
        branch_pool = F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        branch_pool = self.branch_pool(branch_pool)
        return torch.cat([branch1x1, branch3x3, branch3x3dbl, branch_pool], 1)


def fid_inception_v3():
    """pytorch-fid's fid_inception_v3() without loading weights: torchvision's model with the FID blocks."""
    net = torchvision.models.inception_v3(weights=None, aux_logits=False, num_classes=1008, init_weights=False)
    net.Mixed_5b = FIDInceptionA(192, pool_features=32)
    net.Mixed_5c = FIDInceptionA(256, pool_features=64)
    net.Mixed_5d = FIDInceptionA(288, pool_features=64)
    net.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
    net.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
    net.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
    net.Mixed_7b = FIDInceptionE_1(1280)
    net.Mixed_7c = FIDInceptionE_2(2048)
    return net.eval()


def pool3(net, x, size=299):
    """pytorch-fid's InceptionV3(output_blocks=[3]) forward on x in [0, 1]: resize, 2x - 1, blocks 0-3."""
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    x = 2 * x - 1
    x = net.Conv2d_1a_3x3(x)
    x = net.Conv2d_2a_3x3(x)
    x = net.Conv2d_2b_3x3(x)
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    x = net.Conv2d_3b_1x1(x)
    x = net.Conv2d_4a_3x3(x)
    x = F.max_pool2d(x, kernel_size=3, stride=2)
    for m in ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
              "Mixed_7a", "Mixed_7b", "Mixed_7c"]:
        x = getattr(net, m)(x)
    return F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
