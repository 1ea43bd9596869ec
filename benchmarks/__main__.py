"""Run every `benchmarks/*.py` module's `main()` in name order (`make bench`)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import benchmarks


def run(selected: list[str]) -> None:
    for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or (selected and info.name not in selected):
            continue
        module = importlib.import_module(f"benchmarks.{info.name}")
        entry = getattr(module, "main", None)
        if callable(entry):
            print(f"== benchmarks.{info.name}", flush=True)
            entry()


if __name__ == "__main__":
    run(sys.argv[1:])
