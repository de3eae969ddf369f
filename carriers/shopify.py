"""Shopify, through the GraphQL Admin API (REST is legacy since 2024-10-01): the order feed (queries and
their reading in carriers/shopify_orders.py) and the shop's own discount codes for resell coupons.

API facts relied on (carrier-samples README §6, §8 and §10, shopify.dev):

- Endpoint: ``POST {base_url}/admin/api/{api_version}/graphql.json`` with a JSON body
  ``{"query": ..., "variables": ...}``; auth header ``X-Shopify-Access-Token`` (scope ``read_orders``, plus
  ``read_all_orders`` for orders older than 60 days, and ``write_discounts`` for coupons). Stable versions
  are quarterly and supported for about a year; the default, 2026-07, is one whose field names were checked
  here (``Customer.email`` and ``Customer.emailMarketingConsent`` are deprecated there, so the customer is
  read through ``defaultEmailAddress``).
- Incremental poll: ``orders(first:, after:, sortKey: UPDATED_AT, query: "updated_at:>'<ISO>'")``, cursor
  pagination through ``pageInfo { hasNextPage endCursor }`` (at most 250 per page).
- Rate limits are cost based, per app and store: a bucket restoring 100 points/s on Standard plans (200
  Advanced, 1000 Plus), and no single query may *request* more than 1,000 points (``MAX_COST_EXCEEDED``, with
  ``extensions.cost``/``maxCost``): a page too costly shrinks in proportion to ``maxCost / cost`` and stays
  smaller for the life of the adapter.
- Throttling is HTTP 200 with ``errors[].extensions.code == "THROTTLED"``, no ``data``, and
  ``extensions.cost {requestedQueryCost, throttleStatus {currentlyAvailable, restoreRate}}``: we wait
  (requested - available) / restoreRate seconds (1 s if those numbers are missing) and ask again, at most
  ``RetryPolicy.attempts`` times, then raise TransientError with ``retry_after``. HTTP 429/5xx (with
  Retry-After, whatever the body says) are retried by http.Http.
- Other GraphQL errors: ``ACCESS_DENIED`` (a missing scope) → AuthError, ``INTERNAL_SERVER_ERROR`` →
  TransientError, anything else → ResponseError with Shopify's message. 401/403 → AuthError (http.classify).
- Discount codes: ``discountCodeBasicCreate`` with ``usageLimit: 1``, ``appliesOncePerCustomer: true``,
  ``startsAt``/``endsAt``, items all; "10%" is ``percentage: 0.1``, "5.00" ``discountAmount {amount: "5.00"}``
  (a decimal string in the *shop's* currency: Shopify has no per-code currency).
  ``customerSelection: {all: true}``, not the customer: usageLimit 1 already makes the unguessable code
  single-use, and a per-customer code fails exactly where it hurts: guests (no customer gid to name),
  customers who check out under another address, and customers deleted or merged since the order.
  ``customerSelection`` is marked deprecated in favour of ``context`` (2026-01, 2026-07) but still accepted;
  the published example uses it. A duplicate code is a ``userErrors`` entry (code TAKEN, field [..., "code"]);
  its exact message is not in the published samples, so TAKEN/DUPLICATE or a message saying
  "unique"/"already taken"/"already exists" on the code field all count as our earlier attempt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import httpx

import carriers.read as read
from carriers.base import (
    COMMON_KEYS,
    AuthError,
    CarrierError,
    CouponSpec,
    FeedBatch,
    IssuedCode,
    OrderRecord,
    ResponseError,
    TransientError,
)
from carriers.http import Http, Limits, RetryPolicy, make_client, parse_json
from carriers.shopify_orders import (
    ORDER_LINES_QUERY,
    ORDERS_QUERY,
    PAGE_SIZE_THAT_FITS,
    OrdersPage,
    UnreadableOrder,
    parse_lines,
    parse_orders_page,
)
from tracker.clock import Clock
from tracker.settings import Section

DEFAULT_API_VERSION = "2026-07"
DEFAULT_PAGE_SIZE = 100  # an upper bound: see shopify_orders.ORDER_COST
MAX_PAGE_SIZE = 250
DEFAULT_LIMITS = Limits(concurrency=1, per_second=2.0)
DEFAULT_RETRY = RetryPolicy()
DEFAULT_THROTTLE_WAIT = 1.0  # seconds, when a THROTTLED answer carries no usable cost numbers
CONFIG_KEYS = frozenset({"base_url", "access_token", "api_version", "page_size",
                         "concurrency", "per_second", "per_day"})
TAKEN_CODES = frozenset({"TAKEN", "DUPLICATE"})
_TAKEN_MESSAGE = re.compile(r"unique|already (been )?taken|already exists", re.IGNORECASE)

DISCOUNT_MUTATION = """
mutation TrackmailCoupon($input: DiscountCodeBasicInput!) {
  discountCodeBasicCreate(basicCodeDiscount: $input) {
    codeDiscountNode { id codeDiscount { ... on DiscountCodeBasic { codes(first: 1) { nodes { code } } endsAt } } }
    userErrors { field code message }
  }
}"""


class QueryTooCostly(ResponseError):
    """Shopify refused a query whose requested cost exceeds the single-query limit."""

    def __init__(self, message: str, *, cost: int | None, max_cost: int | None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.cost = cost
        self.max_cost = max_cost


def throttle_wait(body: Mapping[str, Any]) -> float:
    """Seconds until the bucket holds the refused query's requested cost again."""
    cost = body.get("extensions", {}).get("cost") if isinstance(body.get("extensions"), Mapping) else None
    status = cost.get("throttleStatus") if isinstance(cost, Mapping) else None
    if not isinstance(status, Mapping):
        return DEFAULT_THROTTLE_WAIT
    numbers = (cost.get("requestedQueryCost"), status.get("currentlyAvailable"), status.get("restoreRate"))
    if not all(isinstance(n, (int, float)) and not isinstance(n, bool) for n in numbers) or numbers[2] <= 0:
        return DEFAULT_THROTTLE_WAIT
    requested, available, rate = numbers
    deficit = requested - available
    return deficit / rate if deficit > 0 else DEFAULT_THROTTLE_WAIT


def graphql_error(body: Mapping[str, Any], source: str, status_code: int, text: str,
                  scope: str = "read_orders") -> CarrierError:
    """The error a non-throttled `errors` member means (THROTTLED is waited out by the caller); `scope` is
    the one the refused operation needs."""
    errors = body.get("errors")
    entries = errors if isinstance(errors, list) else [errors]
    messages = [str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in entries]
    extensions = [e.get("extensions") for e in entries if isinstance(e, Mapping)]
    extensions = [x for x in extensions if isinstance(x, Mapping)]
    codes = {x.get("code") for x in extensions}
    kwargs: dict[str, Any] = {"source": source, "status_code": status_code, "body": text}
    message = "; ".join(messages)
    if "ACCESS_DENIED" in codes:
        return AuthError(f"access denied (the app needs the {scope} scope): {message}", **kwargs)
    if "INTERNAL_SERVER_ERROR" in codes:
        return TransientError(f"Shopify failed: {message}", **kwargs)
    if "MAX_COST_EXCEEDED" in codes:
        cost = next((x for x in extensions if x.get("code") == "MAX_COST_EXCEEDED"), {})
        numbers = [cost.get(k) if isinstance(cost.get(k), int) else None for k in ("cost", "maxCost")]
        return QueryTooCostly(f"query too costly: {message}", cost=numbers[0], max_cost=numbers[1], **kwargs)
    return ResponseError(f"GraphQL error: {message}", **kwargs)


# ── The adapter ───────────────────────────────────────────────────────────────────────────────────────────


def _since(since: datetime) -> str:
    """Shopify's search syntax wants whole seconds; flooring keeps every order updated after `since`."""
    if since.tzinfo is None:
        raise ValueError(f"since must be an aware datetime, got {since!r}")
    return since.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


class ShopifyMarketplace:
    """One Shopify store's orders, read with an Admin API access token."""

    def __init__(self, name: str, *, base_url: str, access_token: str, api_version: str = DEFAULT_API_VERSION,
                 page_size: int = DEFAULT_PAGE_SIZE, limits: Limits = DEFAULT_LIMITS,
                 retry: RetryPolicy = DEFAULT_RETRY, transport: httpx.AsyncBaseTransport | None = None) -> None:
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}, not {page_size}")
        self.name = name
        self.endpoint = f"/admin/api/{api_version}/graphql.json"
        self.page_size = min(page_size, PAGE_SIZE_THAT_FITS)
        self.retry = retry
        client = make_client(base_url.rstrip("/"), transport=transport,
                             headers={"X-Shopify-Access-Token": access_token, "Content-Type": "application/json"})
        self.http = Http(name, client, limits, retry)

    async def changes(self, since: datetime) -> FeedBatch:
        search = f"updated_at:>'{_since(since)}'"
        orders: list[OrderRecord] = []
        problems: list[str] = []
        after: str | None = None
        while True:
            page = await self._page(search, after)
            problems += page.problems
            for index, record in enumerate(page.orders):
                if index in page.more_lines:
                    record, problem = await self._complete_lines(record, *page.more_lines[index])
                    if record is None:
                        problems.append(problem)
                        continue
                orders.append(record)
            if not page.has_next:
                break
            if page.end_cursor == after:
                raise ResponseError(f"the orders cursor does not advance ({after!r})", source=self.name)
            after = page.end_cursor
        cursor = max((order.updated_at for order in orders), default=since)
        return FeedBatch(tuple(orders), cursor, tuple(problems))

    async def _page(self, search: str, after: str | None) -> OrdersPage:
        """One page of orders; a page Shopify finds too costly is asked again, smaller."""
        while True:
            variables = {"first": self.page_size, "after": after, "query": search}
            try:
                data = await self.graphql(ORDERS_QUERY, variables)
            except QueryTooCostly as exc:
                if self.page_size == 1:
                    raise
                scaled = self.page_size * exc.max_cost // exc.cost if exc.cost and exc.max_cost else 0
                self.page_size = max(1, min(self.page_size - 1, scaled or self.page_size // 2))
                continue
            return parse_orders_page(data, self.name)

    async def _complete_lines(self, record: OrderRecord, gid: str,
                              cursor: str | None) -> tuple[OrderRecord | None, str]:
        """The order with all its lines, or (None, problem) when a follow-up page cannot be read."""
        lines = list(record.lines)
        while cursor is not None:
            data = await self.graphql(ORDER_LINES_QUERY, {"id": gid, "after": cursor})
            order = data.get("order")
            try:
                if not isinstance(order, Mapping):
                    raise UnreadableOrder("it is gone (order(id:) answered null)")
                more, following = parse_lines(order.get("lineItems"), start=len(lines))
            except UnreadableOrder as exc:
                return None, f"{self.name}: order {record.number} ({gid}) skipped: {exc}"
            if following == cursor:
                raise ResponseError(f"the line items cursor of order {gid} does not advance", source=self.name)
            lines += more
            cursor = following
        return replace(record, lines=tuple(lines)), ""

    async def graphql(self, query: str, variables: Mapping[str, Any]) -> dict[str, Any]:
        """The `data` of one query; THROTTLED answers are waited out a bounded number of times."""
        return (await self._answer(query, variables))[0]

    async def _answer(self, query: str, variables: Mapping[str, Any],
                      scope: str = "read_orders") -> tuple[dict[str, Any], httpx.Response]:
        for attempt in range(1, self.retry.attempts + 1):
            response = await self.http.request("POST", self.endpoint, json={"query": query, "variables": variables})
            body = parse_json(response, self.name)
            if not isinstance(body, dict):
                raise ResponseError("expected a JSON object", source=self.name, status_code=response.status_code,
                                    body=response.text)
            if not body.get("errors"):
                if not isinstance(body.get("data"), dict):
                    raise ResponseError("the answer has no data", source=self.name,
                                        status_code=response.status_code, body=response.text)
                return body["data"], response
            if not _throttled(body):
                raise graphql_error(body, self.name, response.status_code, response.text, scope)
            wait = throttle_wait(body)
            if attempt == self.retry.attempts or wait > self.retry.max_inline_wait:
                raise TransientError("throttled: the query cost budget is used up", source=self.name,
                                     status_code=response.status_code, body=response.text, retry_after=wait)
            await self.retry.sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    async def create_code(self, spec: CouponSpec) -> IssuedCode:
        """A single-use discount code (scope write_discounts); the code existing already is success."""
        data, response = await self._answer(DISCOUNT_MUTATION, {"input": discount_input(spec)}, "write_discounts")
        problem = creation_problem(data, spec.code)
        if problem:
            raise ResponseError(problem, source=self.name, status_code=response.status_code, body=response.text)
        return IssuedCode(spec.code, spec.expires_at)

    async def aclose(self) -> None:
        await self.http.aclose()


def _throttled(body: Mapping[str, Any]) -> bool:
    errors = body.get("errors")
    return isinstance(errors, list) and any(
        isinstance(e, Mapping) and isinstance(e.get("extensions"), Mapping)
        and e["extensions"].get("code") == "THROTTLED" for e in errors)


# ── Discount codes (pure) ─────────────────────────────────────────────────────────────────────────────────


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")


def discount_input(spec: CouponSpec) -> dict[str, Any]:
    """The DiscountCodeBasicInput for one single-use code."""
    if spec.percent:
        value: dict[str, Any] = {"percentage": float(spec.value / 100)}
    else:
        value = {"discountAmount": {"amount": f"{spec.value:f}", "appliesOnEachItem": False}}
    return {
        "title": f"Thank-you coupon {spec.code} (trackmail {spec.reference})",
        "code": spec.code,
        "startsAt": _iso(spec.starts_at),
        "endsAt": _iso(spec.expires_at),
        "customerSelection": {"all": True},
        "customerGets": {"value": value, "items": {"all": True}},
        "appliesOncePerCustomer": True,
        "usageLimit": 1,
    }


def code_taken(error: Mapping[str, Any]) -> bool:
    """A userErrors entry saying the code exists already."""
    field = error.get("field")
    last = field[-1] if isinstance(field, list) and field else field
    if last not in (None, "code"):
        return False
    return error.get("code") in TAKEN_CODES or bool(_TAKEN_MESSAGE.search(str(error.get("message", ""))))


def creation_problem(data: Mapping[str, Any], code: str) -> str:
    """What is wrong with a discountCodeBasicCreate answer for `code`, or "" when the code exists now."""
    payload = data.get("discountCodeBasicCreate")
    if not isinstance(payload, Mapping):
        return "the answer has no discountCodeBasicCreate"
    errors = [e for e in read.items(payload.get("userErrors"), strict=False) if isinstance(e, Mapping)]
    if any(code_taken(e) for e in errors):
        return ""
    if errors:
        return "Shopify refused the discount code: " + "; ".join(
            f"{'.'.join(map(str, e.get('field') or []))}: {e.get('message')}" for e in errors)
    created = created_codes(payload)
    if code.casefold() not in {c.casefold() for c in created}:
        return f"Shopify answered without the code {code} (codes: {created})"
    return ""


def created_codes(payload: Mapping[str, Any]) -> list[str]:
    node = read.obj(payload.get("codeDiscountNode"), strict=False)
    discount = read.obj(node.get("codeDiscount"), strict=False)
    codes = read.obj(discount.get("codes"), strict=False)
    return [n["code"] for n in read.items(codes.get("nodes"), strict=False)
            if isinstance(n, Mapping) and isinstance(n.get("code"), str)]


# ── Registry factory (carriers/__init__.py) ──────────────────────────────────────────────────────────────

_API_VERSION = re.compile(r"^(\d{4}-\d{2}|unstable)$")


def marketplace_from_settings(name: str, section: Section, clock: Clock) -> ShopifyMarketplace:
    """[marketplaces.<name>] with type = "shopify": base_url and access_token, and optional api_version,
    page_size and limit overrides. The clock is not needed: Shopify's own timestamps drive the cursor."""
    section.check_keys(COMMON_KEYS | CONFIG_KEYS)
    base_url = section.str("base_url")
    if not base_url.startswith(("https://", "http://")):
        raise section.error("base_url", "must be the shop's address, like https://my-shop.myshopify.com")
    access_token = section.str("access_token")
    if not access_token.strip():
        raise section.error("access_token", "is empty; set it to the app's Admin API access token")
    api_version = section.str("api_version", DEFAULT_API_VERSION)
    if not _API_VERSION.match(api_version):
        raise section.error("api_version", f"must look like {DEFAULT_API_VERSION!r}, not {api_version!r}")
    page_size = section.int("page_size", DEFAULT_PAGE_SIZE, minimum=1)
    if page_size > MAX_PAGE_SIZE:
        raise section.error("page_size", f"must be at most {MAX_PAGE_SIZE}")
    return ShopifyMarketplace(name, base_url=base_url, access_token=access_token,
                              api_version=api_version, page_size=page_size,
                              limits=Limits.from_section(section, DEFAULT_LIMITS))
