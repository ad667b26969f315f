"""Built-in federated models and the in-sandbox runtime they run in."""
