"""Backends: where next-token probabilities come from (a local model, or an OpenAI-compatible server)."""

from core.backends.base import (
    AuthenticationFailed,
    Backend,
    BackendDistribution,
    BackendError,
    BackendStep,
    MalformedResponse,
    NoLogprobs,
    Reply,
    ServerUnreachable,
    UnknownModel,
    entropy_lower_bound,
)
from core.backends.local import LocalBackend
from core.backends.openai_api import OPENAI_BASE_URL, OpenAIBackend, list_models

__all__ = [
    "OPENAI_BASE_URL",
    "AuthenticationFailed",
    "Backend",
    "BackendDistribution",
    "BackendError",
    "BackendStep",
    "LocalBackend",
    "MalformedResponse",
    "NoLogprobs",
    "OpenAIBackend",
    "Reply",
    "ServerUnreachable",
    "UnknownModel",
    "entropy_lower_bound",
    "list_models",
]
