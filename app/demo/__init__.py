"""Deterministic demo data: `python -m app demo-data` and the first start of `serve`."""

from app.demo.runner import generate_demo_data

__all__ = ["generate_demo_data"]
