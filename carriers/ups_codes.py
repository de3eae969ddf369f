"""UPS's published status tables, as data apart from carriers/ups.py (whose `map_status` reads them): one
line per code as UPS documents it, so a new code from UPS is a one-line diff. Each table names its source.
"""

from __future__ import annotations

from tracker.status import ShipmentStatus

S = ShipmentStatus

# ── UPS "Status/Description Codes" (activity status.statusCode) → canonical status ─────────────────────────
# Diff against UPS Track API appendix (karrio: modules/connectors/ups/vendors/Tracking-status-description-
# codes.html, where codes are written without leading zeros). Left out on purpose, because they say nothing
# about where the parcel is (the activity type then decides): 000 Status Not Available, 043 Voided Pickup,
# 088 Test, 114 Request Canceled, 127 Investigation Closed, 128 Investigation Canceled, 133 Return Label Left
# With Customer, 142 Claim Voided, 148/163 Package Information Unavailable, 155 Delivery Photo.
STATUS_CODES: dict[str, ShipmentStatus] = {
    "003": S.INFO_RECEIVED,  # Shipment Ready for UPS
    "005": S.IN_TRANSIT,  # On the Way
    "006": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "007": S.EXCEPTION,  # Shipment Information Voided
    "010": S.IN_TRANSIT,  # On the Way
    "011": S.DELIVERED,  # Delivered
    "012": S.EXCEPTION,  # Clearance in Progress
    "013": S.EXCEPTION,  # Exception
    "014": S.IN_TRANSIT,  # Clearance Completed
    "016": S.IN_TRANSIT,  # In Warehouse
    "017": S.AVAILABLE_FOR_PICKUP,  # Held for Customer Pickup
    "018": S.IN_TRANSIT,  # Delivery Change Requested: Hold for Pickup
    "019": S.EXCEPTION,  # Held for Future Delivery
    "020": S.IN_TRANSIT,  # Held for Future Delivery Requested
    "021": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "022": S.FAILED_ATTEMPT,  # First Attempt Made
    "023": S.FAILED_ATTEMPT,  # Second Delivery Attempted
    "024": S.FAILED_ATTEMPT,  # Final Attempt Made
    "025": S.IN_TRANSIT,  # On the Way
    "026": S.DELIVERED,  # Delivered by Local Post Office
    "027": S.IN_TRANSIT,  # Delivery Address Change Requested
    "028": S.IN_TRANSIT,  # Delivery Address Changed
    "029": S.EXCEPTION,  # Exception: Action Required
    "030": S.EXCEPTION,  # Local Post Office Exception
    "032": S.EXCEPTION,  # Adverse Weather May Cause Delay
    "033": S.EXCEPTION,  # Return to Sender Requested
    "034": S.RETURNED,  # Returned to Sender
    "035": S.EXCEPTION,  # Returning to Sender
    "036": S.EXCEPTION,  # Returning to Sender: In Transit
    "037": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "038": S.IN_TRANSIT,  # Picked Up by UPS
    "039": S.IN_TRANSIT,  # On the Way
    "040": S.AVAILABLE_FOR_PICKUP,  # Ready for Customer Pickup
    "041": S.IN_TRANSIT,  # Service Upgrade Requested
    "042": S.IN_TRANSIT,  # Service Upgraded
    "044": S.IN_TRANSIT,  # On the Way to UPS
    "045": S.IN_TRANSIT,  # On the Way to UPS
    "046": S.EXCEPTION,  # Delay
    "047": S.IN_TRANSIT,  # On the Way
    "048": S.EXCEPTION,  # Delay
    "049": S.EXCEPTION,  # Delay: Action Required
    "050": S.EXCEPTION,  # Address Information Required
    "051": S.EXCEPTION,  # Delay: Emergency Situation or Severe Weather
    "052": S.EXCEPTION,  # Delay: Severe Weather
    "053": S.EXCEPTION,  # Delay: Severe Weather
    "054": S.IN_TRANSIT,  # Delivery Change Requested
    "055": S.IN_TRANSIT,  # Rescheduled Delivery (the new date arrives as deliveryDate RDD)
    "056": S.IN_TRANSIT,  # Service Upgrade Requested
    "057": S.IN_TRANSIT,  # On the Way to a Local UPS Access Point
    "058": S.EXCEPTION,  # Clearance Information Required
    "059": S.EXCEPTION,  # Damage Reported
    "060": S.FAILED_ATTEMPT,  # Delivery Attempted
    "061": S.FAILED_ATTEMPT,  # Delivery Attempted: Adult Signature Required
    "062": S.FAILED_ATTEMPT,  # Delivery Attempted: Funds Required
    "063": S.IN_TRANSIT,  # Delivery Change Completed
    "064": S.EXCEPTION,  # Delivery Refused
    "065": S.INFO_RECEIVED,  # Pickup Attempted (still with the shipper)
    "066": S.FAILED_ATTEMPT,  # Post Office Delivery Attempted
    "067": S.RETURNED,  # Returned to Sender by Post Office
    "068": S.EXCEPTION,  # Sent to Lost and Found
    "069": S.EXCEPTION,  # Unable to Deliver
    "070": S.IN_TRANSIT,  # Package not at UPS Access Point yet
    "071": S.IN_TRANSIT,  # Preparing for Delivery
    "072": S.OUT_FOR_DELIVERY,  # Loaded on Delivery Vehicle
    "073": S.IN_TRANSIT,  # In Transit to UPS Delivery Partner
    "074": S.IN_TRANSIT,  # UPS Delivery Partner has Shipment
    "075": S.IN_TRANSIT,  # Scheduled for Delivery
    "076": S.EXCEPTION,  # UPS Delivery Partner Exception
    "077": S.INFO_RECEIVED,  # Scheduled for Pickup Today
    "078": S.OUT_FOR_DELIVERY,  # Your Driver is Arriving Soon!
    "079": S.IN_TRANSIT,  # Order Processed: In Transit to UPS
    "080": S.INFO_RECEIVED,  # Order Processed: Ready for UPS
    "081": S.RETURNED,  # Returned - Damage Reported
    "082": S.IN_TRANSIT,  # Delivery Instructions Received
    "083": S.EXCEPTION,  # Held
    "084": S.IN_TRANSIT,  # Cleared
    "085": S.EXCEPTION,  # Held for COD Payment
    "086": S.EXCEPTION,  # Delay
    "087": S.IN_TRANSIT,  # On the Way
    "089": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "090": S.EXCEPTION,  # Delay
    "091": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "092": S.EXCEPTION,  # Customs Clearance in Progress
    "093": S.EXCEPTION,  # Premier Recovery In Progress
    "094": S.IN_TRANSIT,  # Premier Recovery Completed
    "095": S.IN_TRANSIT,  # Additional Attempt Requested
    "096": S.IN_TRANSIT,  # Address Change Confirmed
    "097": S.IN_TRANSIT,  # Address Change Requested
    "098": S.IN_TRANSIT,  # Deliver to Original Address Requested
    "099": S.IN_TRANSIT,  # Deliver to Original Address Confirmed
    "100": S.IN_TRANSIT,  # Hold at UPS Access Point Confirmed (ready = 017/040)
    "101": S.IN_TRANSIT,  # Hold at UPS Access Point Requested
    "102": S.IN_TRANSIT,  # Hold for Courier Requested
    "103": S.IN_TRANSIT,  # Hold for Courier Confirmed
    "104": S.EXCEPTION,  # Hold for Instructions Confirmed
    "105": S.IN_TRANSIT,  # Hold for Instructions Requested
    "106": S.IN_TRANSIT,  # Hold for Pickup Confirmed (ready = 017/040)
    "107": S.IN_TRANSIT,  # Hold for Pickup Requested
    "108": S.IN_TRANSIT,  # Hold for Pickup Today Confirmed
    "109": S.IN_TRANSIT,  # Hold for Pickup Today Requested
    "110": S.IN_TRANSIT,  # Refrigeration Confirmed
    "111": S.IN_TRANSIT,  # Refrigeration Requested
    "112": S.IN_TRANSIT,  # Re-Ice Confirmed
    "113": S.IN_TRANSIT,  # Re-Ice Requested
    "115": S.IN_TRANSIT,  # Reschedule Delivery Confirmed
    "116": S.IN_TRANSIT,  # Reschedule Delivery Requested
    "117": S.IN_TRANSIT,  # Return by Saturday Confirmed
    "118": S.EXCEPTION,  # Return to Sender Confirmed
    "119": S.EXCEPTION,  # Return to Sender Requested
    "120": S.IN_TRANSIT,  # Saturday Delivery Confirmed
    "121": S.IN_TRANSIT,  # Saturday Delivery Requested
    "122": S.IN_TRANSIT,  # Upgrade Confirmed
    "123": S.EXCEPTION,  # Pending Release From Non-UPS Broker
    "124": S.EXCEPTION,  # Clearance Information Needed
    "125": S.EXCEPTION,  # Clearance Information Needed
    "126": S.EXCEPTION,  # Pending Government Agency Release
    "129": S.EXCEPTION,  # Investigation Opened
    "130": S.EXCEPTION,  # Claim in Progress
    "131": S.INFO_RECEIVED,  # Final Pickup Attempted (still with the shipper)
    "132": S.EXCEPTION,  # Airport Security Delay
    "134": S.IN_TRANSIT,  # Cleared Import Customs
    "135": S.INFO_RECEIVED,  # Second Pickup Attempted (still with the shipper)
    "136": S.IN_TRANSIT,  # Delivery Rescheduled for Saturday
    "137": S.IN_TRANSIT,  # Transferred to UPS Delivery Partner
    "138": S.IN_TRANSIT,  # Awaiting Scheduled Departure
    "139": S.EXCEPTION,  # Security Access Required
    "140": S.EXCEPTION,  # Claim Paid - Claim Payment Has Been Processed.
    "141": S.EXCEPTION,  # Incomplete Documentation Received
    "143": S.DELIVERED,  # Delivered to Agent
    "144": S.AVAILABLE_FOR_PICKUP,  # Delivered to Post Office for Pickup
    "145": S.FAILED_ATTEMPT,  # Delivery Attempted
    "146": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "147": S.EXCEPTION,  # Seized by Law Enforcement, No Longer in UPS possession
    "149": S.EXCEPTION,  # Prohibited Contents, Package Destroyed No Longer in UPS possession
    "153": S.IN_TRANSIT,  # Updated Delivery Time
    "154": S.IN_TRANSIT,  # Updated Delivery Date
    "156": S.DELIVERED,  # Commercial Inside Release
    "157": S.INFO_RECEIVED,  # Shipment Ready for UPS
    "158": S.IN_TRANSIT,  # On the Way
    "159": S.IN_TRANSIT,  # On the Way
    "160": S.IN_TRANSIT,  # We Have Your Package
    "161": S.AVAILABLE_FOR_PICKUP,  # Delivered to UPS Access Point
    "162": S.OUT_FOR_DELIVERY,  # Out for Delivery
    "164": S.IN_TRANSIT,  # On the Way
    "165": S.IN_TRANSIT,  # On the Way
    "166": S.INFO_RECEIVED,  # Shipment Ready for Roadie
    "167": S.IN_TRANSIT,  # Dropped off at UPS Store by Customer
    "168": S.IN_TRANSIT,  # Dropped off at Retail Location by Customer
    "169": S.IN_TRANSIT,  # Dropped off at a UPS Access Point by Customer
}

# 2-char scan codes (status.code), used only when statusCode is absent or not in STATUS_CODES. Only codes
# whose meaning UPS documents independently of the activity type (the same code can mean different things
# under different types, see UPS-API/api-documentation#7).
SCAN_CODES: dict[str, ShipmentStatus] = {
    "MP": S.INFO_RECEIVED,  # Shipper created a label, UPS has not received the package yet
    "XD": S.IN_TRANSIT,  # Drop-Off
    "OR": S.IN_TRANSIT,  # Origin Scan
    "AR": S.IN_TRANSIT,  # Arrived at Facility
    "DP": S.IN_TRANSIT,  # Departed from Facility
    "YP": S.IN_TRANSIT,  # Processing at UPS Facility
    "OT": S.OUT_FOR_DELIVERY,  # Out For Delivery Today
    "FS": S.DELIVERED,  # Delivered
    "F4": S.DELIVERED,  # Delivered
    "KB": S.DELIVERED,  # Delivered
    "SR": S.IN_TRANSIT,  # Your package was released by the customs agency
}

# Package activity types (status.type), the coarsest layer. Left out: DO/DD/W (freight only) and U (Track
# Alert only); NA "Not Available" is unknown by being absent.
ACTIVITY_TYPES: dict[str, ShipmentStatus] = {
    "D": S.DELIVERED,  # Delivered
    "I": S.IN_TRANSIT,  # In Transit, Out for Delivery (refined by code / statusCode)
    "M": S.INFO_RECEIVED,  # Billing Information Received (label created)
    "MV": S.EXCEPTION,  # Billing Information Voided
    "X": S.EXCEPTION,  # Exception (refined: failed attempts, pickup, returns)
    "P": S.IN_TRANSIT,  # Pickup
}
