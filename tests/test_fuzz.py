"""Schema-driven fuzzing (issue 9): schemathesis generates positive and negative requests for every
operation of our own OpenAPI and sends them to a live `serve` subprocess, as a client would.

Checks: no 5xx (also counted independently from the server's access log), every status code and
body documented, every response within the request timeout (no hangs). Fixed seed and bounded
example counts keep the run reproducible and around a minute."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.live_server import ROOT, free_port, serve_command, serve_env, wait_ready

SEED = 20261126
MAX_EXAMPLES = 65        # per operation and phase; with the coverage phase this is > 2 000 requests
MIN_REQUESTS = 2000
REQUEST_TIMEOUT = 10     # seconds; a response slower than this is reported as a hang
RUN_TIMEOUT = 240        # the whole run, so CI can never wedge here
ST = [sys.executable, "-m", "schemathesis.cli"]  # the CLI of the installed test dependency
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.fixture(scope="module")
def fuzz_server():
    data_dir = Path(tempfile.mkdtemp(prefix="tally-fuzz-"))
    port = free_port()
    log_path = data_dir / "serve.log"
    log = log_path.open("w")
    # Rate limits off: the fuzzer sends thousands of requests a minute and must reach the views.
    proc = subprocess.Popen(serve_command(port), cwd=ROOT, env=serve_env(data_dir, APP_RATE_LIMITS="off"),
                            stdout=subprocess.DEVNULL, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base, proc, output=log_path.read_text)
        yield base, data_dir, log_path
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(data_dir, ignore_errors=True)


def _seed_objects(base: str, creds: dict) -> dict[str, list]:
    """Real objects for the fuzzer to hit, so id-taking operations reach their logic, not just 404."""
    env_id = creds["environment_id"]
    headers = {"Authorization": f"Bearer {creds['personal_api_key']}"}
    api = f"{base}/api/environments/{env_id}"
    with httpx.Client(headers=headers, timeout=30) as c:
        elements = [c.post(f"{api}/elements/", json={"tag_name": "a", "text": f"fuzz {i}"}).json()["id"]
                    for i in range(3)]
        viz = {"kind": "InsightVizNode", "source": {"kind": "TrendsQuery",
                                                    "series": [{"kind": "EventsNode", "event": "$pageview"}]}}
        insights = [c.post(f"{api}/insights/", json={"name": f"fuzz {i}", "query": viz}).json() for i in range(3)]
        dashboards = [c.post(f"{api}/dashboards/", json={"name": f"fuzz {i}"}).json()["id"] for i in range(2)]
        r = c.post(f"{base}/batch/", json={"api_key": creds["project_api_key"], "batch": [
            {"event": "$pageview", "distinct_id": "fuzz", "properties": {"plan": "pro", "amount": 3}}]})
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 20
        definitions: list[int] = []
        while not definitions and time.monotonic() < deadline:
            definitions = [d["id"] for d in c.get(f"{api}/property_definitions/").json()["results"]]
            time.sleep(0.2)
        assert definitions, "captured event produced no property definitions"
    return {
        "elements": elements,
        "insights": [i["id"] for i in insights] + [i["short_id"] for i in insights],
        "dashboards": dashboards,
        "definitions": definitions,
    }


def _config(path: Path, env_id: int, key: str, seeds: dict[str, list]) -> None:
    lines = [
        f'headers = {{ Authorization = "Bearer {key}" }}',
        f"request-timeout = {REQUEST_TIMEOUT}",
        "[generation]",
        f"max-examples = {MAX_EXAMPLES}",
        # Generated text with NULs and lone surrogates is exercised; the database is shared, so the
        # example database is off to keep runs independent of earlier ones.
        'database = "none"',
    ]
    for name, values in seeds.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}"]
    lines += [
        "[parameters]",
        # The isolation suite covers other environments; here every request targets the real one.
        f'"path.environment_id" = {env_id}',
        '"path.element_id" = { dictionary = "elements", probability = 0.5 }',
        '"path.ref" = { dictionary = "insights", probability = 0.5 }',
        '"path.dashboard_id" = { dictionary = "dashboards", probability = 0.5 }',
        '"path.definition_id" = { dictionary = "definitions", probability = 0.5 }',
    ]
    path.write_text("\n".join(lines) + "\n")


def test_schemathesis_finds_nothing(fuzz_server):
    base, data_dir, log_path = fuzz_server
    creds = json.loads((data_dir / "credentials.json").read_text())
    seeds = _seed_objects(base, creds)
    config = data_dir / "schemathesis.toml"
    _config(config, creds["environment_id"], creds["personal_api_key"], seeds)
    report = data_dir / "report.json"
    log_offset = log_path.stat().st_size
    out = subprocess.run(
        [*ST, "--config-file", str(config), "run", f"{base}/openapi.json", "--seed", str(SEED),
         "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--mode", "all", "--workers", "1",
         "--no-color", "--report", "json", "--report-json-path", str(report)],
        cwd=data_dir, capture_output=True, text=True, timeout=RUN_TIMEOUT,
    )
    result = json.loads(report.read_text())
    summary = out.stdout[-6000:]
    assert result["operations"]["tested"] == result["operations"]["total"] >= 40, summary
    assert result["failures"] == [] and result["errors"] == [], summary
    assert out.returncode == 0, summary
    assert result["test_cases"]["generated"] >= MIN_REQUESTS, result["test_cases"]

    # The server's own access log agrees: requests arrived, and none of them was answered with a 5xx.
    with log_path.open() as fh:
        fh.seek(log_offset)
        lines = [json.loads(line) for line in fh if line.startswith("{")]
    statuses = [line["status"] for line in lines if line.get("message") == "request" and "status" in line]
    assert len(statuses) >= MIN_REQUESTS
    assert [s for s in statuses if s >= 500] == []
