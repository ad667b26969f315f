"""The `custos` command line: a thin layer over the SDK, plus the commands that start the servers."""
