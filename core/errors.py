"""Errors a person can act on.

Every failure that user input can cause is raised as a ``LabError`` whose
message is a whole sentence saying what went wrong and what to do. Pages show
the message; the CLI prints it and exits non-zero, never with a traceback.
"""


class LabError(Exception):
    """Base class: the message is meant for the person using LLM Lab."""


class InvalidInput(LabError):
    """A prompt, setting or file that LLM Lab cannot work with."""


class ModelLoadError(LabError):
    """A model that cannot be loaded; the message names the model and the reason."""
