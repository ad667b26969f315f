"""The built-in `glm` model: exact federated generalised linear models (Newton steps on pooled
sufficient statistics). Nothing is re-exported here: the sandbox imports only the modules a round
needs."""
