"""Timed scenarios; `python -m benchmarks` runs every module's `main()`."""

import importlib.util
import sys

# httpx's ASGI transport (the in-process client of several benchmarks) tries `import sniffio` on
# every request; without sniffio installed that is a failed import, a search of sys.path costing
# ~0.2 ms of the client per request, charged to the app under test. A None entry fails it at once.
if importlib.util.find_spec("sniffio") is None:
    sys.modules["sniffio"] = None  # type: ignore[assignment]
