"""Who may change the shared server: the teacher, or everyone when no teacher secret is set.

On a classroom network whoever reaches the app's address uses the same
server: its training jobs, its saved adapters, the models in its memory and
the API key it was started with. Exploring a model harms no one; starting,
cancelling, renaming or deleting a job, loading a new model (minutes of
every core, and memory the whole class shares) or spending the server's API
key does. So the server can be started with a teacher secret,
``LLM_LAB_TEACHER_SECRET`` (``make run HOST=0.0.0.0`` generates and prints
one when it is not set): a session that gives it is the teacher's. Without a
secret nothing else can reach the app (it listens on 127.0.0.1) or the
person who started it chose so, and every session is the teacher's.

This module holds only the rule. Pages ask ``ui.session.is_teacher()``,
which passes the secret the session typed; what a student may not do is
listed in docs/security.md.
"""

from __future__ import annotations

import hmac
import os

TEACHER_SECRET_ENV = "LLM_LAB_TEACHER_SECRET"


def _secret() -> str:
    return os.environ.get(TEACHER_SECRET_ENV, "").strip()


def teacher_secret_required() -> bool:
    """Whether the server was started with a teacher secret (so a session must give it to be the teacher's)."""
    return bool(_secret())


def is_teacher(given: str | None) -> bool:
    """Whether a session that typed ``given`` is the teacher's: always, when no secret is configured.

    Compared in constant time (``hmac.compare_digest``), so the time an answer
    takes says nothing about how much of a guess was right.
    """
    secret = _secret()
    if not secret:
        return True
    return hmac.compare_digest((given or "").strip().encode(), secret.encode())
