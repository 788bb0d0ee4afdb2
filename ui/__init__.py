"""Streamlit-side helpers shared by the pages: session state, the sidebar, HTML and charts.

Everything numeric comes from ``core``; this package only draws it.
"""
