"""Optional OpenAI-compatible chat model that rewrites a deterministic analysis (spec/API.md §3.11).

The model only rephrases: it gets the structured facts and the deterministic draft, and its answer is
rejected when it contains a number the draft does not (a model must not invent figures). Any failure,
including the overall timeout, returns None and the caller keeps the deterministic text.
"""

from __future__ import annotations

import asyncio
import logging
import re
from typing import Any

import httpx
import orjson

from app.settings import Settings

log = logging.getLogger(__name__)

MAX_CHARS = 4000
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")

SYSTEM_PROMPT = (
    "You rewrite a product analytics summary for a product manager. Use only the facts given. "
    "Keep the shape: one headline line, 2-3 evidence bullets starting with '- ', and one takeaway line. "
    "Plain text, no markdown headings. Do not add numbers that are not in the draft."
)


def _numbers(text: str) -> set[str]:
    return {m.replace(",", "").rstrip(".") for m in _NUMBER.findall(text)}


async def rewrite(settings: Settings, *, facts: dict[str, Any], draft: str,
                  transport: httpx.AsyncBaseTransport | None = None) -> str | None:
    if not settings.llm_base_url or not settings.llm_model:
        return None
    url = settings.llm_base_url.rstrip("/") + "/chat/completions"
    headers = {"Content-Type": "application/json"}
    key = settings.llm_api_key.get_secret_value()
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = {
        "model": settings.llm_model, "temperature": 0,
        "messages": [
            {"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": orjson.dumps({"facts": facts, "draft": draft}).decode()},
        ],
    }
    timeout = settings.llm_timeout_seconds
    try:
        # httpx timeouts are per read; the outer timeout bounds the whole exchange (a slow trickle too).
        async with asyncio.timeout(timeout):
            async with httpx.AsyncClient(timeout=timeout, transport=transport) as client:
                response = await client.post(url, content=orjson.dumps(body), headers=headers)
                response.raise_for_status()
                content = response.json()["choices"][0]["message"]["content"]
    except (TimeoutError, httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
        log.warning("language model unavailable, keeping the deterministic analysis: %s", type(exc).__name__)
        return None
    if not isinstance(content, str) or not content.strip() or len(content) > MAX_CHARS:
        return None
    content = content.strip()
    invented = _numbers(content) - _numbers(draft)
    if invented:
        log.warning("language model added numbers that are not in the facts; keeping the deterministic analysis")
        return None
    return content
