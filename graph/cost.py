"""What a document costs: what its database-backed root fields read, summed.

`COSTS` is the one table: every root field of the schema has its entry (a test
checks it), a function of the field's arguments (variables and defaults
resolved) and of its selections. A field aliased 30 times costs 30 times. The
README's "Cost of a document" states the same formula:

- a range of days (`range`, or `between` when given) costs its number of days;
- a list costs its `limit` or `first` (the schema's default when not given);
- `wallet` costs its days, plus the `first` of each `fills` and the days of each
  `accountValue` it selects;
- `dashboardSummary` costs 2 (two days), each mutation 1 (plus one per address
  `trackWallets` is given).

A document over HL_ANALYTICS_COST_BUDGET is refused before it runs. Arguments that
cannot be read (a bad date, a missing variable) count as the most they could be:
validation or the resolver refuses them anyway.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Undefined,
    value_from_ast_untyped,
)

from graph.errors import ClientError
from graph.limits import MAX_FIELDS, expanded_fields

RANGE_DAYS = {"D7": 7, "D30": 30, "D90": 90}
DEFAULT_RANGE = "D30"
MAX_DAYS = 366
DEFAULT_LIMIT = 20  # topWallets
DEFAULT_FIRST = 50  # trackedWallets, fills
MAX_FIRST = 200


class CostOverBudget(ClientError):
    """The document reads more than HL_ANALYTICS_COST_BUDGET allows."""

    code = "COST_LIMIT_EXCEEDED"
    status = 400


@dataclass(frozen=True, slots=True)
class Selected:
    """A field as a cost function sees it: its arguments' values and its sub-fields."""

    arguments: Mapping[str, Any]
    fields: tuple[FieldNode, ...]
    fragments: Mapping[str, FragmentDefinitionNode]
    variables: Mapping[str, Any]

    def number(self, name: str, default: int, most: int) -> int:
        value = self.arguments.get(name, default)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            return max(0, min(value, most))
        return most

    def days(self) -> int:
        between = self.arguments.get("between")
        if isinstance(between, Mapping):
            try:
                first = date.fromisoformat(str(between.get("from")))
                last = date.fromisoformat(str(between.get("to")))
            except ValueError:
                return MAX_DAYS
            return max(1, min((last - first).days + 1, MAX_DAYS))
        if between is not None:
            return MAX_DAYS
        return RANGE_DAYS.get(str(self.arguments.get("range", DEFAULT_RANGE)), MAX_DAYS)

    def sub(self, name: str) -> Iterator[Selected]:
        for node in self.fields:
            if node.name.value == name:
                yield selected(node, self.fragments, self.variables)


def _wallet(field: Selected) -> int:
    fills = sum(f.number("first", DEFAULT_FIRST, MAX_FIRST) for f in field.sub("fills"))
    account_days = sum(a.days() for a in field.sub("accountValue"))
    return field.days() + fills + account_days


def _track(field: Selected) -> int:
    addresses = field.arguments.get("addresses")
    return 1 + (len(addresses) if isinstance(addresses, list) else 0)


COSTS: dict[str, Callable[[Selected], int]] = {
    "dashboardSummary": lambda field: 2,
    "globalMetrics": Selected.days,
    "topWallets": lambda field: field.days() + field.number("limit", DEFAULT_LIMIT, 100),
    "wallet": _wallet,
    "coinBreakdown": Selected.days,
    "trackedWallets": lambda field: field.number("first", DEFAULT_FIRST, MAX_FIRST),
    "trackWallets": _track,
    "labelWallet": lambda field: 1,
    "untrackWallet": lambda field: 1,
}


def _fields(
    selection_set: SelectionSetNode | None,
    fragments: Mapping[str, FragmentDefinitionNode],
    entered: frozenset[str] = frozenset(),
) -> Iterator[FieldNode]:
    """The fields of a selection set, fragments expanded (each cycle cut once)."""
    for node in selection_set.selections if selection_set else ():
        if isinstance(node, FieldNode):
            yield node
        elif isinstance(node, InlineFragmentNode):
            yield from _fields(node.selection_set, fragments, entered)
        elif isinstance(node, FragmentSpreadNode):
            name = node.name.value
            if name not in entered and name in fragments:
                yield from _fields(fragments[name].selection_set, fragments, entered | {name})


def selected(
    node: FieldNode, fragments: Mapping[str, FragmentDefinitionNode], variables: Mapping[str, Any]
) -> Selected:
    values = {
        arg.name.value: value_from_ast_untyped(arg.value, dict(variables))
        for arg in node.arguments or ()
    }
    # A variable that was not sent leaves its argument to the schema's default.
    arguments = {name: value for name, value in values.items() if value is not Undefined}
    return Selected(arguments, tuple(_fields(node.selection_set, fragments)), fragments, variables)


def document_cost(
    document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any] | None
) -> int:
    """The cost of the operation that would run; 0 when none can (GraphQL says why).

    Fragments are expanded to count, so a document selecting more fields than
    MAX_FIELDS once expanded (a fragment bomb) is not walked: it costs 0 here and
    validation refuses it (graph/limits.py counts it without expanding)."""
    if expanded_fields(document) > MAX_FIELDS:
        return 0
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return 0
    operation = operations[0]
    fragments = {
        d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
    }
    values = dict(variables or {})
    for definition in operation.variable_definitions or ():
        name = definition.variable.name.value
        if name not in values and definition.default_value is not None:
            values[name] = value_from_ast_untyped(definition.default_value)
    total = 0
    for node in _fields(operation.selection_set, fragments):
        cost = COSTS.get(node.name.value)
        if cost is not None:
            total += cost(selected(node, fragments, values))
    return total


def check_budget(cost: int, budget: int) -> None:
    if cost > budget:
        raise CostOverBudget(
            f"the document costs {cost}, over the budget of {budget} "
            "(HL_ANALYTICS_COST_BUDGET): a range costs its days, a list its limit or "
            "first, summed over every field and alias; ask for fewer days or fields"
        )
