"""LLM Lab's engine: everything the pages show is computed here.

This package never imports streamlit, so every number on screen can also be
produced from the command line (``python -m core``) and tested without a UI.
"""
