"""Shared vocabulary: wire models, identities, states and transitions, errors."""
