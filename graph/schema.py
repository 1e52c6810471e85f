"""The Strawberry schema, its exact Decimal scalar, and the exported SDL.

`python -m graph.schema` rewrites `graph/schema.graphql`, the file frontends
generate code from; a test fails when it differs from what the code declares.
"""

from __future__ import annotations

import re
import sys
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

import strawberry
from graphql import GraphQLError
from strawberry.exceptions import StrawberryInputCoercionError
from strawberry.schema.config import StrawberryConfig
from strawberry.types import ExecutionContext

from graph.limits import extensions
from graph.resolvers import Mutation, Query, Subscription

SDL_PATH = Path(__file__).with_name("schema.graphql")


def decimal_text(value: Decimal) -> str:
    """A Decimal as the API writes it (the CSV exports too)."""
    # Fixed-point always: str() would give "0E-10" for a NUMERIC zero of scale 10.
    # The types round USD amounts to 6 places (`graph.types.usd`) before they get here;
    # prices and sizes keep their own digits. A zero is never signed.
    return format(value.copy_abs() if value.is_zero() else value, "f")


_serialize_decimal = decimal_text  # the scalar's name for it


def _parse_decimal(value: object) -> Decimal:
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None
    if not parsed.is_finite():
        raise ValueError(f"{value!r} is not a finite decimal number")
    return parsed


DECIMAL = strawberry.scalar(
    name="Decimal",
    description="An exact decimal number, as a string (never a float). Every USD amount "
    "(the fields ending in Usd) has exactly 6 decimal places, rounded half-even from the "
    "exact stored value, and is never -0.000000; avgVolumePerUser has 2, also rounded "
    "half-even; prices and sizes keep Hyperliquid's own digits.",
    serialize=decimal_text,
    parse_value=_parse_decimal,
)


_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


def _parse_date(value: object) -> date:
    """Only `YYYY-MM-DD`, as the schema and the CSV exports say: Python's
    `date.fromisoformat` (Strawberry's own Date) also takes `20261130` and `2026-W48-1`."""
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    # Strawberry's coercion error: a literal's ValueError would be an internal error.
    raise StrawberryInputCoercionError(
        f"Value cannot represent a Date: {str(value)[:40]!r}: expected YYYY-MM-DD"
    )


DATE = strawberry.scalar(
    name="Date",
    description="Date (isoformat)",  # Strawberry's own description: the SDL is unchanged
    serialize=date.isoformat,
    parse_value=_parse_date,
)


class Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Not logged here: the endpoint logs unexpected errors with the request id, and
        a client's bad document is not worth a server-side error line."""


def build_schema(*, introspection: bool = True) -> strawberry.Schema:
    return Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions(introspection=introspection),
        config=StrawberryConfig(
            scalar_map={Decimal: DECIMAL, date: DATE},
            # "Did you mean …?" would reveal the schema that introspection hides.
            disable_field_suggestions=not introspection,
        ),
    )


def sdl() -> str:
    return build_schema().as_str() + "\n"


def main() -> int:
    SDL_PATH.write_text(sdl())
    print(f"wrote {SDL_PATH.name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
