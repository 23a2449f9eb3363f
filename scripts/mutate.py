"""Mutation testing of the code that decides money and stock (`make mutate`; README "Mutation testing").

Each mutant is ONE small change to the source: an arithmetic/comparison/boolean operator swapped, a constant
changed, a condition negated or removed (an `if` that never runs, an operand dropped from an `and`/`or`, a
comprehension filter removed, a `not` removed). Each mutant runs, in a child forked from the process that
collected the tests, with the mutated function's code swapped into the live function (or a changed constant
carried onto the live objects; a re-import when neither works, or when another module imported the constant and may
have built something from it), only the tests that execute the mutated line (from a coverage pass over the selected
test suites; for a constant, default or class attribute first the tests that name it or its class), fastest first,
stopping at the first failure. A mutant is KILLED when a test
fails (or its import fails, or it runs past a timeout), SURVIVED when every covering test passes.

Why not mutmut or cosmic-ray: mutmut 3.8 (tried here, Python 3.13) names a mutant by its file path
(`functions.shop.domain.stock`) while the tests import `shop.domain.stock` (functions/ is on sys.path,
tests/conftest.py), so it stops with "could not find any test case for any mutant"; cosmic-ray (not tried)
rewrites the file in the work tree and starts a whole test command per mutant, with no per-mutant selection
of tests: hours for this scope on two shared cores.

Equivalent mutants (no test can tell them apart from the original) are listed, one per line with the reason,
in scripts/mutate_equivalent.txt and excluded from the score. Usage:

    nice -n 10 .venv/bin/python scripts/mutate.py [--only PATTERN ...] [--tests PATH ...] [--budget S] [--list]
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import enum
import fnmatch
import hashlib
import importlib.abc
import importlib.util
import inspect
import json
import os
import re
import signal
import sys
import time
import traceback
import types
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE_ROOT = ROOT / "functions"
EQUIVALENT_FILE = ROOT / "scripts" / "mutate_equivalent.txt"
DEFAULT_TESTS = ["tests/unit", "tests/api"]
SLOW_TEST_S = 5.0  # tests slower than this (in the coverage pass) are left out of the mutant runs
BUDGET_S = 30.0  # a mutant runs the tests that execute its line, fastest first, up to this much test time
CACHE = ROOT / ".mutate-cache"  # the coverage pass, kept while no Python file of the repository changes

# What is mutated: a glob of files, with the scopes (function qualnames, or module/class-level names) to
# mutate in them (None: everything). payments/: the verification and parsing code only (not the API calls).
TARGETS: list[tuple[str, list[str] | None]] = [
    ("shop/domain/*.py", None),
    ("shop/payments/base.py", ["minor_units", "minor_amount", "provider_currency", "header", "decimal_text",
                               "MAX_WEBHOOK_BYTES", "_EXPONENTS", "MAX_MINOR_UNITS", "_DECIMAL_TEXT",
                               "InvalidWebhook.__init__"]),
    ("shop/payments/signing.py", ["TOLERANCE_S", "_UNIX_SECONDS", "within_tolerance", "hmac_header",
                                  "verify_hmac_header", "load_public_key", "rsa_verify"]),
    ("shop/payments/stripe.py", ["KINDS", "StripeProvider.parse_webhook"]),
    ("shop/payments/sandbox.py", ["SIGNATURE_HEADER", "KINDS", "SandboxProvider.parse_webhook"]),
    ("shop/payments/alipay.py", ["KINDS", "_content", "request_content", "notification_content",
                                 "verify_response", "AlipayProvider.parse_webhook"]),
    ("shop/payments/wechatpay.py", ["KINDS", "decrypt_resource", "WechatPayProvider._verify_signature",
                                    "WechatPayProvider.parse_webhook"]),
]

HUMAN_TEXT = {"title", "message", "detail", "summary", "description", "reason", "why"}
BINOPS: dict[type, type] = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.Div: ast.Mult,
                            ast.FloorDiv: ast.Mult, ast.Mod: ast.FloorDiv, ast.Pow: ast.Mult,
                            ast.BitOr: ast.BitAnd, ast.BitAnd: ast.BitOr, ast.LShift: ast.RShift,
                            ast.RShift: ast.LShift}
CMPOPS: dict[type, type] = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt, ast.Eq: ast.NotEq,
                            ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot,
                            ast.IsNot: ast.Is}


@dataclass
class Mutant:
    path: str  # relative to functions/
    scope: str
    line: int
    end_line: int
    in_body: bool  # inside a function body (else evaluated at import: every test of the module covers it)
    function: str | None  # the outermost function around it (its code is swapped in place), None at import level
    before: str
    after: str
    index: int  # the n-th mutation point of the file, in traversal order
    ident: str = ""
    status: str = ""
    tests: list[str] = field(default_factory=list)


def _text(node: ast.AST, limit: int = 90) -> str:
    text = " ".join(ast.unparse(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


class _Mutator(ast.NodeTransformer):
    """Walks a module in a fixed order; numbers every mutation point; applies the `target`-th one (or none)."""

    def __init__(self, path: str, scopes: list[str] | None, lines: list[str], target: int = -1):
        self.path, self.scopes, self.lines, self.target = path, scopes, lines, target
        self.count = 0
        self.found: list[Mutant] = []
        self.stack: list[str] = []
        self.in_body = False
        self.function: str | None = None
        self.skip = 0  # inside a raise or an f-string: strings not mutated there (docstrings, annotations, decorators: never)

    # -- scopes ------------------------------------------------------------------------------------------
    def _scope(self) -> str:
        return ".".join(self.stack) or "<module>"

    def _wanted(self) -> bool:
        if self.scopes is None:
            return True
        scope = self._scope()
        return any(scope == s or scope.startswith(s + ".") for s in self.scopes)

    def visit_FunctionDef(self, node):  # noqa: N802 - ast.NodeVisitor's naming
        self.stack.append(node.name)
        node.args = self._visit_args(node.args)
        outer, self.in_body = self.in_body, True
        outer_function = self.function
        self.function = self.function or ".".join(self.stack)
        node.body = self._body(node.body)
        self.in_body, self.function = outer, outer_function
        self.stack.pop()
        return node

    visit_AsyncFunctionDef = visit_FunctionDef  # noqa: N815

    def _visit_args(self, args: ast.arguments) -> ast.arguments:
        args.defaults = [self.visit(d) for d in args.defaults]
        args.kw_defaults = [None if d is None else self.visit(d) for d in args.kw_defaults]
        return args

    def visit_ClassDef(self, node):  # noqa: N802
        if any((b.id if isinstance(b, ast.Name) else getattr(b, "attr", "")).endswith("Enum") for b in node.bases):
            return node  # an enum member's word cannot be patched into a running process: not mutated (README)
        self.stack.append(node.name)
        node.body = self._body(node.body)
        self.stack.pop()
        return node

    def _body(self, body: list[ast.stmt]) -> list[ast.stmt]:
        start = 1 if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str) else 0  # the docstring
        return body[:start] + [self.visit(stmt) for stmt in body[start:]]

    def visit_Module(self, node):  # noqa: N802
        node.body = self._body(node.body)
        return node

    def _named_assign(self, node, names: list[str]):
        if not self.in_body:  # module or class level: scoped by the name assigned
            self.stack.extend(names[:1])
            try:
                return self.generic_visit(node)
            finally:
                self.stack.pop()
        return self.generic_visit(node)

    def visit_Assign(self, node):  # noqa: N802
        names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        if names == ["__all__"]:
            return node
        target = node.targets[0]
        if isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple) and len(target.elts) == len(
                node.value.elts) and all(isinstance(t, ast.Name) for t in target.elts):
            # `status, slug, title = 409, "conflict", "Conflict"`: each value scoped by its own name
            node.value.elts = [self._assigned(t.id, v) for t, v in zip(target.elts, node.value.elts, strict=True)]
            return node
        if len(names) == 1:
            node.value = self._assigned(names[0], node.value)
            return node
        return self._named_assign(node, names or ["<assign>"])

    def _assigned(self, name: str, value: ast.expr) -> ast.expr:
        """A value assigned to `name`: at module or class level scoped by the name; human-readable text (a title,
        a message) is not mutated, like exception messages and log lines."""
        if self.in_body:
            return self._human(name, value)
        self.stack.append(name)
        try:
            return self._human(name, value)
        finally:
            self.stack.pop()

    def _human(self, name: str, value: ast.expr) -> ast.expr:
        if name.lower().strip("_") not in HUMAN_TEXT:
            return self.visit(value)
        self.skip += 1
        try:
            return self.visit(value)
        finally:
            self.skip -= 1

    def visit_AnnAssign(self, node):  # noqa: N802
        if node.value is not None:
            name = node.target.id if isinstance(node.target, ast.Name) else "<assign>"
            if not self.in_body:
                self.stack.append(name)
                try:
                    node.value = self.visit(node.value)
                finally:
                    self.stack.pop()
            else:
                node.value = self.visit(node.value)
        return node  # the annotation is never mutated

    def visit_Raise(self, node):  # noqa: N802 - messages and problem details are not mutated (status codes are)
        self.skip += 1
        try:
            return self.generic_visit(node)
        finally:
            self.skip -= 1

    def visit_Call(self, node):  # noqa: N802 - log lines are not mutated
        func = node.func
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id in {"logger", "log"}:
            return node
        return self.generic_visit(node)

    def visit_JoinedStr(self, node):  # noqa: N802 - f-strings: only their expressions
        self.skip += 1
        try:
            return self.generic_visit(node)
        finally:
            self.skip -= 1

    # -- mutation points ---------------------------------------------------------------------------------
    def _point(self, node: ast.AST, context: ast.AST, replacement) -> ast.AST:
        """One mutation point: `replacement()` builds the mutated node (applied when this is the target)."""
        if not self._wanted() or "pragma: no mutate" in self.lines[node.lineno - 1]:
            return node
        index = self.count
        self.count += 1
        if self.target == -1:
            mutated = replacement()
            shown = mutated if context is node else _swap(context, node, mutated)
            self.found.append(Mutant(self.path, self._scope(), node.lineno, node.end_lineno or node.lineno,
                                     self.in_body, self.function if self.in_body else None, _text(context),
                                     _text(shown), index))
            return node
        return ast.copy_location(replacement(), node) if index == self.target else node

    def visit_BinOp(self, node):  # noqa: N802
        node = self.generic_visit(node)
        swap = BINOPS.get(type(node.op))
        if swap is None:
            return node
        return self._point(node, node, lambda: ast.BinOp(node.left, swap(), node.right))

    def visit_AugAssign(self, node):  # noqa: N802
        node = self.generic_visit(node)
        swap = BINOPS.get(type(node.op))
        if swap is None:
            return node
        return self._point(node, node, lambda: ast.AugAssign(node.target, swap(), node.value))

    def visit_Compare(self, node):  # noqa: N802
        node = self.generic_visit(node)
        for i, op in enumerate(node.ops):
            swap = CMPOPS.get(type(op))
            if swap is None:
                continue
            node = self._point(node, node, lambda i=i, swap=swap, node=node: ast.Compare(
                node.left, [swap() if j == i else o for j, o in enumerate(node.ops)], node.comparators))
        return node

    def visit_BoolOp(self, node):  # noqa: N802
        node = self.generic_visit(node)
        other = ast.Or() if isinstance(node.op, ast.And) else ast.And()
        node = self._point(node, node, lambda: ast.BoolOp(other, node.values))
        for i in range(len(node.values)):  # a condition removed from the chain
            node = self._point(node, node, lambda i=i, node=node: _drop(node, i))
        return node

    def visit_UnaryOp(self, node):  # noqa: N802
        node = self.generic_visit(node)
        if isinstance(node.op, (ast.Not, ast.USub)):
            return self._point(node, node, lambda: node.operand)
        return node

    def _condition(self, node, negate_only: bool = False):
        """The test negated, and (for an `if`) removed: the branch never taken."""
        test = node.test
        negated = test
        if not _negation_is_swap(test):
            negated = self._point(test, test, lambda: ast.UnaryOp(ast.Not(), test))
        removed = test if negate_only else self._point(test, test, lambda: ast.Constant(False))
        node.test = negated if negated is not test else removed
        return node

    def visit_If(self, node):  # noqa: N802
        node.test = self.visit(node.test)
        node = self._condition(node)
        node.body = [self.visit(s) for s in node.body]
        node.orelse = [self.visit(s) for s in node.orelse]
        return node

    def visit_While(self, node):  # noqa: N802
        node.test = self.visit(node.test)
        node = self._condition(node, negate_only=True)
        node.body = [self.visit(s) for s in node.body]
        node.orelse = [self.visit(s) for s in node.orelse]
        return node

    def visit_IfExp(self, node):  # noqa: N802
        node = self.generic_visit(node)
        return self._condition(node, negate_only=True)

    def visit_comprehension(self, node):  # noqa: N802
        node = self.generic_visit(node)
        node.ifs = [self._point(cond, cond, lambda cond=cond: ast.Constant(True)) for cond in node.ifs]
        return node

    def visit_Constant(self, node):  # noqa: N802
        value = node.value
        if isinstance(value, bool):
            return self._point(node, node, lambda: ast.Constant(not value))
        if isinstance(value, int):
            return self._point(node, node, lambda: ast.Constant(1 if value == 0 else 0 if value == 1 else value + 1))
        if isinstance(value, str) and not self.skip:
            return self._point(node, node, lambda: ast.Constant("" if value else "X"))
        return node


def _negation_is_swap(test: ast.expr) -> bool:
    """`not x` (the removal of `not` covers it) or a comparison whose operator swap is its negation."""
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    return isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(
        test.ops[0], (ast.Eq, ast.NotEq, ast.In, ast.NotIn, ast.Is, ast.IsNot))


def _drop(node: ast.BoolOp, i: int) -> ast.expr:
    rest = node.values[:i] + node.values[i + 1:]
    return rest[0] if len(rest) == 1 else ast.BoolOp(node.op, rest)


def _swap(context: ast.AST, old: ast.AST, new: ast.AST) -> ast.AST:
    class Swap(ast.NodeTransformer):
        def visit(self, node):
            return new if node is old else super().visit(node)
    return Swap().visit(copy.copy(context))


# -- the mutants of the targets ----------------------------------------------------------------------------
def target_files(only: list[str] | None) -> list[tuple[str, list[str] | None]]:
    files = []
    for pattern, scopes in TARGETS:
        for path in sorted(SOURCE_ROOT.glob(pattern)):
            rel = path.relative_to(SOURCE_ROOT).as_posix()
            if only is None or any(fnmatch.fnmatch(rel, o) or o in rel for o in only):
                files.append((rel, scopes))
    return files


def mutants_of(rel: str, scopes: list[str] | None) -> list[Mutant]:
    source = (SOURCE_ROOT / rel).read_text()
    mutator = _Mutator(rel, scopes, source.splitlines())
    mutator.visit(ast.parse(source))
    seen: Counter[str] = Counter()
    for m in mutator.found:
        base = f"{m.path}:{m.scope}: {m.before} => {m.after}"
        seen[base] += 1
        m.ident = base if seen[base] == 1 else f"{base} #{seen[base]}"
    return mutator.found


def name_users(rel: str) -> dict[str, set[int]]:
    """Per name: the lines of the file's functions that read it (a module constant or a class attribute changed
    at import is tested by the tests that run those functions)."""
    users: dict[str, set[int]] = defaultdict(set)
    for node in ast.walk(ast.parse((SOURCE_ROOT / rel).read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            lines = range(node.lineno, (node.end_lineno or node.lineno) + 1)
            users[node.name].update(lines)  # a default of its own parameters
            for inner in ast.walk(node):
                name = inner.id if isinstance(inner, ast.Name) else inner.attr if isinstance(
                    inner, ast.Attribute) else None
                if name:
                    users[name].update(lines)
    return users


_WORDS: dict[str, set[str]] = {}


def words_of(item) -> set[str]:
    """The identifiers in a test function's source (cached per test function)."""
    function = getattr(item, "function", None)
    key = getattr(function, "__qualname__", item.nodeid.split("[")[0]) + "@" + str(getattr(item, "fspath", ""))
    if key not in _WORDS:
        try:
            source = inspect.getsource(function) if function is not None else ""
        except (OSError, TypeError):
            source = ""
        _WORDS[key] = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", source))
    return _WORDS[key]


def _names(m: Mutant) -> set[str]:
    """What a test would name to use a module- or class-level value: its class, or a CONSTANT's own name (not an
    attribute's: `status` or `source` would name half the tests)."""
    return {part for part in m.scope.split(".") if part.lstrip("_")[:1].isupper()}


def _within_budget(tests: list[str], durations: dict[str, float], budget: float) -> list[str]:
    chosen, spent = [], 0.0
    for test in tests:
        spent += durations[test]
        if chosen and spent > budget:
            break
        chosen.append(test)
    return chosen


def mutated_code(rel: str, scopes: list[str] | None, index: int):
    source = (SOURCE_ROOT / rel).read_text()
    tree = _Mutator(rel, scopes, source.splitlines(), target=index).visit(ast.parse(source))
    return compile(ast.fix_missing_locations(tree), str(SOURCE_ROOT / rel), "exec")


def module_name(rel: str) -> str:
    return rel[:-3].replace("/", ".").removesuffix(".__init__")


def load_equivalents() -> dict[str, str]:
    equivalent = {}
    for raw in EQUIVALENT_FILE.read_text().splitlines() if EQUIVALENT_FILE.exists() else []:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        ident, sep, reason = line.partition("  # ")
        if not sep or not reason.strip():
            sys.exit(f"{EQUIVALENT_FILE.name}: every equivalent mutant needs a reason after '  # ': {line}")
        equivalent[ident.strip()] = reason.strip()
    return equivalent


# -- running tests in forked children ----------------------------------------------------------------------
# Imported once by the parent, inherited by every forked child (a child then starts in milliseconds).
PRELOAD = ["boto3", "botocore.session", "moto", "pydantic", "cryptography.hazmat.primitives.asymmetric.rsa",
           "aws_lambda_powertools", "aws_lambda_powertools.event_handler", "hypothesis", "requests"]


class _MutantFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Serves the mutated code when its module is imported (mutants evaluated at import time)."""

    def __init__(self, name: str, path: Path, code):
        self.name, self.path, self.code = name, path, code

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.name:
            return None
        return importlib.util.spec_from_file_location(fullname, self.path, loader=self)

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(self.code, module.__dict__)


def _pytest_args(tests: list[str]) -> list[str]:
    return ["-q", "--no-header", "-p", "no:cacheprovider", "-p", "no:randomly", "-o", "addopts=",
            "--hypothesis-seed=0", "-W", "ignore", *tests]


def _fork(run, timeout: float) -> int | None:
    """run() in a forked child with stdout/stderr silenced; its exit code, or None past the timeout."""
    pid = os.fork()
    if pid == 0:
        code = 3
        try:
            os.setpgid(0, 0)
            if not os.environ.get("MUTATE_DEBUG"):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, 1)
                os.dup2(devnull, 2)
            code = run()
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(int(code))
    deadline, pause = time.monotonic() + timeout, 0.001
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None
        time.sleep(pause)
        pause = min(pause * 2, 0.1)  # quick children answered quickly, long ones polled rarely


def _run_items(items, record=None) -> int:
    """Run collected test items in order (fixtures set up and torn down as pytest does); 1 at the first failure."""
    from _pytest.runner import runtestprotocol

    for i, item in enumerate(items):
        reports = runtestprotocol(item, nextitem=items[i + 1] if i + 1 < len(items) else None, log=False)
        if record is not None:
            record(item, reports)
        elif any(r.failed for r in reports):
            return 1
    return 0


def _find_code(code: types.CodeType, qualname: str) -> types.CodeType | None:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            if const.co_qualname == qualname:
                return const
            found = _find_code(const, qualname)
            if found is not None:
                return found
    return None


def _swap_code(m: Mutant, code: types.CodeType) -> bool:
    """Give the live function around the mutant the mutated code: every reference to it (imports, methods,
    callbacks) runs the mutant, no re-import needed. False when it cannot be found (then: re-import)."""
    owner: object = sys.modules.get(module_name(m.path))
    parts = (m.function or "").split(".")
    for part in parts[:-1]:
        owner = getattr(owner, part, None)
    live = vars(owner).get(parts[-1]) if isinstance(owner, type) else getattr(owner, parts[-1], None)
    if isinstance(live, property):
        live = live.fget
    if isinstance(live, (staticmethod, classmethod)):
        live = live.__func__
    while hasattr(live, "__wrapped__"):
        live = live.__wrapped__
    if not isinstance(live, types.FunctionType):
        return False
    new = _find_code(code, live.__code__.co_qualname)
    if new is None or new.co_freevars != live.__code__.co_freevars:
        return False
    live.__code__ = new
    return True


def _same(a: object, b: object) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # noqa: BLE001 - not comparable: treated as changed
        return False


def _defaults(f: object) -> tuple:
    return (getattr(f, "__defaults__", None), getattr(f, "__kwdefaults__", None))


def _patch_values(m: Mutant, code: types.CodeType) -> bool | None:
    """For a mutant evaluated at import (a constant, a class attribute, a default): run the original and the
    mutated module code side by side and carry what differs onto the live objects (a mutable container
    updated in place, a constant rebound wherever the same name holds it, a default or class attribute
    replaced). True when done, False when not possible this way (then: re-import), None when the mutated
    module cannot even be imported (killed)."""
    name = module_name(m.path)
    live = sys.modules.get(name)
    if live is None:
        return False
    source = (SOURCE_ROOT / m.path).read_text()
    fresh = {"__name__": name, "__file__": str(SOURCE_ROOT / m.path), "__builtins__": __builtins__}
    original, mutated = dict(fresh), dict(fresh)
    exec(compile(source, str(SOURCE_ROOT / m.path), "exec"), original)
    try:
        exec(code, mutated)
    except Exception:  # noqa: BLE001 - the mutant does not import
        return None
    changes: list = []
    for key, before in original.items():
        after = mutated.get(key)
        if key.startswith("__") or after is None:
            continue
        if isinstance(before, type) and isinstance(after, type):
            if issubclass(before, enum.Enum):
                if any(before[n].value != after[n].value for n in before.__members__):
                    return False  # a member's value is baked into the member itself: re-import
                continue
            for attr, value in vars(before).items():
                new = vars(after).get(attr)
                if isinstance(value, types.FunctionType):
                    if _defaults(value) != _defaults(new):
                        changes.append(("defaults", getattr(live, key).__dict__[attr], new))
                elif not isinstance(value, (property, staticmethod, classmethod, types.MemberDescriptorType,
                                            types.GetSetDescriptorType)) and not attr.startswith("__") and \
                        not _same(value, new):
                    changes.append(("attr", getattr(live, key), attr, new))
        elif isinstance(before, types.FunctionType):
            if _defaults(before) != _defaults(after):
                changes.append(("defaults", getattr(live, key), after))
        elif not isinstance(before, types.ModuleType) and not _same(before, after):
            if _imported_elsewhere(name, key, getattr(live, key)):
                return False  # another module may have built something from it at import (a schema bound): re-import
            changes.append(("value", key, getattr(live, key), after))
    if not changes:
        return False
    for change in changes:
        if change[0] == "defaults":
            _, function, new = change
            function.__defaults__, function.__kwdefaults__ = _defaults(new)
        elif change[0] == "attr":
            _, owner, attr, new = change
            setattr(owner, attr, new)
        else:
            _, key, old, new = change
            if isinstance(old, (dict, list, set)) and type(old) is type(new):
                old.clear()
                old.update(new) if isinstance(old, (dict, set)) else old.extend(new)
                continue
            for module in list(sys.modules.values()):  # every `from x import KEY` holds it too
                if getattr(module, key, None) is old and (getattr(module, "__file__", None) or "").startswith(
                        str(ROOT)):
                    setattr(module, key, new)
    return True


def _imported_elsewhere(name: str, key: str, value: object) -> bool:
    """Another module of the repository holds this module constant (`from x import KEY`)."""
    return not isinstance(value, (dict, list, set)) and any(
        module_name != name and getattr(module, key, None) is value
        and (getattr(module, "__file__", None) or "").startswith(str(ROOT))
        for module_name, module in list(sys.modules.items()))


def _reimport_and_run(m: Mutant, code: types.CodeType) -> int:
    """For a mutant evaluated at import (a constant, a class attribute, a default): forget the repository's
    modules, serve the mutant on import, and run its tests in a fresh pytest session."""
    import pytest

    mine = [str(ROOT / d) for d in ("functions", "tests", "localrun")]
    for name, module in list(sys.modules.items()):
        if any((getattr(module, "__file__", None) or "").startswith(d) for d in mine):
            del sys.modules[name]
    sys.meta_path.insert(0, _MutantFinder(module_name(m.path), SOURCE_ROOT / m.path, code))
    try:  # with its imports as they are (a circular import the mutant makes fails only here, not in _patch_values)
        importlib.import_module(module_name(m.path))
    except Exception:  # noqa: BLE001 - the mutant does not import: every test of it fails
        return 2
    # Parameter ids may hold a mutated value: every parametrization of the chosen test functions runs.
    return int(pytest.main(["-x", *_pytest_args(list(dict.fromkeys(t.split("[")[0] for t in m.tests)))]))


class MutationPlugin:
    """Takes over pytest's run loop: tests are collected once, then forked children run them per mutant."""

    def __init__(self, mutants: list[Mutant], equivalent: dict[str, str], scopes_of, files, opts):
        self.mutants, self.equivalent, self.scopes_of, self.files, self.opts = mutants, equivalent, scopes_of, files, opts
        self.results: dict[str, Counter[str]] = defaultdict(Counter)

    def pytest_runtestloop(self, session):
        started = time.monotonic()
        items = list(session.items)
        by_id = {item.nodeid: item for item in items}
        covered, durations = self.coverage_pass(items)
        print(f"coverage pass: {len(items)} tests in {time.monotonic() - started:.0f} s", flush=True)
        fast = {t for t, d in durations.items() if d <= SLOW_TEST_S}
        users_of = {rel: name_users(rel) for rel, _ in self.files}
        defs_of = {rel: {node.name for node in ast.walk(ast.parse((SOURCE_ROOT / rel).read_text()))
                         if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))} for rel, _ in self.files}
        for m in self.mutants:
            by_line = covered.get(m.path, {})
            lines = range(m.line, m.end_line + 1) if m.in_body else users_of.get(m.path, {}).get(
                m.scope.rsplit(".", 1)[-1]) or by_line.keys()
            tests = {t for line in lines for t in by_line.get(line, ())} & fast
            if not m.in_body and not tests:  # a module of constants only (no line runs in a test): any test
                tests = fast
            # A constant, default or class attribute: first the tests that name it (or its class), since its
            # value often matters where no line of its file runs (a dataclass default, a bound in a schema).
            own_default = m.scope.rsplit(".", 1)[-1] in defs_of[m.path]  # a parameter's default: its function's tests
            naming = {t for t in fast if not m.in_body and not own_default and _names(m) & words_of(by_id[t])}
            m.tests = _within_budget(sorted(naming, key=lambda t: (durations[t], t)) + sorted(
                tests - naming, key=lambda t: (durations[t], t)), durations, self.opts.budget)
        for n, m in enumerate(self.mutants, 1):
            if m.ident in self.equivalent:
                m.status = "equivalent"
            elif not m.tests:
                m.status = "survived"  # no test runs this line
            else:
                code = mutated_code(m.path, self.scopes_of[m.path], m.index)
                chosen = [by_id[t] for t in m.tests]

                def run(m=m, code=code, chosen=chosen) -> int:
                    if m.function and _swap_code(m, code):
                        return _run_items(chosen)
                    if not m.function:
                        patched = _patch_values(m, code)
                        if patched is None:
                            return 2  # the mutant does not import: every test of it fails
                        if patched:
                            return _run_items(chosen)
                    return _reimport_and_run(m, code)

                result = _fork(run, 30 + 10 * sum(durations[t] for t in m.tests))
                m.status = "killed" if result in (None, 1, 2) else "survived" if result == 0 else "error"
            self.results[m.path][m.status] += 1
            if m.status in ("survived", "error") or self.opts.show_killed:
                note = "" if m.tests else " (no test runs this line)"
                print(f"  [{n}/{len(self.mutants)}] {m.status.upper()}{note} line {m.line}: {m.ident}", flush=True)
        print(report(self.results))
        for ident in sorted(set(self.equivalent) - {m.ident for m in self.mutants}):
            if self.opts.only is None:
                print(f"note: {EQUIVALENT_FILE.name} lists a mutant that no longer exists: {ident}")
        print(f"mutation pass: {len(self.mutants)} mutants, {len(items)} tests, {time.monotonic() - started:.0f} s")
        session.testscollected = 0
        return True

    def coverage_pass(self, items) -> tuple[dict[str, dict[int, set[str]]], dict[str, float]]:
        """Which tests execute which lines of the target files (sys.monitoring), and how long each takes."""
        digest = hashlib.sha256(" ".join(self.opts.tests).encode())
        for path in sorted(p for d in ("functions", "tests", "localrun") for p in (ROOT / d).rglob("*.py")):
            digest.update(path.read_bytes())
        out = CACHE / f"coverage-{digest.hexdigest()[:16]}.json"
        wanted = {str(SOURCE_ROOT / f): f for f, _ in target_files(None)}  # all: --only can reuse it
        if out.exists():
            print("coverage pass: cached", flush=True)
            return self._covered(json.loads(out.read_text()))
        CACHE.mkdir(exist_ok=True)
        partial = out.with_suffix(".partial")

        def run() -> int:
            mon = sys.monitoring
            tool = mon.COVERAGE_ID
            mon.use_tool_id(tool, "mutate")
            current: set[tuple[str, int]] = set()
            hits: dict[str, list[tuple[str, int]]] = {}
            durations: dict[str, float] = defaultdict(float)
            failed: list[str] = []

            def on_start(code, offset):
                if code.co_filename in wanted:
                    mon.set_local_events(tool, code, mon.events.LINE)
                return mon.DISABLE

            def on_line(code, line):
                current.add((wanted[code.co_filename], line))

            mon.register_callback(tool, mon.events.PY_START, on_start)
            mon.register_callback(tool, mon.events.LINE, on_line)
            mon.set_events(tool, mon.events.PY_START)

            def record(item, reports) -> None:
                hits[item.nodeid] = sorted(current)
                current.clear()
                durations[item.nodeid] = sum(r.duration for r in reports)
                failed.extend(item.nodeid for r in reports if r.failed)

            _run_items(items, record)
            partial.write_text(json.dumps({"hits": hits, "durations": durations, "failed": failed}))
            return 0

        if _fork(run, timeout=3600) != 0:
            sys.exit("the coverage pass crashed")
        data = json.loads(partial.read_text())
        if not data["failed"]:
            partial.rename(out)
        return self._covered(data)

    @staticmethod
    def _covered(data: dict) -> tuple[dict[str, dict[int, set[str]]], dict[str, float]]:
        if data["failed"]:
            sys.exit("the unmutated tests fail; fix them first:\n  " + "\n  ".join(data["failed"]))
        lines: dict[str, dict[int, set[str]]] = defaultdict(lambda: defaultdict(set))
        for nodeid, pairs in data["hits"].items():
            for rel, line in pairs:
                lines[rel][line].add(nodeid)
        return lines, data["durations"]


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--only", nargs="+", help="globs or substrings of the files to mutate, e.g. domain/stock.py")
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS, help="test paths (default: tests/unit tests/api)")
    parser.add_argument("--match", help="only the mutants whose id contains this text")
    parser.add_argument("--list", action="store_true", help="list the mutants without running them")
    parser.add_argument("--show-killed", action="store_true", help="print killed mutants too")
    parser.add_argument("--budget", type=float, default=BUDGET_S,
                        help=f"seconds of test time per mutant, the fastest covering tests first (default {BUDGET_S:g})")
    opts = parser.parse_args()
    os.chdir(ROOT)
    files = target_files(opts.only)
    mutants = [m for rel, scopes in files for m in mutants_of(rel, scopes)
               if opts.match is None or opts.match in m.ident]
    if opts.list:
        for m in mutants:
            print(f"{m.line:4}  {m.ident}")
        print(f"{len(mutants)} mutants")
        return 0
    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
    import pytest

    plugin = MutationPlugin(mutants, load_equivalents(), dict(files), files, opts)
    code = pytest.main(["-s", *_pytest_args(opts.tests)], plugins=[plugin])
    return 0 if plugin.results else int(code) or 1


def _score(c: Counter[str]) -> tuple[int, int, float]:
    considered = sum(c.values()) - c["equivalent"]
    return c["killed"], considered, 100.0 * c["killed"] / considered if considered else 100.0


def report(results: dict[str, Counter[str]]) -> str:
    rows = ["", f"{'module':40} {'mutants':>8} {'equiv':>6} {'killed':>7} {'survived':>9} {'score':>7}"]
    groups: dict[str, Counter[str]] = defaultdict(Counter)
    for path in sorted(results):
        c = results[path]
        killed, considered, score = _score(c)
        rows.append(f"{path:40} {sum(c.values()):8} {c['equivalent']:6} {killed:7} {c['survived'] + c['error']:9} "
                    f"{score:6.1f}%")
        groups[path.split("/")[1]].update(c)
    total: Counter[str] = Counter()
    for group, c in sorted(groups.items()):
        killed, considered, score = _score(c)
        rows.append(f"{'TOTAL ' + group + '/':40} {sum(c.values()):8} {c['equivalent']:6} {killed:7} "
                    f"{c['survived'] + c['error']:9} {score:6.1f}%")
        total.update(c)
    killed, considered, score = _score(total)
    rows.append(f"{'TOTAL':40} {sum(total.values()):8} {total['equivalent']:6} {killed:7} "
                f"{total['survived'] + total['error']:9} {score:6.1f}%")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())
