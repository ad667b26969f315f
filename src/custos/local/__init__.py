"""A Custos deployment on this machine's loopback: an orchestrator and gateways as child processes, for
the demo, the integration tests and the benchmarks."""

from custos.local.cluster import Cluster, DatasetSetup, GatewaySetup, UserSetup, policy_yaml
from custos.local.launch import Deployment, launch

__all__ = ["Cluster", "DatasetSetup", "Deployment", "GatewaySetup", "UserSetup", "launch", "policy_yaml"]
