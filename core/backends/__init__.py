"""Backends: where next-token probabilities come from (a local model, or an OpenAI-compatible server).

The kinds of server failure (``ServerUnreachable``, ``UnknownModel``, …) live in
``core.backends.base``; callers catch ``BackendError`` (a ``LabError``) here.
"""

from core.backends.base import Backend, BackendDistribution, BackendError, BackendStep, Decoding, Reply
from core.backends.local import LocalBackend
from core.backends.openai_api import OPENAI_BASE_URL, OpenAIBackend, list_models

__all__ = [
    "OPENAI_BASE_URL",
    "Backend",
    "BackendDistribution",
    "BackendError",
    "BackendStep",
    "Decoding",
    "LocalBackend",
    "OpenAIBackend",
    "Reply",
    "list_models",
]
