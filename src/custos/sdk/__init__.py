"""The Python SDK: a client for researchers and custodians, and the objects it returns."""

from custos.sdk.client import Client
from custos.sdk.dataset import Dataset
from custos.sdk.job import Job
from custos.sdk.result import Result, Section, result_sections
from custos.sdk.spec import Spec
from custos.sdk.waiting import WaitTimeout

__all__ = ["Client", "Dataset", "Job", "Result", "Section", "Spec", "WaitTimeout", "result_sections"]
