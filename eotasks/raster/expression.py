"""The band-maths grammar: a small, total parser and a numpy evaluator. No ``eval``, ever.

Grammar (precedence low to high)::

    list    := expr ("," expr)*                 one output band per expr
    expr    := term (("+" | "-") term)*
    term    := unary (("*" | "/") unary)*
    unary   := "-" unary | "+" unary | power
    power   := atom (("**" | "^") unary)?       right-associative, binds tighter than unary minus
    atom    := NUMBER | NAME | NAME "(" expr ("," expr)* ")" | "(" expr ")"

Names are resolved after parsing by a caller-supplied function (band names, aliases, spyndex
constants), so one parser serves user expressions and the Awesome Spectral Indices formulas alike.
Hostile input is bounded: length, nesting depth and node count are limited, numbers must be finite,
and evaluation happens in float64 under ``np.errstate`` so ``9**9**9`` is just +inf -> nodata.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from eotasks.errors import ExpressionError

MAX_DEPTH = 64
MAX_NODES = 2_000
# The height of the tree, counted after aliases are expanded: a chain like 1+1+...+1 nests without
# parentheses, and every walk of the tree (and its evaluation) goes that deep.
MAX_HEIGHT = 128
# Evaluation runs over blocks of this many pixels, so its temporaries are bounded by
# height x block, whatever the raster's size (a deep expression must not hold deep x full-size arrays).
EVAL_BLOCK = 1 << 16

FUNCTIONS: dict[str, tuple[int, int | None]] = {  # name -> (min args, max args)
    "sqrt": (1, 1),
    "abs": (1, 1),
    "log": (1, 1),
    "exp": (1, 1),
    "min": (2, None),
    "max": (2, None),
}


@dataclass(frozen=True)
class Num:
    value: float


@dataclass(frozen=True)
class Name:
    name: str
    position: int


@dataclass(frozen=True)
class Unary:
    op: str
    operand: Node


@dataclass(frozen=True)
class Binary:
    op: str  # + - * / **
    left: Node
    right: Node


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]


Node = Num | Name | Unary | Binary | Call

_TOKEN = re.compile(
    r"\s*(?:(?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<op>\*\*|[-+*/^(),]))"
)


@dataclass(frozen=True)
class Token:
    kind: str  # num, name, op, end
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    n = len(text)
    while pos < n:
        if text[pos].isspace():
            pos += 1
            continue
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise ExpressionError(f"Unexpected character {text[pos]!r} at position {pos}", token=text[pos], position=pos)
        kind = m.lastgroup or "op"
        start = m.start(kind)
        tokens.append(Token(kind, m.group(kind), start))
        pos = m.end()
    tokens.append(Token("end", "", n))
    return tokens


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.nodes = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> None:
        if self.tok.text != text or self.tok.kind == "end":
            self.fail(f"expected {text!r}")
        self.advance()

    def fail(self, what: str) -> None:
        tok = self.tok
        shown = tok.text if tok.kind != "end" else "end of expression"
        raise ExpressionError(
            f"Syntax error at {shown!r} (position {tok.position}): {what}", token=tok.text or None, position=tok.position
        )

    def node(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise ExpressionError(f"Expression is too long (more than {MAX_NODES} terms)")
        return node

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"Expression is nested too deeply (more than {MAX_DEPTH} levels)", position=self.tok.position)

    def leave(self) -> None:
        self.depth -= 1

    def parse_list(self) -> list[Node]:
        if self.tok.kind == "end":
            raise ExpressionError("Expression is empty")
        exprs = [self.parse_expr()]
        while self.tok.text == "," and self.tok.kind == "op":
            self.advance()
            exprs.append(self.parse_expr())
        if self.tok.kind != "end":
            self.fail("expected an operator or ','")
        return exprs

    def parse_expr(self) -> Node:
        self.enter()
        left = self.parse_term()
        while self.tok.kind == "op" and self.tok.text in "+-":
            op = self.advance().text
            left = self.node(Binary(op, left, self.parse_term()))
        self.leave()
        return left

    def parse_term(self) -> Node:
        left = self.parse_unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.advance().text
            left = self.node(Binary(op, left, self.parse_unary()))
        return left

    def parse_unary(self) -> Node:
        if self.tok.kind == "op" and self.tok.text in "+-":
            op = self.advance().text
            self.enter()
            operand = self.parse_unary()
            self.leave()
            return operand if op == "+" else self.node(Unary("-", operand))
        return self.parse_power()

    def parse_power(self) -> Node:
        base = self.parse_atom()
        if self.tok.kind == "op" and self.tok.text in ("**", "^"):
            self.advance()
            self.enter()
            exponent = self.parse_unary()
            self.leave()
            return self.node(Binary("**", base, exponent))
        return base

    def parse_atom(self) -> Node:
        tok = self.tok
        if tok.kind == "num":
            self.advance()
            value = float(tok.text)
            if not math.isfinite(value):
                raise ExpressionError(f"Number {tok.text!r} is out of range", token=tok.text, position=tok.position)
            return self.node(Num(value))
        if tok.kind == "name":
            self.advance()
            if self.tok.text == "(" and self.tok.kind == "op":
                func = tok.text.lower()
                if func not in FUNCTIONS:
                    raise ExpressionError(
                        f"Unknown function {tok.text!r}; known: {', '.join(sorted(FUNCTIONS))}",
                        token=tok.text,
                        position=tok.position,
                    )
                self.advance()
                self.enter()
                args = [self.parse_expr()]
                while self.tok.text == "," and self.tok.kind == "op":
                    self.advance()
                    args.append(self.parse_expr())
                self.expect(")")
                self.leave()
                lo, hi = FUNCTIONS[func]
                if len(args) < lo or (hi is not None and len(args) > hi):
                    want = f"{lo}" if lo == hi else f"at least {lo}"
                    raise ExpressionError(
                        f"{func}() takes {want} argument(s), got {len(args)}", token=tok.text, position=tok.position
                    )
                return self.node(Call(func, tuple(args)))
            return self.node(Name(tok.text, tok.position))
        if tok.kind == "op" and tok.text == "(":
            self.advance()
            self.enter()
            inner = self.parse_expr()
            self.expect(")")
            self.leave()
            return inner
        self.fail("expected a number, a band name or '('")
        raise AssertionError("unreachable")


def parse(text: str, max_chars: int = 2_000) -> list[Node]:
    """Parse a comma-separated list of expressions into one AST per output band."""
    if not isinstance(text, str):
        raise ExpressionError("Expression must be a string")
    if len(text) > max_chars:
        raise ExpressionError(f"Expression is longer than {max_chars} characters")
    asts = _Parser(text).parse_list()
    check_size(asts)
    return asts


def measure(node: Node) -> tuple[int, int]:
    """(node count, height) of a tree, without recursion (a tree may be deeper than Python's stack)."""
    count, height = 0, 0
    stack: list[tuple[Node, int]] = [(node, 1)]
    while stack:
        n, level = stack.pop()
        count += 1
        height = max(height, level)
        if isinstance(n, Unary):
            stack.append((n.operand, level + 1))
        elif isinstance(n, Binary):
            stack.extend(((n.left, level + 1), (n.right, level + 1)))
        elif isinstance(n, Call):
            stack.extend((a, level + 1) for a in n.args)
    return count, height


def check_size(asts: list[Node], max_nodes: int = MAX_NODES, max_height: int = MAX_HEIGHT, expanded: bool = False) -> None:
    """The limits on what evaluation costs, checked on the trees as they will be evaluated."""
    total = 0
    after = " once its indices are expanded" if expanded else ""
    for ast in asts:
        count, height = measure(ast)
        total += count
        if height > max_height:
            raise ExpressionError(f"Expression is nested too deeply{after} ({height} levels; at most {max_height})")
    if total > max_nodes:
        raise ExpressionError(f"Expression is too long{after} ({total} terms; at most {max_nodes})")


def split_expressions(text: str) -> list[str]:
    """The source text of each top-level expression (commas inside function calls do not split)."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def names(node: Node) -> list[Name]:
    """Every name the expression uses, in order of appearance."""
    out: list[Name] = []

    def walk(n: Node) -> None:
        if isinstance(n, Name):
            out.append(n)
        elif isinstance(n, Unary):
            walk(n.operand)
        elif isinstance(n, Binary):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Call):
            for a in n.args:
                walk(a)

    walk(node)
    return out


def substitute(node: Node, resolve: Callable[[Name], Node]) -> Node:
    """Replace every Name by what ``resolve`` returns (a band Name, a constant, an alias's AST)."""
    if isinstance(node, Name):
        return resolve(node)
    if isinstance(node, Unary):
        return Unary(node.op, substitute(node.operand, resolve))
    if isinstance(node, Binary):
        return Binary(node.op, substitute(node.left, resolve), substitute(node.right, resolve))
    if isinstance(node, Call):
        return Call(node.func, tuple(substitute(a, resolve) for a in node.args))
    return node


_UFUNCS = {"sqrt": np.sqrt, "abs": np.abs, "log": np.log, "exp": np.exp}


def evaluate(node: Node, bands: dict[str, np.ndarray]) -> np.ndarray | float:
    """Evaluate a resolved AST (names are band names) over float arrays.

    Call under ``np.errstate(all="ignore")``: division by zero, overflow and invalid operations
    produce inf/nan, which the caller turns into nodata.
    """
    if isinstance(node, Num):
        return node.value
    if isinstance(node, Name):
        return bands[node.name]
    if isinstance(node, Unary):
        return np.negative(evaluate(node.operand, bands))
    if isinstance(node, Binary):
        a, b = evaluate(node.left, bands), evaluate(node.right, bands)
        if node.op == "+":
            return np.add(a, b)
        if node.op == "-":
            return np.subtract(a, b)
        if node.op == "*":
            return np.multiply(a, b)
        if node.op == "/":
            return np.divide(a, b)
        return np.power(np.asarray(a, dtype=np.float64), b)
    if isinstance(node, Call):
        args = [evaluate(a, bands) for a in node.args]
        if node.func in _UFUNCS:
            return _UFUNCS[node.func](args[0])
        # minimum/maximum, not fmin/fmax: a NaN argument makes the pixel nodata, as any other maths does.
        reduce = np.minimum if node.func == "min" else np.maximum
        out = args[0]
        for a in args[1:]:
            out = reduce(out, a)
        return out
    raise TypeError(f"not an expression node: {node!r}")


def evaluate_blocks(
    node: Node,
    bands: dict[str, np.ndarray],
    shape: tuple[int, ...],
    out: np.ndarray | None = None,
    nodata_from: tuple[str, ...] = (),
) -> np.ndarray:
    """``evaluate`` over blocks of ``EVAL_BLOCK`` pixels into ``out`` (float64 of ``shape`` unless
    given, any float dtype): NaN wherever the result is not finite (division by zero, log of a
    negative number, overflow, also once cast to ``out``'s dtype), and wherever a band named in
    ``nodata_from`` is NaN (``x ** 0`` is 1 even for a NaN ``x``: a pixel without data stays so).

    Memory is ``out`` plus height x block temporaries, not height x raster. Call under
    ``np.errstate(all="ignore")``."""
    if out is None:
        out = np.empty(shape, np.float64)
    flat_out = out.reshape(-1)
    flat = {k: np.asarray(v).reshape(-1) if np.ndim(v) else v for k, v in bands.items()}
    size = flat_out.size
    for start in range(0, size, EVAL_BLOCK):
        stop = min(start + EVAL_BLOCK, size)
        block = {k: (v[start:stop] if np.ndim(v) else v) for k, v in flat.items()}
        values = np.broadcast_to(np.asarray(evaluate(node, block), np.float64), (stop - start,)).astype(out.dtype)
        bad = ~np.isfinite(values)
        for name in nodata_from:
            bad |= np.isnan(block[name])
        values[bad] = np.nan
        flat_out[start:stop] = values
    return out


def to_text(node: Node) -> str:
    """Fully parenthesised text of an AST (for logs and for tests of precedence)."""
    if isinstance(node, Num):
        return repr(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Unary):
        return f"(-{to_text(node.operand)})"
    if isinstance(node, Binary):
        return f"({to_text(node.left)} {node.op} {to_text(node.right)})"
    return f"{node.func}({', '.join(to_text(a) for a in node.args)})"
