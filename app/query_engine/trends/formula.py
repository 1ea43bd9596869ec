"""Formulas over series letters (§9): parsed with `ast` into a small whitelist, evaluated point-wise
with x / 0 = 0. Nothing here is ever turned into SQL."""

from __future__ import annotations

import ast
import operator
from typing import Callable

from app.errors import QueryError

_BINARY: dict[type, Callable[[float, float], float]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
    ast.Div: lambda a, b: a / b if b else 0.0,
    ast.Mod: lambda a, b: a % b if b else 0.0,
    ast.Pow: lambda a, b: _pow(a, b),
}


def _pow(a: float, b: float) -> float:
    try:
        result = a ** b
    except (OverflowError, ZeroDivisionError):
        return 0.0
    return result if isinstance(result, (int, float)) else 0.0  # complex roots → 0


class Formula:
    def __init__(self, text: str, series_count: int, path: str) -> None:
        self.text = text
        self.path = path
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except (SyntaxError, ValueError):
            raise QueryError(f"{path}: invalid formula {text!r}.", attr=path) from None
        self._check(tree.body, series_count)
        self.tree = tree.body

    def _check(self, node: ast.AST, count: int) -> None:
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            self._check(node.left, count)
            self._check(node.right, count)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            self._check(node.operand, count)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
            return
        elif isinstance(node, ast.Name) and len(node.id) == 1 and node.id.isalpha():
            if ord(node.id.upper()) - ord("A") >= count:
                raise QueryError(f"{self.path}: formula {self.text!r} uses series {node.id.upper()}, which does not "
                                 "exist.", attr=self.path)
        else:
            raise QueryError(f"{self.path}: invalid formula {self.text!r}.", attr=self.path)

    def letters(self) -> set[int]:
        return {ord(n.id.upper()) - ord("A") for n in ast.walk(self.tree) if isinstance(n, ast.Name)}

    def evaluate(self, values: dict[int, float]) -> float:
        def ev(node: ast.AST) -> float:
            if isinstance(node, ast.BinOp):
                return _BINARY[type(node.op)](ev(node.left), ev(node.right))
            if isinstance(node, ast.UnaryOp):
                value = ev(node.operand)
                return -value if isinstance(node.op, ast.USub) else value
            if isinstance(node, ast.Constant):
                return float(node.value)
            assert isinstance(node, ast.Name)
            return float(values.get(ord(node.id.upper()) - ord("A"), 0.0))

        try:
            result = ev(self.tree)
        except OverflowError:
            return 0.0
        return result if result == result and abs(result) != float("inf") else 0.0
