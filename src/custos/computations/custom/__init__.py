"""Reviewed custom code: the `custom` model, its outputs and their checks, and code packages run
from memory. Nothing is re-exported here: the sandbox imports only the modules a round needs."""
