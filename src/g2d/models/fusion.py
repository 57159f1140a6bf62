"""Fusion modules: per-modality features → multimodal logits + per-modality logits.

``build_fusion(name, in_dims, num_outputs, hidden)`` returns a module whose forward takes
``feats: list[Tensor(B, D_m)]`` (in modality order) and returns
``(logits (B, C), per_modality_logits: list[Tensor(B, C)])``.

Per-modality logits ``z_m`` (method.md "Models") depend on modality m's features only:

* ``late`` / ``sum``: the output of modality m's own linear head;
* ``concat``: ``h_m @ W[:, slice_m].T + b / M`` — the head's weight slice for m and the bias
  shared equally (the authors' ``b / 2`` for M = 2), so ``Σ_m z_m`` equals the fused logits;
* ``film`` / ``bigated`` / ``cross_attention``: the shared output head applied to modality m's
  projected (pre-interaction) features.

FiLM, gated and (bi-directional) cross-attention fusion are defined for two modalities in the
papers; each class docstring says how it is generalised to M ≥ 3 (it reduces to the two-modality
form for M = 2). All modules are initialised with the authors' init (:func:`init_weights`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from g2d.errors import ConfigError
from g2d.models.init import init_weights

__all__ = [
    "Fusion",
    "LateFusion",
    "SumFusion",
    "ConcatFusion",
    "FiLMFusion",
    "BiGatedFusion",
    "CrossAttentionFusion",
    "build_fusion",
    "available_fusions",
]

FusionOutput = tuple[Tensor, list[Tensor]]


class Fusion(nn.Module):
    """Base class: ``in_dims`` per-modality feature widths, ``num_outputs`` = C."""

    min_modalities: int = 2

    def __init__(self, in_dims: list[int], num_outputs: int) -> None:
        super().__init__()
        self.in_dims = [int(d) for d in in_dims]
        self.num_modalities = len(self.in_dims)
        self.num_outputs = int(num_outputs)

    def _check(self, feats: list[Tensor]) -> None:
        if len(feats) != self.num_modalities:
            raise ValueError(
                f"{type(self).__name__} expects {self.num_modalities} feature tensors, "
                f"got {len(feats)}"
            )


class LateFusion(Fusion):
    """Late fusion (the authors' default): one linear head per modality, logits = their mean.

    Defined for any M ≥ 1; per-modality logits = each head's output.
    """

    min_modalities = 1
    reduce = "mean"

    def __init__(self, in_dims: list[int], num_outputs: int, hidden: int = 128) -> None:
        super().__init__(in_dims, num_outputs)
        self.heads = nn.ModuleList(nn.Linear(d, self.num_outputs) for d in self.in_dims)

    def forward(self, feats: list[Tensor]) -> FusionOutput:
        self._check(feats)
        per = [head(h) for head, h in zip(self.heads, feats)]
        stacked = torch.stack(per)
        return (stacked.mean(dim=0) if self.reduce == "mean" else stacked.sum(dim=0)), per


class SumFusion(LateFusion):
    """OGM-GE ``SumFusion``: one linear head per modality, logits = their sum.

    OGM-GE defines it for two modalities (``fc_x(x) + fc_y(y)``); the sum extends to any M ≥ 1.
    Per-modality logits = each head's output (the late-fusion heads, summed instead of averaged).
    """

    reduce = "sum"


class ConcatFusion(Fusion):
    """Concatenation fusion: one ``Linear(Σ D_m → C)`` on ``cat(h_1..h_M)``.

    Per-modality logits ``z_m = h_m @ W[:, slice_m].T + b / M``. The authors (M = 2) use
    ``b / 2``; ``b / M`` is the natural extension and keeps ``Σ_m z_m == logits`` exactly.
    """

    min_modalities = 1

    def __init__(self, in_dims: list[int], num_outputs: int, hidden: int = 128) -> None:
        super().__init__(in_dims, num_outputs)
        self.fc = nn.Linear(sum(self.in_dims), self.num_outputs)
        bounds = [0]
        for d in self.in_dims:
            bounds.append(bounds[-1] + d)
        self._slices = [(bounds[i], bounds[i + 1]) for i in range(self.num_modalities)]

    def forward(self, feats: list[Tensor]) -> FusionOutput:
        self._check(feats)
        logits = self.fc(torch.cat(feats, dim=1))
        w, b = self.fc.weight, self.fc.bias
        m = self.num_modalities
        per = [h @ w[:, s:e].t() + b / m for h, (s, e) in zip(feats, self._slices)]
        return logits, per


class FiLMFusion(Fusion):
    """FiLM fusion (Perez et al. 2018) as in OGM-GE's ``FiLM``.

    Each modality is first projected to ``hidden`` (``p_m = Linear(D_m → hidden)(h_m)``; OGM-GE has
    equal widths and no projection). The conditioning modality ``c`` (default 0, OGM-GE's
    ``x_film=True``: the first modality produces the modulation) gives
    ``γ, β = split(Linear(hidden → 2·hidden)(p_c))``, which modulate the other modality:
    ``logits = head(γ ⊙ p_other + β)``, ``head = Linear(hidden → C)``.

    M ≥ 3 (FiLM is defined for two inputs): the conditioning modality modulates every other
    modality with the same γ, β and the modulated features are averaged:
    ``logits = head(mean_{m≠c}(γ ⊙ p_m + β))`` — identical to the two-modality form for M = 2.
    Per-modality logits: ``head(p_m)``.
    """

    def __init__(
        self, in_dims: list[int], num_outputs: int, hidden: int = 128, conditioner: int = 0
    ) -> None:
        super().__init__(in_dims, num_outputs)
        if not 0 <= int(conditioner) < self.num_modalities:
            raise ValueError(f"conditioner must be a modality index < {self.num_modalities}")
        self.conditioner = int(conditioner)
        self.hidden = int(hidden)
        self.proj = nn.ModuleList(nn.Linear(d, self.hidden) for d in self.in_dims)
        self.film = nn.Linear(self.hidden, 2 * self.hidden)
        self.head = nn.Linear(self.hidden, self.num_outputs)

    def forward(self, feats: list[Tensor]) -> FusionOutput:
        self._check(feats)
        p = [proj(h) for proj, h in zip(self.proj, feats)]
        gamma, beta = torch.split(self.film(p[self.conditioner]), self.hidden, dim=1)
        mod = [gamma * pm + beta for i, pm in enumerate(p) if i != self.conditioner]
        fused = torch.stack(mod).mean(dim=0)
        return self.head(fused), [self.head(pm) for pm in p]


class BiGatedFusion(Fusion):
    """Bi-directional gated fusion after OGM-GE's ``GatedFusion``.

    ``p_m = Linear(D_m → hidden)(h_m)``. OGM-GE gates one direction,
    ``head(σ(p_x) ⊙ p_y)``; "Bi" sums both directions (M = 2):
    ``logits = head(σ(p_1) ⊙ p_2 + σ(p_2) ⊙ p_1)``.

    M ≥ 3: each modality is gated by the mean of the other modalities' gates,
    ``logits = head(Σ_j p_j ⊙ mean_{i≠j} σ(p_i))`` — identical to the form above for M = 2.
    Per-modality logits: ``head(p_m)``.
    """

    def __init__(self, in_dims: list[int], num_outputs: int, hidden: int = 128) -> None:
        super().__init__(in_dims, num_outputs)
        self.hidden = int(hidden)
        self.proj = nn.ModuleList(nn.Linear(d, self.hidden) for d in self.in_dims)
        self.head = nn.Linear(self.hidden, self.num_outputs)

    def forward(self, feats: list[Tensor]) -> FusionOutput:
        self._check(feats)
        p = [proj(h) for proj, h in zip(self.proj, feats)]
        gates = torch.stack([torch.sigmoid(pm) for pm in p])  # (M, B, hidden)
        total = gates.sum(dim=0)
        m = self.num_modalities
        fused = sum(pj * (total - gates[j]) / (m - 1) for j, pj in enumerate(p))
        return self.head(fused), [self.head(pm) for pm in p]


def _pick_heads(hidden: int, heads: int) -> int:
    """Largest head count ≤ ``heads`` that divides ``hidden``."""
    for h in range(min(heads, hidden), 0, -1):
        if hidden % h == 0:
            return h
    return 1


class CrossAttentionFusion(Fusion):
    """All-directional cross-modal attention over one token per modality.

    ``t_m = Linear(D_m → hidden)(h_m)``; tokens ``(B, M, hidden)`` go through one
    ``nn.MultiheadAttention`` in which each token attends to the *other* modalities' tokens only
    (its own position is masked), then residual + LayerNorm; the attended tokens are averaged and
    fed to ``head = Linear(hidden → C)``. Heads: the largest count ≤ ``heads`` (default 4) dividing
    ``hidden``. For M = 2 this is the usual bi-directional cross-attention (audio→visual and
    visual→audio); for M ≥ 3 every modality attends to all the others. Note that with M = 2 each
    query has a single key, so its attention weight is 1 and the query/key projections get zero
    gradient (the value/output projections still train).
    Per-modality logits: ``head(t_m)`` on the pre-attention token.
    """

    def __init__(
        self, in_dims: list[int], num_outputs: int, hidden: int = 128, heads: int = 4
    ) -> None:
        super().__init__(in_dims, num_outputs)
        self.hidden = int(hidden)
        self.proj = nn.ModuleList(nn.Linear(d, self.hidden) for d in self.in_dims)
        self.attn = nn.MultiheadAttention(
            self.hidden, _pick_heads(self.hidden, int(heads)), batch_first=True
        )
        self.norm = nn.LayerNorm(self.hidden)
        self.head = nn.Linear(self.hidden, self.num_outputs)
        self.register_buffer(
            "mask", torch.eye(self.num_modalities, dtype=torch.bool), persistent=False
        )

    def forward(self, feats: list[Tensor]) -> FusionOutput:
        self._check(feats)
        t = [proj(h) for proj, h in zip(self.proj, feats)]
        tokens = torch.stack(t, dim=1)  # (B, M, hidden)
        att, _ = self.attn(tokens, tokens, tokens, attn_mask=self.mask, need_weights=False)
        fused = self.norm(tokens + att).mean(dim=1)
        return self.head(fused), [self.head(tm) for tm in t]


_FUSIONS: dict[str, type[Fusion]] = {
    "late": LateFusion,
    "sum": SumFusion,
    "concat": ConcatFusion,
    "film": FiLMFusion,
    "bigated": BiGatedFusion,
    "cross_attention": CrossAttentionFusion,
}


def available_fusions() -> list[str]:
    """Sorted names of the fusion modules."""
    return sorted(_FUSIONS)


def build_fusion(
    name: str,
    in_dims: list[int],
    num_outputs: int,
    hidden: int = 128,
    key: str = "model.fusion",
    **options: Any,
) -> Fusion:
    """Build fusion ``name`` for per-modality widths ``in_dims`` and ``num_outputs`` classes.

    ``hidden`` is the projection width of ``film``/``bigated``/``cross_attention`` (config
    ``model.fusion_dim``); ``options`` go to the class (``conditioner`` for film, ``heads`` for
    cross_attention). ``key`` names the config key in errors. Raises :class:`ConfigError`.
    """
    if name not in _FUSIONS:
        raise ConfigError(
            f"{key}: unknown fusion {name!r} (available: {', '.join(available_fusions())})"
        )
    cls = _FUSIONS[name]
    if len(in_dims) < cls.min_modalities:
        raise ConfigError(
            f"{key}: fusion {name!r} needs at least {cls.min_modalities} modalities, "
            f"got {len(in_dims)}"
        )
    if any(int(d) <= 0 for d in in_dims) or int(num_outputs) <= 0 or int(hidden) <= 0:
        raise ConfigError(
            f"{key}: fusion {name!r} needs positive sizes "
            f"(in_dims={list(in_dims)}, num_outputs={num_outputs}, hidden={hidden})"
        )
    try:
        module = cls(list(in_dims), int(num_outputs), hidden=int(hidden), **options)
    except TypeError as e:
        raise ConfigError(f"{key}: invalid options {sorted(options)} for fusion {name!r}") from e
    except ValueError as e:
        raise ConfigError(f"{key}: fusion {name!r}: {e}") from e
    init_weights(module)
    return module
