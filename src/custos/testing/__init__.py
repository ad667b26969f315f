"""Helpers shipped with the package for tests: an orchestrator in process (`custos.testing.inprocess`) and
a gateway's one-dataset site (`custos.testing.sites`), the host's processes by a marker in their
command line (`custos.testing.processes`). A real deployment on loopback is `custos.local`."""
