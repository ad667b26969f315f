"""The built-in `fedavg` model: federated training (FedAvg, FedProx, FedAvgM) of NumPy or PyTorch
models, with clipping and noise under a DP training policy. Nothing is re-exported here: the sandbox
imports only the modules a round needs."""
