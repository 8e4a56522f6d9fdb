"""STUB — system checks."""
