"""Declarative mapping between source records and the normalized ChangeRequest."""
