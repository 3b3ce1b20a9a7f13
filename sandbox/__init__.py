"""payments-sandbox: a stateful sandbox server for the Payments API."""

__version__ = "0.1.0"
