"""A GraphQL request as it arrives over HTTP: bytes first, parsed only when needed.

The endpoint keys its cache on what a request means (`meaning`): the document as
graphql-core prints it once parsed (no whitespace, comments or formatting of the
client's), the operation name, and the variables with their keys sorted. Extra
JSON keys, key order, spacing and comments therefore cannot make a miss. The
meaning of recently seen bodies is remembered by their bytes, so a repeated body
is answered without parsing it again. `classify` reads the operation's type and
root fields (for GET refusing mutations and for the cache's TTL).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    OperationDefinitionNode,
    OperationType,
    parse,
    print_ast,
)
from starlette.types import Receive

from graph.errors import ClientError
from graph.limits import MAX_BODY_BYTES, MAX_TOKENS

JSON = b"application/json"
TOO_LARGE = f"the request is larger than {MAX_BODY_BYTES} bytes"


@dataclass(frozen=True, slots=True)
class Operation:
    kind: OperationType
    root_fields: frozenset[str]


@lru_cache(maxsize=512)
def parsed(query: str) -> tuple[DocumentNode, str] | None:
    """The document and its printed (normalised) text; None when it does not parse."""
    try:
        document = parse(query, max_tokens=MAX_TOKENS, no_location=True)
    except (GraphQLError, RecursionError):
        return None
    return document, print_ast(document)


@lru_cache(maxsize=256)
def classify(query: str, operation_name: str | None) -> Operation | None:
    """The chosen operation's type and root fields; None when Strawberry must explain why not.

    Several operations without `operationName` are refused here: GraphQL requires the
    name then, and Strawberry would run the first one instead of saying so."""
    parsed_query = parsed(query)
    if parsed_query is None:
        return None
    document = parsed_query[0]
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is None and len(operations) > 1:
        raise ClientError(
            "Must provide operation name if query contains multiple operations: "
            "send `operationName`"
        )
    if operation_name is not None:
        operations = [o for o in operations if o.name and o.name.value == operation_name]
    if len(operations) != 1:
        return None
    selections = operations[0].selection_set.selections
    fields = frozenset(s.name.value for s in selections if isinstance(s, FieldNode))
    if len(fields) != len(selections):
        fields = frozenset()  # a fragment at the root hides its fields: the shortest TTL
    return Operation(operations[0].operation, fields)


@dataclass(frozen=True, slots=True)
class GraphQLRequest:
    query: str
    variables: dict[str, Any] | None
    operation_name: str | None
    method: str


def _from_params(params: Mapping[str, Any], method: str) -> GraphQLRequest:
    query = params.get("query")
    variables = params.get("variables")
    name = params.get("operationName")
    if isinstance(variables, str) and variables:
        try:
            variables = json.loads(variables)
        except ValueError:
            raise ClientError("`variables` is not valid JSON") from None
        except RecursionError:  # the json module recurses once per nesting level
            raise ClientError("`variables` is nested too deeply") from None
    if not isinstance(query, str) or not query.strip():
        raise ClientError("send a GraphQL document in `query`")
    if variables is not None and variables != "" and not isinstance(variables, dict):
        raise ClientError("`variables` must be a JSON object")
    if name is not None and not isinstance(name, str):
        raise ClientError("`operationName` must be a string")
    return GraphQLRequest(query, variables or None, name or None, method)


def meaning(read: GraphQLRequest) -> str:
    """The cache's digest of a request: the same for every spelling of the same question."""
    parsed_query = parsed(read.query)
    # A document that does not parse is answered 400, never cached: its text will do.
    text = read.query if parsed_query is None else parsed_query[1]
    variables = json.dumps(read.variables or {}, sort_keys=True, separators=(",", ":"))
    key = "\0".join((text, read.operation_name or "", variables))
    return hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


@dataclass(frozen=True, slots=True)
class RawRequest:
    method: str
    raw: bytes  # POST's body, or GET's query string
    params: dict[str, str] | None  # GET's parameters; None: `raw` is JSON

    def parse(self) -> GraphQLRequest:
        if self.params is not None:
            return _from_params(self.params, self.method)
        try:
            payload = json.loads(self.raw)
        except ValueError:
            raise ClientError("the request body is not valid JSON") from None
        except RecursionError:  # the json module recurses once per nesting level
            raise ClientError("the request body is nested too deeply") from None
        if not isinstance(payload, dict):
            raise ClientError("the request body must be a JSON object {query, variables}")
        return _from_params(payload, self.method)


def query_params(query_string: bytes) -> dict[str, str]:
    return dict(parse_qsl(query_string.decode("latin-1"), keep_blank_values=True))


async def read_post(headers: Mapping[bytes, bytes], receive: Receive) -> RawRequest:
    """The JSON body, refused when it is not JSON or too large (before reading it all)."""
    content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
    if content_type != JSON:
        raise ClientError("send the request as JSON (Content-Type: application/json)")
    declared = headers.get(b"content-length", b"")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ClientError(TOO_LARGE)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientError("the client went away")
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise ClientError(TOO_LARGE)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return RawRequest("POST", b"".join(chunks), None)
