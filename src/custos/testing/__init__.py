"""Helpers shipped with the package for tests: `custos.testing.cluster` runs a real deployment on loopback."""
