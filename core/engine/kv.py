"""Keys and values: one stream's cache, and the slab a batched pass runs on.

A stream's cache is a ``KVStore``: one tensor ``[layers, 2 (keys, values),
kv_heads, capacity, head_dim]`` that grows by doubling. A caller holds a
``KVHandle`` (the store, a length, and the adapter setting it was computed
with); handles are immutable: continuing a handle at its store's tip appends
in place, continuing an older one (two beams from one parent, a step undone)
copies its prefix into a fresh store. So no handle ever changes under the
caller that holds it.

A batched pass runs on a *slab*: one tensor ``[layers, 2, rows, kv_heads,
columns, head_dim]`` with every row's past right-aligned at a common column;
``SlabCache`` hands it to a transformers model as its cache, writing each
layer's new keys and values into the slab's last columns instead of
concatenating tensors as ``DynamicCache`` does.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import torch
from transformers.cache_utils import Cache, CacheLayerMixin, DynamicCache, DynamicLayer

MIN_CAPACITY = 16  # positions a new store starts with; it doubles as it grows


class KVStore:
    """One stream's keys and values for every layer: ``data[layer, 0=keys/1=values, head, position, dim]``."""

    __slots__ = ("data", "length")

    def __init__(self, data: torch.Tensor, length: int) -> None:
        self.data = data
        self.length = length  # positions written so far (the tip)

    @property
    def capacity(self) -> int:
        return int(self.data.shape[3])

    @property
    def nbytes(self) -> int:
        return self.data.numel() * self.data.element_size()


@dataclass(frozen=True, eq=False)
class KVHandle:
    """A caller's view of a cache: the first ``length`` positions of ``store``, computed with ``setting``.

    ``setting`` is the adapter setting (None: the base model): a cache computed
    with one adapter cannot be continued with another.
    """

    store: KVStore
    length: int
    setting: Hashable = None

    def get_seq_length(self) -> int:  # the name transformers' caches use
        return self.length


def appended(handle: KVHandle | None, new: torch.Tensor, setting: Hashable) -> KVHandle:
    """The handle for ``handle``'s positions plus ``new`` ([layers, 2, heads, q, dim]).

    In place when ``handle`` is at its store's tip and the store has room;
    otherwise a new store (its capacity the next power of two) with the prefix copied.
    """
    q = int(new.shape[3])
    p = handle.length if handle is not None else 0
    old = handle.store if handle is not None else None
    if old is not None and old.length == p and old.capacity >= p + q:
        store = old
    else:
        capacity = max(MIN_CAPACITY, 1 << (p + q - 1).bit_length())  # amortised growth
        data = torch.empty((*new.shape[:3], capacity, new.shape[4]), dtype=new.dtype, device=new.device)
        if old is not None and p:
            data[:, :, :, :p].copy_(old.data[:, :, :, :p])
        store = KVStore(data, p)
    store.data[:, :, :, p : p + q].copy_(new)
    store.length = p + q
    return KVHandle(store, p + q, setting)


class _SlabLayer(CacheLayerMixin):
    """One layer of a padded batch: the pasts already in ``keys[..., :past, :]``, the new tokens go after."""

    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, past: int) -> None:
        super().__init__()
        self.keys, self.values, self.past = keys, values, past
        self.is_initialized = True
        self.device = keys.device

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        pass

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        end = self.past + key_states.shape[-2]
        self.keys[:, :, self.past : end].copy_(key_states)
        self.values[:, :, self.past : end].copy_(value_states)
        return self.keys[:, :, :end], self.values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.past + query_length, 0

    def get_seq_length(self) -> int:
        return self.past

    def get_max_length(self) -> int:
        return -1


class SlabCache(Cache):
    """A transformers cache over a slab ``[layers, 2, rows, heads, columns, dim]``, ``past`` columns filled."""

    def __init__(self, slab: torch.Tensor, past: int) -> None:
        super().__init__(layers=[_SlabLayer(slab[i, 0], slab[i, 1], past) for i in range(slab.shape[0])])


@dataclass(frozen=True)
class KVShape:
    """The shape of a model's cache, per token: what a slab and a store are made of."""

    layers: int
    heads: int
    head_dim: int
    dtype: torch.dtype
    device: torch.device

    @property
    def bytes_per_token(self) -> int:
        return self.layers * 2 * self.heads * self.head_dim * torch.empty((), dtype=self.dtype).element_size()


def probe_kv_shape(model: Any) -> KVShape | None:
    """Run one token through ``model`` and read its cache's shape; None when it is not plain full attention.

    Sliding-window, linear-attention (state-space) or per-layer-different
    caches cannot live in one padded slab: such models keep the one-at-a-time path.
    """
    cache = DynamicCache()  # no config: plain layers, so a sliding-window model shows up as mismatched below
    with torch.inference_mode():
        model(input_ids=torch.zeros((1, 1), dtype=torch.long, device=model.device), cache=cache, use_cache=True)
    layers = getattr(cache, "layers", [])
    if not layers or not all(type(layer) is DynamicLayer and layer.is_initialized for layer in layers):
        return None
    shapes = {tuple(layer.keys.shape) for layer in layers} | {tuple(layer.values.shape) for layer in layers}
    if len(shapes) != 1:
        return None
    _, heads, _, head_dim = next(iter(shapes))
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    if getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return None
    return KVShape(len(layers), heads, head_dim, layers[0].keys.dtype, layers[0].keys.device)
