"""The production image's contract, read from the Dockerfile (no Docker engine on these machines)."""

from __future__ import annotations

import json
import re

from tests.live_server import ROOT


def _runtime_stage() -> str:
    text = (ROOT / "Dockerfile").read_text()
    return text.split("AS runtime", 1)[1]


def _env(stage: str) -> dict[str, str]:
    joined = re.sub(r"\\\n\s*", " ", stage)
    env: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("ENV "):
            env.update(dict(pair.split("=", 1) for pair in line[4:].split()))
    return env


class TestDockerfile:
    def test_serves_on_all_interfaces_as_non_root(self):
        stage = _runtime_stage()
        cmd = json.loads(re.search(r"^CMD (\[.*\])$", stage, re.M).group(1))
        assert cmd == ["python", "-m", "app", "serve", "--host", "0.0.0.0", "--port", "8000"]
        assert re.search(r"^USER tally$", stage, re.M)
        assert "/_health" in stage  # HEALTHCHECK uses the liveness route

    def test_production_first_start_writes_no_demo_events(self):
        # Each API replica's first start would otherwise write 100 000 made-up events into the real
        # ClickHouse (APP_DEMO_EVENTS defaults to 100 000 for `make run`).
        env = _env(_runtime_stage())
        assert env["APP_ENV"] == "production"
        assert env["APP_DEMO_EVENTS"] == "0"
