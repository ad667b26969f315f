"""Helpers shipped with the package for tests: an orchestrator in process (`custos.testing.inprocess`) and
a gateway's one-dataset site (`custos.testing.sites`). A real deployment on loopback is `custos.local`."""
