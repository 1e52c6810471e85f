"""Limits that refuse hostile documents before anything runs.

Strawberry's extensions do the generic work (token count while parsing, depth,
aliases, introspection off, parse and validation results cached); this module
adds the one rule of our own: `topWallets(limit:)` outside 1..100 is a
validation error, whether the value is written in the document or sent as a
variable, so no resolver ever sees it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from graphql import (
    FieldNode,
    GraphQLError,
    IntValueNode,
    OperationDefinitionNode,
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
LIMIT_MIN, LIMIT_MAX = 1, 100
CACHE_SIZE = 512


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
        partial(ValidationCache, maxsize=CACHE_SIZE),
        LimitRange,
    ]
