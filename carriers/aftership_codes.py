"""AfterShip's delivery statuses, kept apart from the parser in carriers/aftership.py so a new subtag is a
data edit.

Source: AfterShip's delivery status reference (the 9 tags and their ``<Tag>_NNN`` subtags), as cited by
carriers/aftership.py (carrier-samples README §5); each comment is AfterShip's description of the code.
"""

from __future__ import annotations

from tracker.status import ShipmentStatus

S = ShipmentStatus

STATUS_CODES: dict[str, ShipmentStatus] = {
    # ── tags (delivery statuses) ──────────────────────────────────────────────────────────────────────────
    "Pending": S.PENDING,  # new shipment pending to track, or no tracking information yet
    "InfoReceived": S.INFO_RECEIVED,  # carrier received the shipper's request, about to pick up
    "InTransit": S.IN_TRANSIT,  # carrier accepted or picked up the shipment; on the way
    "OutForDelivery": S.OUT_FOR_DELIVERY,  # carrier is about to deliver, or it is ready to pick up
    "AttemptFail": S.FAILED_ATTEMPT,  # delivery attempted but failed; usually a notice and another try
    "AvailableForPickup": S.AVAILABLE_FOR_PICKUP,  # arrived at a pickup point near the customer
    "Delivered": S.DELIVERED,  # delivered successfully
    "Exception": S.EXCEPTION,  # custom hold, undelivered, returned to sender, any shipping exception
    "Expired": S.EXPIRED,  # no tracking information for 30 days since added
    # ── subtags (delivery sub-statuses) ───────────────────────────────────────────────────────────────────
    "Pending_001": S.PENDING,  # Pending: no information on the carrier website yet, or not tracked yet
    "InfoReceived_001": S.INFO_RECEIVED,  # Info Received
    "InTransit_001": S.IN_TRANSIT,  # In Transit: shipment on the way
    "InTransit_002": S.IN_TRANSIT,  # Acceptance scan: shipment accepted by the carrier
    "InTransit_003": S.IN_TRANSIT,  # Arrival scan: arrived at a hub or sorting center
    "InTransit_004": S.IN_TRANSIT,  # Arrived at destination country
    "InTransit_005": S.IN_TRANSIT,  # Customs clearance completed
    "InTransit_006": S.IN_TRANSIT,  # Customs clearance started: handed over to customs
    "InTransit_007": S.IN_TRANSIT,  # Departure Scan: departed from the facility
    "InTransit_008": S.IN_TRANSIT,  # Problem resolved: shipment in transit again
    "InTransit_009": S.IN_TRANSIT,  # Forwarded to a different delivery address
    "OutForDelivery_001": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "OutForDelivery_002": S.AVAILABLE_FOR_PICKUP,  # (legacy) Available for pickup at the carrier's sorting center
    "OutForDelivery_003": S.OUT_FOR_DELIVERY,  # Customer contacted before the final delivery
    "OutForDelivery_004": S.OUT_FOR_DELIVERY,  # Delivery appointment scheduled
    "AttemptFail_001": S.FAILED_ATTEMPT,  # Failed Attempt: notice left, will try again
    "AttemptFail_002": S.FAILED_ATTEMPT,  # Addressee not available
    "AttemptFail_003": S.FAILED_ATTEMPT,  # Business closed at the time of delivery
    "AvailableForPickup_001": S.AVAILABLE_FOR_PICKUP,  # Available for pickup at a pickup point
    "Delivered_001": S.DELIVERED,  # Delivered
    "Delivered_002": S.DELIVERED,  # Picked up by the customer
    "Delivered_003": S.DELIVERED,  # Sign by customer
    "Delivered_004": S.DELIVERED,  # Delivered and received cash on delivery
    "Delivered_005": S.DELIVERED,  # Delivered to neighbor
    "Exception_001": S.EXCEPTION,  # Exception: delivery failed due to a shipping exception
    "Exception_002": S.EXCEPTION,  # Customer moved
    "Exception_003": S.EXCEPTION,  # Customer refused delivery
    "Exception_004": S.EXCEPTION,  # Delayed (Customs clearance)
    "Exception_005": S.EXCEPTION,  # Delayed (External factors)
    "Exception_006": S.EXCEPTION,  # Held for payment
    "Exception_007": S.EXCEPTION,  # Incorrect Address
    "Exception_008": S.EXCEPTION,  # Pick up missed: available for pickup but not collected
    "Exception_009": S.EXCEPTION,  # Rejected by carrier: noncompliance with its guidelines
    "Exception_010": S.RETURNED,  # Returning to sender: on its way back to the sender
    "Exception_011": S.RETURNED,  # Returned to sender: the sender received the return
    "Exception_012": S.EXCEPTION,  # Shipment damage
    "Exception_013": S.EXCEPTION,  # Shipment lost
    "Exception_016": S.EXCEPTION,  # Delayed (Processing issue): vehicle issue, sorting error, misroute
    "Exception_017": S.EXCEPTION,  # Delayed (Extreme weather)
    "Exception_018": S.EXCEPTION,  # Incorrect / missing documents: held by regulatory agencies
    "Exception_019": S.EXCEPTION,  # Delayed (Late flight)
    "Exception_020": S.EXCEPTION,  # Shipment cancelled by the sender or carrier
    "Exception_021": S.EXCEPTION,  # Shipment disposed: destroyed or discarded
    "Expired_001": S.EXPIRED,  # Expired: no tracking information for 30 days
}
