"""The orchestrator: one ASGI app over a SQL database. Stores metadata, drives jobs, aggregates."""
