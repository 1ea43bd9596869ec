"""`elements_chain` strings (INGESTION.md §11, API.md §2.1).

posthog-js sends the finished string (`$elements_chain`), which is stored verbatim; older
clients send `$elements`, a list of element dicts, which `chain_from_elements` serialises.
The parser (§11.3) lives in this module too.
"""

from __future__ import annotations

import re
from typing import Any

MAX_TEXT = 400
MAX_HREF = 2048


def _escape(value: Any) -> str:
    return str(value).replace('"', '\\"')


def _classes(raw: Any) -> list[str]:
    if isinstance(raw, list):
        return [str(c) for c in raw if c not in (None, "")]
    if isinstance(raw, str):
        return raw.split()
    return []


def element_from_sdk(raw: dict[str, Any]) -> dict[str, Any]:
    """A posthog-js `$elements` entry → canonical element dict (text, tag_name, attr_class, …)."""
    attributes = {k: v for k, v in raw.items() if isinstance(k, str) and k.startswith("attr__")}
    if isinstance(attributes.get("attr__class"), list):
        # Older SDKs send the class list; keep the attribute as the DOM wrote it, not as "['a']".
        attributes["attr__class"] = " ".join(_classes(attributes["attr__class"]))
    text = raw.get("$el_text")
    href = raw.get("attr__href")
    attr_id = raw.get("attr__id")
    return {
        "tag_name": raw.get("tag_name") or "",
        "text": str(text)[:MAX_TEXT] if text not in (None, "") else None,
        "href": str(href)[:MAX_HREF] if href not in (None, "") else None,
        "attr_class": _classes(raw.get("attr__class")),
        "attr_id": str(attr_id) if attr_id not in (None, "") else None,
        "nth_child": raw.get("nth_child") or 0,
        "nth_of_type": raw.get("nth_of_type") or 0,
        "attributes": attributes,
    }


def element_to_string(element: dict[str, Any]) -> str:
    head = element.get("tag_name") or ""
    for cls in sorted(element.get("attr_class") or []):
        head += "." + str(cls).replace('"', "")
    # One map, so an `attributes` entry named like a canonical key (`text`, `href`, …) replaces
    # it instead of being written twice (§2.1: "the map built from …").
    pairs: dict[str, Any] = {}
    if element.get("text"):
        pairs["text"] = element["text"]
    pairs["nth-child"] = element.get("nth_child") or 0
    pairs["nth-of-type"] = element.get("nth_of_type") or 0
    if element.get("href"):
        pairs["href"] = element["href"]
    if element.get("attr_id"):
        pairs["attr_id"] = element["attr_id"]
    for k, v in (element.get("attributes") or {}).items():
        pairs[str(k)] = v
    return head + ":" + "".join(f'{_escape(k)}="{_escape(v)}"' for k, v in sorted(pairs.items(), key=lambda kv: kv[0]))


def chain_from_elements(elements: list[dict]) -> str:
    """SDK `$elements` dicts (clicked element first) → the §11.2 chain string."""
    return ";".join(element_to_string(element_from_sdk(e)) for e in elements)


# --- parsing (API.md §2.1 "Parsing", INGESTION.md §11.3) -----------------------------------------
#
# Chains come verbatim from whoever sent the event: every scan below moves forward through the
# string (`str.find` and two regexes without nested repetition), so parsing stays linear on
# hostile input.

MAX_CHAIN_LENGTH = 16_384
ELEMENT_KEYS = ("text", "tag_name", "attr_class", "href", "attr_id", "nth_child", "nth_of_type", "attributes", "order")
_SEPARATOR_RE = re.compile(r"[\s;]+")
_WHITESPACE_RE = re.compile(r"\s")
_HEAD_END_RE = re.compile(r":[A-Za-z0-9_\-]*=")


def _truncate(chain: str) -> str:
    """Cut over-long chains so the clicked element (first) survives and the outermost ancestors go;
    a separator in the first half would leave almost nothing, so then the raw window is kept."""
    if len(chain) <= MAX_CHAIN_LENGTH:
        return chain
    window = chain[:MAX_CHAIN_LENGTH]
    cut = window.rfind(";")
    return window[:cut] if cut > MAX_CHAIN_LENGTH // 2 else window


def _quoted_end(chain: str, start: int) -> int:
    """Index just past the quoted section opening at `start`, or -1 when it never closes.

    A backslash escapes the next character, so a quote closes the section when an even number of
    backslashes precedes it. Without a closing quote, the section still ends at its last escaped
    quote (`"a\\"` is a whole section), as PostHog's splitter does."""
    search = start + 1
    last_escaped = -1
    while True:
        quote = chain.find('"', search)
        if quote < 0:
            return last_escaped + 1 if last_escaped >= 0 else -1
        back = quote - 1
        while back > start and chain[back] == "\\":
            back -= 1
        if (quote - 1 - back) % 2 == 0:
            return quote + 1
        last_escaped = quote
        search = quote + 1


def split_chain(chain: str) -> list[str]:
    """Element strings of a chain: `;` and whitespace separate, except inside quoted values."""
    chain = _truncate(chain)
    if "\\" not in chain:
        # Fast path for the usual chain: without backslashes quotes simply pair up, so a `;` piece
        # with an even number of quotes and no whitespace outside them is exactly one element.
        pieces = chain.split(";")
        for piece in pieces:
            parts = piece.split('"')
            if len(parts) % 2 == 0 or _WHITESPACE_RE.search("".join(parts[0::2])):
                break
        else:
            return [piece for piece in pieces if piece]
    return _split_scan(chain)


def _split_scan(chain: str) -> list[str]:
    pieces: list[str] = []
    current = ""
    i, n = 0, len(chain)
    while i < n:
        quote = chain.find('"', i)
        parts = _SEPARATOR_RE.split(chain[i:quote if quote >= 0 else n])
        current += parts[0]
        for part in parts[1:]:
            if current:
                pieces.append(current)
            current = part
        if quote < 0:
            break
        end = _quoted_end(chain, quote)
        if end > 0:
            current += chain[quote:end]
            i = end
        else:  # an unterminated quote separates, like `;`
            if current:
                pieces.append(current)
            current = ""
            i = quote + 1
    if current:
        pieces.append(current)
    return pieces


def _split_head(piece: str) -> tuple[str, str | None]:
    """(tag part, attribute run): the head ends at the first `:` followed by `<key chars>*=`, so
    class names may contain `:` (`hover:bg-red`). Key chars never include `:`, so the search
    reads each character a bounded number of times."""
    match = _HEAD_END_RE.search(piece)
    if match is None:
        return piece, None
    return piece[:match.start()], piece[match.start() + 1:]


def iter_attributes(run: str):
    """`(key, value)` pairs of an attribute run, left to right (§2.1): after each `="` the value is
    the shortest text of at least one character, not ending in a backslash, followed by `"`.
    Escapes are not undone. A `="` with no such value is skipped and its text joins the next key."""
    key_start = 0
    search = 0
    while True:
        equals = run.find('="', search)
        if equals < 0:
            return
        value_start = equals + 2
        close = run.find('"', value_start + 1)
        while close >= 0 and run[close - 1] == "\\":
            close = run.find('"', close + 1)
        if close < 0:
            # No later `="` can find a closing quote either (its candidates are a subset).
            return
        yield run[key_start:equals], run[value_start:close]
        key_start = search = close + 1


def _int_or_none(value: str) -> int | None:
    # A hand-made chain with nth-child="x" (or a number JSON cannot carry) has no position,
    # rather than failing the whole stats page.
    try:
        number = int(value)
    except ValueError:
        return None
    return number if -(2**63) <= number < 2**63 else None


def parse_element(piece: str, order: int, keep_attribute=None) -> dict[str, Any]:
    """One element string → the nine-key element dict of API.md §2.2 (key order as PostHog's)."""
    head, run = _split_head(piece)
    tag = classes = text = href = attr_id = nth_child = nth_of_type = None
    attributes: dict[str, str] = {}
    if head:
        tag, dot, rest = head.partition(".")
        if dot:
            classes = [c for c in rest.split(".") if c] or None
    if run:
        # iter_attributes, inlined: this loop runs for every pair of every chain on a stats page.
        find = run.find
        key_start = search = 0
        while True:
            equals = find('="', search)
            if equals < 0:
                break
            close = find('"', equals + 3)
            while close >= 0 and run[close - 1] == "\\":
                close = find('"', close + 1)
            if close < 0:
                break
            key, value = run[key_start:equals], run[equals + 2:close]
            key_start = search = close + 1
            if key == "href":
                href = value
            elif key == "nth-child":
                nth_child = _int_or_none(value)
            elif key == "nth-of-type":
                nth_of_type = _int_or_none(value)
            elif key == "text":
                text = value
            elif key == "attr_id":
                attr_id = value
            elif key and (keep_attribute is None or keep_attribute(key)):
                attributes[key] = value
    return {"text": text, "tag_name": tag, "attr_class": classes, "href": href, "attr_id": attr_id,
            "nth_child": nth_child, "nth_of_type": nth_of_type, "attributes": attributes, "order": order}


def parse_chain(chain: str, *, keep_attribute=None, max_depth: int | None = None) -> list[dict[str, Any]]:
    """A chain string → element dicts, clicked element first (`order` 0).

    `keep_attribute(key)` filters the `attributes` map (stats' `data_attributes`); `max_depth`
    keeps only the first N elements (stats' `max_element_chain_depth`)."""
    pieces = split_chain(chain)
    if max_depth is not None:
        pieces = pieces[:max_depth]
    return [parse_element(piece, order, keep_attribute) for order, piece in enumerate(pieces)]


def elements_to_chain(elements: list[dict[str, Any]]) -> str:
    """Canonical element dicts (as `parse_chain` returns them) → chain string."""
    return ";".join(element_to_string(e) for e in elements)


# --- data_attributes (stats) -----------------------------------------------------------------------

MAX_DATA_ATTRIBUTES = 50


def _glob(pattern: str):
    """`*` matches any run of characters; plain string scanning, so no pattern can be slow."""
    head, *middle, tail = pattern.split("*")

    def matches(key: str) -> bool:
        if len(key) < len(head) + len(tail) or not key.startswith(head) or not key.endswith(tail):
            return False
        pos, end = len(head), len(key) - len(tail)
        for segment in middle:
            found = key.find(segment, pos, end)
            if found < 0:
                return False
            pos = found + len(segment)
        return True

    return matches


def attribute_filter(data_attributes: str | None):
    """The `keep_attribute` predicate for a comma-separated `data_attributes` value, or None
    (keep everything) when it names nothing. Only the first 50 names count."""
    names = [n.strip() for n in (data_attributes or "").split(",") if n.strip()][:MAX_DATA_ATTRIBUTES]
    if not names:
        return None
    exact = frozenset(f"attr__{n}" for n in names if "*" not in n)
    globs = [_glob(f"attr__{n}") for n in names if "*" in n]
    return lambda key: key in exact or any(g(key) for g in globs)
