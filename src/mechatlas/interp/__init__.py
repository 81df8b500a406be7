"""DOCSTRING package interp."""
