"""Limits that refuse hostile documents before anything runs.

Strawberry's extensions do the generic work (token count while parsing, depth,
aliases, introspection off, parse and validation results cached); this module
adds two rules of our own. `topWallets(limit:)` outside 1..100 is a
validation error, whether the value is written in the document or sent as a
variable, so no resolver ever sees it. And a document may not select more
fields, once its fragments are expanded, than it may have tokens: graphql-core's
validation rules expand fragment spreads, so a few hundred tokens of fragments
that each spread the next one twice would otherwise cost them exponential time
(2^18 fields, seconds of a blocked event loop, from 1 kB of text). The budget is
counted without expanding anything and checked before validation runs.
Integer literals longer than an Int can be are refused before validation too, and
with introspection off the endpoint strips "Did you mean …?" from every message.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    visit,
)
from graphql.language import Visitor
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import (
    AddValidationRules,
    MaxAliasesLimiter,
    MaxTokensLimiter,
    ParserCache,
    QueryDepthLimiter,
    SchemaExtension,
    ValidationCache,
)

MAX_BODY_BYTES = 64 * 1024
MAX_TOKENS = 2_000
# Our fields nest 3 deep. Strawberry's depth limit skips introspection fields
# (GraphiQL's query nests 13 levels); the token limit bounds those.
MAX_DEPTH = 6
MAX_ALIASES = 30
# Addresses one `trackWallets` call may give.
MAX_ADDRESSES = 100
LIMIT_MIN, LIMIT_MAX = 1, 100
CACHE_SIZE = 512
# A document without fragments selects at most one field per token: fragments may
# shorten a document, never make it ask for more.
MAX_FIELDS = MAX_TOKENS
# GraphQL's Int is 32-bit: 10 digits and a sign. Longer literals are refused before
# graphql-core converts them (Python refuses to convert over 4,300 digits, which
# graphql-core reported as an unexpected error).
MAX_INT_DIGITS = 10
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


def without_suggestions(message: str) -> str:
    """The message without graphql-core's "Did you mean …?" (it names the schema's
    arguments, enum values and types, which introspection off is meant to hide)."""
    return _SUGGESTION.sub("", message)


class _IntLiterals(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.too_long: str | None = None

    def enter_int_value(self, node: IntValueNode, *_: object) -> None:
        if len(node.value.lstrip("-")) > MAX_INT_DIGITS and self.too_long is None:
            self.too_long = node.value


def long_int_literal(document: DocumentNode) -> GraphQLError | None:
    collector = _IntLiterals()
    visit(document, collector)
    if collector.too_long is None:
        return None
    digits = len(collector.too_long.lstrip("-"))
    return GraphQLError(
        f"an integer literal has {digits} digits; GraphQL's Int has at most {MAX_INT_DIGITS}",
        extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
    )


def limit_error(value: object) -> GraphQLError:
    return GraphQLError(
        f"topWallets(limit: {value}) is out of range: limit must be between "
        f"{LIMIT_MIN} and {LIMIT_MAX}",
        extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
    )


class _LimitCollector(Visitor):
    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__()
        self.variables = variables
        self.bad: list[object] = []

    def enter_field(self, node: FieldNode, *_: object) -> None:
        if node.name.value != "topWallets":
            return
        for arg in node.arguments or ():
            if arg.name.value != "limit":
                continue
            value: object = None
            if isinstance(arg.value, IntValueNode):
                value = int(arg.value.value)
            elif isinstance(arg.value, VariableNode):
                value = self.variables.get(arg.value.name.value)
            if isinstance(value, int) and not LIMIT_MIN <= value <= LIMIT_MAX:
                self.bad.append(value)


class LimitRange(SchemaExtension):
    """Refuses `topWallets(limit:)` outside 1..100 during validation."""

    def on_validate(self) -> Iterator[None]:
        # Before the yield: Strawberry decides inside the validation step whether to
        # execute, and ValidationCache (earlier in the list) has validated by now.
        self._check()
        yield

    def _check(self) -> None:
        ctx = self.execution_context
        if ctx.pre_execution_errors or ctx.graphql_document is None:
            return
        operations = [
            d for d in ctx.graphql_document.definitions if isinstance(d, OperationDefinitionNode)
        ]
        variables = dict(ctx.variables or {})
        # A variable's default applies when the client sent none.
        for operation in operations:
            for definition in operation.variable_definitions or ():
                name = definition.variable.name.value
                if name not in variables and isinstance(definition.default_value, IntValueNode):
                    variables[name] = int(definition.default_value.value)
        collector = _LimitCollector(variables)
        for operation in operations:
            visit(operation, collector)
        if collector.bad:
            ctx.pre_execution_errors = [limit_error(v) for v in collector.bad]


def expanded_fields(document: DocumentNode) -> int:
    """How many fields the document's operations select with every fragment expanded,
    counted once per fragment (cycles and unknown fragments are validation's to report)."""
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    sizes: dict[str, int] = {}

    def size(selection_set: SelectionSetNode | None, entered: frozenset[str]) -> int:
        total = 0
        for node in selection_set.selections if selection_set else ():
            if isinstance(node, FieldNode):
                total += 1 + size(node.selection_set, entered)
            elif isinstance(node, InlineFragmentNode):
                total += size(node.selection_set, entered)
            elif isinstance(node, FragmentSpreadNode):
                name = node.name.value
                if name in entered or name not in fragments:
                    continue
                if name not in sizes:
                    sizes[name] = size(fragments[name].selection_set, entered | {name})
                total += sizes[name]
        return total

    return sum(
        size(d.selection_set, frozenset())
        for d in document.definitions
        if isinstance(d, OperationDefinitionNode)
    )


class FieldBudget(ValidationCache):
    """Validation (cached), for documents within MAX_FIELDS once fragments are expanded."""

    def on_validate(self) -> Iterator[None]:
        ctx = self.execution_context
        document = ctx.graphql_document
        fields = expanded_fields(document) if document is not None else 0
        too_long = long_int_literal(document) if document is not None else None
        if too_long is not None:
            ctx.pre_execution_errors = [too_long]
            yield
            return
        if fields > MAX_FIELDS:
            ctx.pre_execution_errors = [
                GraphQLError(
                    f"the document selects {fields} fields once its fragments are expanded; "
                    f"at most {MAX_FIELDS} are allowed",
                    extensions={"code": "GRAPHQL_VALIDATION_FAILED"},
                )
            ]
            yield
            return
        yield from super().on_validate()


# Rule classes are made once: the validation cache is keyed by them, and
# Strawberry's limiters would make new classes for every request.
_RULES = (
    *QueryDepthLimiter(max_depth=MAX_DEPTH).validation_rules,
    *MaxAliasesLimiter(max_alias_count=MAX_ALIASES).validation_rules,
)
_NO_INTROSPECTION = (*_RULES, NoSchemaIntrospectionCustomRule)


def extensions(*, introspection: bool) -> list[Callable[[], SchemaExtension]]:
    """Factories, so each request gets its own extension objects."""
    rules = list(_RULES if introspection else _NO_INTROSPECTION)
    return [
        partial(MaxTokensLimiter, max_token_count=MAX_TOKENS),
        partial(ParserCache, maxsize=CACHE_SIZE),
        partial(AddValidationRules, rules),
        partial(FieldBudget, maxsize=CACHE_SIZE),
        LimitRange,
    ]
