"""DOCSTRING package interp.geometry."""
