"""Per-modality encoders and their registry.

An encoder is built from a spec ``{"name": <encoder>, **kwargs}`` (the dataset registry's
``default_encoders`` or the config key ``model.encoders.<modality>``) and the per-sample shape of
the prepared array. Every encoder

* has an ``int`` attribute ``out_dim``;
* maps a float32 batch ``(B, *input_shape)`` to features ``(B, out_dim)``;
* adds a missing channel dimension itself (``(H, W)`` → ``(1, H, W)``; image encoders also accept a
  flat ``(D,)`` vector when ``D`` is a perfect square, reshaped to ``1 × √D × √D``);
* is initialised with :func:`g2d.models.init.init_weights` (the authors' init) after construction.

Encoders: ``smallcnn`` (2-core-CPU friendly CNN), ``lenet`` (MultiBench AV-MNIST LeNet), ``mlp``,
``resnet18`` (``mode: audio|visual``, as in the authors' code), ``mobilenetv2`` and ``transformer``
(sequence features ``(T, F)``). Unknown names or options raise :class:`g2d.errors.ConfigError`
naming the config key (``key`` argument of :func:`build_encoder`).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from g2d.errors import ConfigError
from g2d.models.init import init_weights

__all__ = [
    "Encoder",
    "SmallCNN",
    "LeNet",
    "MLP",
    "ResNet18Encoder",
    "MobileNetV2Encoder",
    "TransformerSeqEncoder",
    "build_encoder",
    "available_encoders",
    "register_encoder",
]


class Encoder(nn.Module):
    """Base class: ``input_shape`` is the per-sample shape, ``out_dim`` the feature width."""

    out_dim: int

    def __init__(self, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)


_REGISTRY: dict[str, type[Encoder]] = {}


def register_encoder(name: str) -> Callable[[type[Encoder]], type[Encoder]]:
    """Class decorator adding an encoder under ``name`` (constructor: ``(input_shape, key, **kw)``)."""

    def deco(cls: type[Encoder]) -> type[Encoder]:
        if name in _REGISTRY:
            raise ValueError(f"encoder {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return deco


def available_encoders() -> list[str]:
    """Sorted names of the registered encoders."""
    return sorted(_REGISTRY)


def _options(cls: type[Encoder]) -> list[str]:
    params = inspect.signature(cls.__init__).parameters
    return [p for p in params if p not in ("self", "input_shape", "key")]


def build_encoder(
    spec: dict[str, Any], input_shape: tuple[int, ...], key: str = "model.encoders"
) -> Encoder:
    """Build the encoder described by ``spec`` for samples of shape ``input_shape``.

    ``key`` is the config key the spec came from (e.g. ``"model.encoders.audio"``); it is used in
    error messages. Raises :class:`ConfigError` for an unknown name or option, or an input shape
    the encoder cannot take.
    """
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise ConfigError(f"{key}: encoder spec must be a mapping with a 'name' (got {spec!r})")
    name = spec["name"]
    kwargs = {k: v for k, v in spec.items() if k != "name"}
    if name not in _REGISTRY:
        raise ConfigError(
            f"{key}.name: unknown encoder {name!r} (available: {', '.join(available_encoders())})"
        )
    cls = _REGISTRY[name]
    allowed = _options(cls)
    for k in kwargs:
        if k not in allowed:
            raise ConfigError(
                f"{key}.{k}: unknown option for encoder {name!r} "
                f"(allowed: {', '.join(allowed) or 'none'})"
            )
    shape = tuple(int(s) for s in input_shape)
    if any(s <= 0 for s in shape):
        raise ConfigError(f"{key}: input shape {shape} has a non-positive size")
    try:
        enc = cls(shape, key=key, **kwargs)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{key}: invalid options for encoder {name!r}: {e}") from e
    init_weights(enc)
    return enc


# --------------------------------------------------------------------------------------------
# helpers


def _image_shape(input_shape: tuple[int, ...], key: str, name: str) -> tuple[int, int, int]:
    """(C, H, W) from (C, H, W), (H, W) or a flat perfect-square (D,)."""
    if len(input_shape) == 3:
        c, h, w = input_shape
        return c, h, w
    if len(input_shape) == 2:
        return 1, input_shape[0], input_shape[1]
    if len(input_shape) == 1:
        s = math.isqrt(input_shape[0])
        if s * s == input_shape[0]:
            return 1, s, s
    raise ConfigError(
        f"{key}: encoder {name!r} needs input (C, H, W), (H, W) or a flat perfect-square (D,); "
        f"got shape {input_shape}"
    )


def _int_list(value: Any, what: str) -> list[int]:
    if isinstance(value, int) or not isinstance(value, Sequence):
        raise ValueError(f"{what} must be a list of positive integers, got {value!r}")
    out = [int(v) for v in value]
    if any(v <= 0 for v in out):
        raise ValueError(f"{what} must be a list of positive integers, got {value!r}")
    return out


def _optional_dim(dim: int | None) -> int | None:
    if dim is None:
        return None
    if int(dim) <= 0:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    return int(dim)


# --------------------------------------------------------------------------------------------
# encoders


@register_encoder("smallcnn")
class SmallCNN(Encoder):
    """Small CNN for 2-core CPU runs.

    One ``conv(k×k, stride 2) → BN → ReLU`` block per entry of ``channels`` (each halves H and W),
    global average pooling, then an optional ``Linear`` to ``dim``. With the default
    ``channels=[16, 32, 64]`` a 1×64×64 input costs about 2.5 MMAC per sample.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        key: str = "model.encoders",
        channels: Sequence[int] = (16, 32, 64),
        kernel_size: int = 3,
        dim: int | None = None,
    ) -> None:
        super().__init__(input_shape)
        self.image_shape = _image_shape(self.input_shape, key, "smallcnn")
        chans = _int_list(channels, "channels")
        if not chans:
            raise ValueError("channels must not be empty")
        if int(kernel_size) <= 0 or int(kernel_size) % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size!r}")
        k = int(kernel_size)
        layers: list[nn.Module] = []
        c_in = self.image_shape[0]
        for c in chans:
            layers += [
                nn.Conv2d(c_in, c, k, stride=2, padding=k // 2, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(inplace=True),
            ]
            c_in = c
        self.features = nn.Sequential(*layers)
        d = _optional_dim(dim)
        self.proj: nn.Module = nn.Linear(c_in, d) if d is not None else nn.Identity()
        self.out_dim = d if d is not None else c_in

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.image_shape)
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1).flatten(1)
        return self.proj(x)


@register_encoder("lenet")
class LeNet(Encoder):
    """LeNet-style CNN as MultiBench uses for AV-MNIST.

    MultiBench ``LeNet(in_channels, args_channels, additional_layers)``: a 5×5 conv
    (``channels`` filters, no bias) → BN → ReLU → 2×2 max-pool, then ``additional_layers`` blocks of
    3×3 conv doubling the width → BN → ReLU → max-pool; the output is flattened. AV-MNIST uses
    ``LeNet(1, 6, 3)`` for 28×28 images (→ 48) and ``LeNet(1, 6, 5)`` for 112×112 spectrograms
    (→ 192); ``additional_layers=None`` picks exactly that (pool until the map is 1×1).
    ``dim`` adds a final ``Linear``.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        key: str = "model.encoders",
        channels: int = 6,
        additional_layers: int | None = None,
        dim: int | None = None,
    ) -> None:
        super().__init__(input_shape)
        self.image_shape = _image_shape(self.input_shape, key, "lenet")
        c0, h, w = self.image_shape
        if int(channels) <= 0:
            raise ValueError(f"channels must be a positive integer, got {channels!r}")
        if additional_layers is None:
            n_pool, s = 0, min(h, w)
            while s > 1:
                s //= 2
                n_pool += 1
            additional_layers = max(n_pool - 1, 0)
        n_add = int(additional_layers)
        if n_add < 0:
            raise ValueError(f"additional_layers must be >= 0, got {additional_layers!r}")
        if min(h, w) >> (n_add + 1) < 1:
            raise ConfigError(
                f"{key}: lenet with {n_add} additional layers needs inputs of at least "
                f"{2 ** (n_add + 1)} pixels per side; got {(h, w)}"
            )
        ch = int(channels)
        blocks: list[nn.Module] = [
            nn.Conv2d(c0, ch, 5, padding=2, bias=False),
            nn.BatchNorm2d(ch),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
        ]
        for i in range(n_add):
            c_in, c_out = ch * 2**i, ch * 2 ** (i + 1)
            blocks += [
                nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            ]
        self.features = nn.Sequential(*blocks)
        for _ in range(n_add + 1):
            h, w = h // 2, w // 2
        flat = ch * 2**n_add * h * w
        d = _optional_dim(dim)
        self.proj: nn.Module = nn.Linear(flat, d) if d is not None else nn.Identity()
        self.out_dim = d if d is not None else flat

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.image_shape)
        return self.proj(self.features(x).flatten(1))


@register_encoder("mlp")
class MLP(Encoder):
    """MLP for tabular / flat features: flatten → (Linear → ReLU → Dropout) per ``hidden`` size.

    ``hidden=[]`` is the identity on the flattened input (``out_dim`` = its size).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        key: str = "model.encoders",
        hidden: Sequence[int] = (256, 128),
        dropout: float = 0.0,
    ) -> None:
        super().__init__(input_shape)
        sizes = _int_list(hidden, "hidden")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        d_in = math.prod(self.input_shape)
        layers: list[nn.Module] = []
        for h in sizes:
            layers += [nn.Linear(d_in, h), nn.ReLU(inplace=True)]
            if dropout > 0:
                layers.append(nn.Dropout(float(dropout)))
            d_in = h
        self.net = nn.Sequential(*layers)
        self.out_dim = d_in

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x.reshape(x.shape[0], -1))


@register_encoder("resnet18")
class ResNet18Encoder(Encoder):
    """ResNet-18 backbone (torchvision, ``weights=None``, ``fc`` removed) as in the authors' code.

    * ``mode="audio"``: input ``(1, H, W)`` or ``(H, W)`` (a spectrogram); ``conv1`` is replaced by
      a 7×7 stride-2 convolution with the input's channel count (1); layer4 output is average
      pooled over (H, W) → 512.
    * ``mode="visual"``: input ``(T, C, H, W)`` or ``(C, H, W)`` (T = 1). Frames are folded into
      the batch, the backbone runs up to layer4 → ``(B·T, 512, h, w)``, reshaped to
      ``(B, 512, T, h, w)`` and pooled with ``F.adaptive_avg_pool3d`` → 512 — exactly the authors'
      ``AVClassifier``. ``C != 3`` replaces ``conv1`` like audio. At run time any number of
      frames T' is accepted (``(B, T', C, H, W)``), e.g. more frames at test time.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        key: str = "model.encoders",
        mode: str = "visual",
    ) -> None:
        super().__init__(input_shape)
        from torchvision.models import resnet18

        if mode not in ("audio", "visual"):
            raise ConfigError(f"{key}.mode: must be 'audio' or 'visual', got {mode!r}")
        self.mode = mode
        shp = self.input_shape
        if mode == "audio":
            if len(shp) == 2:
                self.frames, self.image_shape = 1, (1, shp[0], shp[1])
            elif len(shp) == 3:
                self.frames, self.image_shape = 1, (shp[0], shp[1], shp[2])
            else:
                raise ConfigError(
                    f"{key}: resnet18 (mode audio) needs input (1, H, W) or (H, W); got shape {shp}"
                )
        else:
            if len(shp) == 4:
                self.frames, self.image_shape = shp[0], (shp[1], shp[2], shp[3])
            elif len(shp) == 3:
                self.frames, self.image_shape = 1, (shp[0], shp[1], shp[2])
            else:
                raise ConfigError(
                    f"{key}: resnet18 (mode visual) needs input (T, C, H, W) or (C, H, W); "
                    f"got shape {shp}"
                )
        net = resnet18(weights=None)
        c_in = self.image_shape[0]
        if mode == "audio" or c_in != 3:
            net.conv1 = nn.Conv2d(c_in, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.conv1, self.bn1, self.relu, self.maxpool = net.conv1, net.bn1, net.relu, net.maxpool
        self.layer1, self.layer2, self.layer3, self.layer4 = (
            net.layer1,
            net.layer2,
            net.layer3,
            net.layer4,
        )
        self.out_dim = 512

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        x = x.reshape(-1, *self.image_shape)  # (B*T, C, H, W); T may differ from input_shape's
        frames = x.shape[0] // b
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        if self.mode == "audio":
            return F.adaptive_avg_pool2d(x, 1).flatten(1)
        _, c, h, w = x.shape
        x = x.view(b, frames, c, h, w).permute(0, 2, 1, 3, 4)
        return F.adaptive_avg_pool3d(x, 1).flatten(1)


@register_encoder("mobilenetv2")
class MobileNetV2Encoder(Encoder):
    """torchvision MobileNetV2 (``weights=None``) feature extractor + global average pool → 1280.

    Input ``(C, H, W)`` RGB images (``(H, W)`` gets a channel dim; ``C != 3`` replaces the stem
    convolution). ``dim`` adds a final ``Linear`` 1280 → dim.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        key: str = "model.encoders",
        dim: int | None = None,
    ) -> None:
        super().__init__(input_shape)
        from torchvision.models import mobilenet_v2

        self.image_shape = _image_shape(self.input_shape, key, "mobilenetv2")
        net = mobilenet_v2(weights=None)
        c_in = self.image_shape[0]
        if c_in != 3:
            stem = net.features[0][0]
            net.features[0][0] = nn.Conv2d(
                c_in, stem.out_channels, 3, stride=2, padding=1, bias=False
            )
        self.features = net.features
        d = _optional_dim(dim)
        self.proj: nn.Module = nn.Linear(net.last_channel, d) if d is not None else nn.Identity()
        self.out_dim = d if d is not None else int(net.last_channel)

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.image_shape)
        x = F.adaptive_avg_pool2d(self.features(x), 1).flatten(1)
        return self.proj(x)


def sinusoidal_encoding(length: int, width: int) -> Tensor:
    """The standard (Vaswani et al.) sinusoidal positional table, shape ``(length, width)``."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    i = torch.arange(0, width, 2, dtype=torch.float32)
    freq = torch.exp(-math.log(10000.0) * i / width)
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return table


@register_encoder("transformer")
class TransformerSeqEncoder(Encoder):
    """Transformer encoder for sequence features ``(T, F)`` (``(F,)`` is read as T = 1).

    ``Conv1d(F → width, kernel_size)`` input projection (same padding), positional encoding
    (``positional="sinusoidal"`` fixed table, or ``"learned"`` parameters of length T, init
    N(0, 0.02²)), ``nn.TransformerEncoder`` (``layers`` post-norm layers, ``heads`` heads, feed-forward
    4·width, ReLU, ``dropout``, batch_first), mean over time → ``(B, width)``.
    Defaults: width 768, 4 layers, 8 heads, kernel 1, dropout 0.1.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        key: str = "model.encoders",
        width: int = 768,
        layers: int = 4,
        heads: int = 8,
        dropout: float = 0.1,
        kernel_size: int = 1,
        positional: str = "sinusoidal",
    ) -> None:
        super().__init__(input_shape)
        shp = self.input_shape
        if len(shp) == 2:
            self.seq_shape = (shp[0], shp[1])
        elif len(shp) == 1:
            self.seq_shape = (1, shp[0])
        else:
            raise ConfigError(f"{key}: transformer needs input (T, F) or (F,); got shape {shp}")
        width, layers, heads, kernel_size = int(width), int(layers), int(heads), int(kernel_size)
        if width <= 0 or layers <= 0 or heads <= 0:
            raise ValueError("width, layers and heads must be positive integers")
        if width % heads:
            raise ValueError(f"width ({width}) must be divisible by heads ({heads})")
        if kernel_size <= 0 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd integer, got {kernel_size}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        t, f = self.seq_shape
        self.proj = nn.Conv1d(f, width, kernel_size, padding=kernel_size // 2)
        if positional == "sinusoidal":
            self.register_buffer("pos", sinusoidal_encoding(t, width)[None], persistent=False)
        elif positional == "learned":
            self.pos = nn.Parameter(torch.randn(1, t, width) * 0.02)
        else:
            raise ConfigError(
                f"{key}.positional: must be 'sinusoidal' or 'learned', got {positional!r}"
            )
        layer = nn.TransformerEncoderLayer(
            width, heads, dim_feedforward=4 * width, dropout=float(dropout), batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out_dim = width

    def forward(self, x: Tensor) -> Tensor:
        x = x.reshape(x.shape[0], *self.seq_shape)  # (B, T, F)
        x = self.proj(x.transpose(1, 2)).transpose(1, 2)  # (B, T, width)
        x = self.encoder(x + self.pos)
        return x.mean(dim=1)
