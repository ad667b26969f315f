"""Local training for `fedavg`: the NumPy learner, and the PyTorch learner loaded only when a job
asks for it."""
