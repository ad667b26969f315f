"""`python -m custos.cli`: the same as the `custos` script."""

from custos.cli.main import app

app(prog_name="custos")
