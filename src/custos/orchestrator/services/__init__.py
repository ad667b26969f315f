"""Orchestrator services: each owns its logic and transaction; routes only translate HTTP."""
