"""Building blocks shared by the efficient families, for 1-D and 2-D inputs alike.

``dim`` selects Conv1d/Conv2d (and the matching BatchNorm and pooling); every block keeps the
channels-first layout of the task's inputs.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv(dim: int) -> type[nn.Conv1d] | type[nn.Conv2d]:
    """Conv1d or Conv2d."""
    return nn.Conv1d if dim == 1 else nn.Conv2d


def batch_norm(dim: int, channels: int) -> nn.Module:
    """BatchNorm1d or BatchNorm2d over ``channels``."""
    return nn.BatchNorm1d(channels) if dim == 1 else nn.BatchNorm2d(channels)


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` (never below it, never < 90%)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


class ConvBNAct(nn.Sequential):
    """Convolution (no bias), batch norm, then an activation (``None``: none)."""

    def __init__(self, dim: int, cin: int, cout: int, kernel: int = 1, stride: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU6) -> None:
        layers: list[nn.Module] = [
            conv(dim)(cin, cout, kernel, stride=stride, padding=kernel // 2, groups=groups,
                      bias=False),
            batch_norm(dim, cout)]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: global average, a bottleneck MLP (1x1 convs), sigmoid gate."""

    def __init__(self, dim: int, channels: int, reduced: int, act: type[nn.Module]) -> None:
        super().__init__()
        self.pool = nn.AdaptiveAvgPool1d(1) if dim == 1 else nn.AdaptiveAvgPool2d(1)
        self.reduce = conv(dim)(channels, reduced, 1)
        self.act = act()
        self.expand = conv(dim)(reduced, channels, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        return x * self.gate(self.expand(self.act(self.reduce(self.pool(x)))))


class InvertedResidual(nn.Module):
    """MobileNetV2 block / EfficientNet MBConv: 1x1 expansion, depthwise conv, optional
    squeeze-and-excitation, linear 1x1 projection; a residual when shapes allow."""

    def __init__(self, dim: int, cin: int, cout: int, kernel: int, stride: int,
                 expansion: int, se_ratio: float = 0.0,
                 act: type[nn.Module] = nn.ReLU6) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(dim, cin, hidden, 1, act=act))
        layers.append(ConvBNAct(dim, hidden, hidden, kernel, stride, groups=hidden, act=act))
        if se_ratio > 0:
            layers.append(SqueezeExcite(dim, hidden, max(1, int(cin * se_ratio)), act))
        layers.append(ConvBNAct(dim, hidden, cout, 1, act=None))
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.residual else out
