"""`custos demo`: a whole study on synthetic data, with a real orchestrator and real gateways."""

from custos.demo.walkthrough import DemoReport, run_demo

__all__ = ["DemoReport", "run_demo"]
