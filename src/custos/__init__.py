"""Custos: compute-to-data. Data stays with its custodian; only permitted results leave."""

__version__ = "0.1.0"

__all__ = ["__version__"]
