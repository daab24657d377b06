"""Connectors: one module per system over its official client library.

Nothing outside this package imports a client library, and nothing in it touches SQLite.
"""
