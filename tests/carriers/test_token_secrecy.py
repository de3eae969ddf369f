"""A token answer in an unexpected shape is reported without the token in it: errors reach logs and the
dashboard."""

from __future__ import annotations

import asyncio

import httpx
import pytest
import respx

from carriers.base import CarrierError
from carriers.fedex import FedExCourier
from carriers.http import Limits
from carriers.ups import UpsCourier
from carriers.usps import UspsCourier

TOKEN = "eyJSECRETTOKENVALUE"
ANSWERS = [
    httpx.Response(200, text=f"access_token={TOKEN}&expires_in=3600"),
    httpx.Response(200, text=f'{{"access_token": "{TOKEN}", "expires_'),
    httpx.Response(200, json={"accessToken": TOKEN, "expires_in": 3600}),
]
COURIERS = [
    (FedExCourier, "https://apis.fedex.com/oauth/token"),
    (UpsCourier, "https://onlinetools.ups.com/security/v1/oauth/token"),
    (UspsCourier, "https://apis.usps.com/oauth2/v3/token"),
]


@pytest.mark.parametrize("answer", ANSWERS)
@pytest.mark.parametrize("courier, token_url", COURIERS)
def test_a_malformed_token_answer_never_shows_the_token(courier, token_url, answer):
    adapter = courier(client_id="id", client_secret="secret", limits=Limits(per_second=1000))

    async def track():
        try:
            return await adapter.track(["1Z999AA10123456784"])
        finally:
            await adapter.aclose()

    with respx.mock(assert_all_called=False) as router:
        router.post(token_url).mock(return_value=answer)
        try:
            results = asyncio.run(track())
            errors = [str(r.error) for r in results]
        except CarrierError as exc:
            errors = [str(exc)]
    assert errors and all(TOKEN not in e for e in errors)
