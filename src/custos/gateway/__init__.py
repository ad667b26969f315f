"""The gateway: agent loop, orchestrator client, task handlers, data access layer, journal."""
