"""The names of the built-in email kinds: the vocabulary config, flows, templates and the outbox share."""

from __future__ import annotations

EMAIL_KINDS = (
    "order_confirmation",
    "shipment_confirmation",
    "in_transit",
    "out_for_delivery",
    "failed_attempt",
    "available_for_pickup",
    "exception",
    "returned",
    "delivered",
    "feedback_request",
    "resell_coupon",
    "coupon_reminder",
    "delayed",
)
# Sent only with consent, honour unsubscribe and carry List-Unsubscribe.
MARKETING_KINDS = frozenset({"feedback_request", "resell_coupon", "coupon_reminder"})
