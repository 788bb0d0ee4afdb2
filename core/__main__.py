"""Entry point for ``python -m core``."""

import os
import sys

# Before torch starts OpenMP: passes run on the batching engine's thread and on the caller's, and idle
# OpenMP threads that spin steal the cores the other thread's pass needs (``make run`` sets it for the app).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from core.cli import main

sys.exit(main())
