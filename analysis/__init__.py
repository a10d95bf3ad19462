"""Heirloom: content-addressed, preservable HEP analyses (library part)."""

__version__ = "0.1.0"
