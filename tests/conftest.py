"""Shared fixtures: the real embedded model, loaded once per test session.

No test replaces the model with a fake: everything runs on SmolLM2-135M.
The Hub is switched off so an unknown model id fails at once, offline, as it
would on a laptop without internet.
"""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(scope="session")
def lm():
    from core.models import load_model

    return load_model()
