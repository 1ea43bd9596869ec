"""Parse HogQL text with sqlglot's ClickHouse dialect, after cheap structural checks.

The checks run before sqlglot so that hostile input (megabytes of text, thousands of nested
parentheses) is refused without a deep recursion in the parser.
"""

from __future__ import annotations

import logging
import re

from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from sqlglot.dialects.clickhouse import ClickHouse

from app.errors import QueryError

# sqlglot warns (per query) when it falls back to a raw Command; that is user input we refuse
# anyway (only SELECT passes), so it must not flood the logs.
logging.getLogger("sqlglot").setLevel(logging.ERROR)

MAX_LENGTH = 100_000  # default of the APP_HOGQL_MAX_LENGTH setting
MAX_DEPTH = 64  # parentheses/brackets nesting and AST depth, see _check_depth
MAX_NODES = 20_000


class _HogQLDialect(ClickHouse):
    """ClickHouse syntax without sqlglot's function normalization: every call keeps the name the
    user wrote (`ifNull` stays `ifNull`), so the allowlist in functions.py sees what was asked."""

    class Parser(ClickHouse.Parser):
        FUNCTIONS: dict = {}
        FUNCTION_PARSERS: dict = {}
        NO_PAREN_FUNCTIONS: dict = {}


_DIALECT = _HogQLDialect()


PLACEHOLDER_PREFIX = "__hogql_placeholder_"
VARIABLE_PREFIX = "__hogql_variable_"
# `{name}` reads `values[name]`; `{variables.code_name}` reads the variable with that code_name.
_PLACEHOLDER = re.compile(r"\{\s*(variables\s*\.\s*)?([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}")


class HogQLError(QueryError):
    """A HogQL text was rejected; the detail names the line and column."""


def where(text: str, offset: int) -> str:
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return f"line {line}, column {col}"


def _prescan(text: str, attr: str) -> str:
    """Quote `$name` identifiers (sqlglot reads `$` as a dollar-quoted string start) and refuse
    comments, `;`, non-ASCII outside strings and too deep nesting. Returns the rewritten text."""
    out: list[str] = []
    depth, i, n = 0, 0, len(text)
    while i < n:
        ch = text[i]
        if ch in "'`\"":
            j = i + 1
            while j < n:
                if text[j] == "\\":
                    j += 2
                    continue
                if text[j] == ch:
                    if j + 1 < n and text[j + 1] == ch:  # doubled quote escapes itself
                        j += 2
                        continue
                    break
                j += 1
            if j >= n:
                raise HogQLError(f"Unterminated quote at {where(text, i)}.", attr=attr)
            out.append(text[i:j + 1])
            i = j + 1
            continue
        if text.startswith("--", i) or text.startswith("/*", i) or ch == "#":
            raise HogQLError(f"Comments are not allowed ({where(text, i)}).", attr=attr)
        if ch == ";":
            raise HogQLError(f"Only one statement is allowed; remove ';' at {where(text, i)}.", attr=attr)
        if ord(ch) > 127:
            raise HogQLError(f"Unexpected character {ch!r} at {where(text, i)}; names must be ASCII.", attr=attr)
        if ch in "([{":
            depth += 1
            if depth > MAX_DEPTH:
                raise HogQLError(f"The expression is nested too deeply (more than {MAX_DEPTH} levels) at "
                                 f"{where(text, i)}.", attr=attr)
        elif ch in ")]}":
            depth -= 1
        if ch == "{":
            # `{name}` is a placeholder for `values[name]`: it becomes a marked identifier here and a
            # parameter in lowering (exprs.py), never text in the SQL.
            m = _PLACEHOLDER.match(text, i)
            if m is None:
                raise HogQLError(f"Placeholders must look like {{name}} or {{variables.name}} "
                                 f"({where(text, i)}).", attr=attr)
            out.append(f"`{VARIABLE_PREFIX if m.group(1) else PLACEHOLDER_PREFIX}{m.group(2)}`")
            depth -= 1
            i = m.end()
            continue
        if ch == "$" and i + 1 < n and (text[i + 1].isalpha() or text[i + 1] == "_") and not (
                out and (out[-1][-1:].isalnum() or out[-1][-1:] == "_")):
            j = i + 1
            while j < n and (text[j].isalnum() or text[j] == "_"):
                j += 1
            out.append(f"`{text[i:j]}`")
            i = j
            continue
        if ch == "$":
            raise HogQLError(f"Unexpected '$' at {where(text, i)}.", attr=attr)
        out.append(ch)
        i += 1
    return "".join(out)


def _check_depth(node: exp.Expression, attr: str) -> None:
    stack = [(node, 0)]
    count = 0
    while stack:
        cur, d = stack.pop()
        count += 1
        if d > MAX_DEPTH * 2 or count > MAX_NODES:
            raise HogQLError(f"The query is too large or too deeply nested (at most {MAX_NODES} syntax nodes and "
                             f"{MAX_DEPTH * 2} levels).", attr=attr)
        stack.extend((child, d + 1) for child in cur.iter_expressions())


def _parse(text: str, attr: str, *, statement: bool, max_length: int = MAX_LENGTH) -> exp.Expression:
    if not isinstance(text, str) or not text.strip():
        raise HogQLError("The HogQL text is empty.", attr=attr)
    if len(text) > max_length:
        raise HogQLError(f"The HogQL text is {len(text)} characters long; the limit is {max_length} "
                         "(APP_HOGQL_MAX_LENGTH).", attr=attr)
    source = _prescan(text, attr)
    try:
        if statement:
            trees = _DIALECT.parse(source)
        else:
            trees = _DIALECT.parse(f"SELECT {source}")
    except ParseError as e:
        first = e.errors[0] if e.errors else {}
        line, col = first.get("line", 1), first.get("col", 1)
        if not statement and line == 1:
            col = max(1, col - len("SELECT "))
        desc = first.get("description", "syntax error")
        raise HogQLError(f"Syntax error: {desc} at line {line}, column {col}.", attr=attr) from None
    except TokenError as e:
        raise HogQLError(f"Syntax error: {str(e)[:200]}.", attr=attr) from None
    except RecursionError:
        raise HogQLError(f"The query is too deeply nested (at most {MAX_DEPTH} levels).", attr=attr) from None
    except Exception as e:  # sqlglot may raise other errors on odd input: still the caller's input
        raise HogQLError(f"Syntax error: {type(e).__name__}.", attr=attr) from None
    trees = [t for t in trees if t is not None]
    if len(trees) != 1:
        raise HogQLError("Exactly one SELECT statement is allowed.", attr=attr)
    tree = trees[0]
    _check_depth(tree, attr)
    if not statement:
        if not isinstance(tree, exp.Select) or len(tree.expressions) != 1 or any(v for k, v in tree.args.items() if k != "expressions"):
            raise HogQLError("Expected a single expression.", attr=attr)
        return tree.expressions[0]
    if not isinstance(tree, (exp.Select, exp.SetOperation)):
        raise HogQLError(f"Only SELECT queries are allowed, not {tree.key.upper()}.", attr=attr)
    return tree


def parse_select(text: str, attr: str = "query.query", max_length: int = MAX_LENGTH) -> exp.Expression:
    return _parse(text, attr, statement=True, max_length=max_length)


def parse_expr(text: str, attr: str) -> exp.Expression:
    """One expression (a breakdown, `math_hogql`, a filter). A top-level `AS name` only names the
    expression, so it is dropped, as PostHog does; aliases inside it are still refused."""
    tree = _parse(text, attr, statement=False)
    while isinstance(tree, exp.Alias):
        tree = tree.this
    return tree
