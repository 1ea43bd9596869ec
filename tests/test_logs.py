"""Log lines: one JSON object each, with the request id and nothing meant for a terminal."""

from __future__ import annotations

import json
import logging

import pytest

from app.logs import configure_logging, request_id_var


@pytest.fixture
def restore_logging():
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield
    root.handlers[:], level = saved
    root.setLevel(level)


class TestJsonLogs:
    def test_request_id_and_no_terminal_colours(self, restore_logging, capsys):
        configure_logging("INFO", json=True)
        token = request_id_var.set("req-1")
        try:
            # As uvicorn logs "Started server process [%d]": a coloured copy rides in `color_message`.
            logging.getLogger("uvicorn.error").info("Started server process [%d]", 42,
                                                    extra={"color_message": "Started \x1b[36m%d\x1b[0m"})
        finally:
            request_id_var.reset(token)
        [line] = [json.loads(text) for text in capsys.readouterr().err.splitlines()]
        assert line["message"] == "Started server process [42]"
        assert line["request_id"] == "req-1" and line["level"] == "INFO" and line["logger"] == "uvicorn.error"
        assert "color_message" not in line
