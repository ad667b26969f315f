"""The Python SDK: a client for researchers and custodians, and the objects it returns."""

from custos.sdk.client import Client
from custos.sdk.dataset import Dataset
from custos.sdk.result import Result, Section, result_sections
from custos.sdk.waiting import WaitTimeout

__all__ = ["Client", "Dataset", "Result", "Section", "WaitTimeout", "result_sections"]
