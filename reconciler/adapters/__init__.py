"""Shells around the core: one I/O concern per module."""
