"""The eSIM Go client against the eSIM Go sandbox: real HTTP on 127.0.0.1, real shapes, every error class."""

from __future__ import annotations

import socket
import time
from decimal import Decimal

import pytest

from esimgo import (
    EsimGoAuthError,
    EsimGoBadRequest,
    EsimGoBadResponse,
    EsimGoClient,
    EsimGoNotFound,
    EsimGoProcessing,
    EsimGoRateLimited,
    EsimGoServerError,
    EsimGoUnavailable,
    parse_assignments_csv,
)


@pytest.fixture
def client(esimgo):
    # Short backoff so retry tests stay quick; the behaviour is the production one.
    c = EsimGoClient(esimgo.url, esimgo.api_key, backoff=0.01, timeout=(1.0, 2.0))
    yield c
    c.close()


def count(esimgo, method: str, path: str) -> int:
    return sum(1 for r in esimgo.requests_log if r["method"] == method and r["path"] == path)


def test_catalogue_reads_every_page_of_the_real_envelope(client, esimgo):
    bundles = client.catalogue(per_page=250)
    assert len(bundles) == len(esimgo.catalogue) > 1000
    assert count(esimgo, "GET", "/catalogue") == -(-len(bundles) // 250)  # one request per page
    assert len({b.name for b in bundles}) == len(bundles)
    th = next(b for b in bundles if b.name == "esim_1GB_7D_TH_V2")
    assert th.cost == Decimal("2.26") and isinstance(th.cost, Decimal)
    assert th.data_mb == 1000 and th.duration_days == 7 and th.countries[0].iso == "TH"
    assert any(b.speed == () for b in bundles)  # null speed parsed, not crashed on
    assert any(b.unlimited for b in bundles)


def test_one_bundle_by_name(client):
    assert client.bundle("esim_1GB_7D_TH_V2").cost == Decimal("2.26")
    with pytest.raises(EsimGoNotFound):
        client.bundle("esim_1GB_7D_XX_V9")


def test_a_transaction_buys_one_esim_with_install_details(client, esimgo):
    order = client.create_order("esim_1GB_7D_TH_V2")
    assert order.completed and order.reference
    assert order.total == Decimal("2.26")
    (esim,) = order.esims
    assert esim.iccid.isdigit() and esim.matching_id and "://" not in esim.smdp_address
    assert esim.lpa == f"LPA:1${esim.smdp_address}${esim.matching_id}"
    (sent,) = [r for r in esimgo.requests_log if r["method"] == "POST"]
    assert '"allowReassign": false' in sent["body"] and '"assign": true' in sent["body"]
    assert client.get_order(order.reference).esims == order.esims


def test_validate_checks_without_charging(client, esimgo):
    before = client.balance().amount
    result = client.create_order("esim_1GB_7D_TH_V2", validate=True)
    assert result.valid is True and result.reference is None
    assert client.balance().amount == before and esimgo.orders == []


@pytest.mark.parametrize("accept_json", [True, False])
def test_assignments_parse_as_json_and_as_csv(client, esimgo, accept_json):
    order = client.create_order("esim_1GB_7D_TH_V2")
    if not accept_json:
        client.session.headers["Accept"] = "*/*"  # as if the server ignored our Accept: it sends CSV
        esims = parse_assignments_csv(client._request("GET", "/esims/assignments",
                                                      params={"reference": order.reference}, accept="*/*").text)
    else:
        esims = client.assignments(order.reference)
    assert esims == list(order.esims)


def test_csv_with_quoted_commas_and_bom_is_parsed_by_columns_not_commas():
    text = ('\ufeffICCID,Matching ID,RSP URL,Bundle,Reference\r\n'
            '8944000000000000001,"AB-1,2",https://rsp.example.com,"esim_1GB_7D_TH_V2",ref-1\r\n')
    (esim,) = parse_assignments_csv(text)
    assert esim.iccid == "8944000000000000001"
    assert esim.matching_id == "AB-1,2"
    assert esim.smdp_address == "rsp.example.com"


def test_csv_without_the_expected_columns_is_a_bad_response():
    with pytest.raises(EsimGoBadResponse):
        parse_assignments_csv("a,b\n1,2\n")


def test_processing_orders_answer_503_until_ready_then_complete(client, esimgo):
    esimgo.settings(processing_seconds=30)
    order = client.create_order("esim_1GB_7D_TH_V2")
    assert not order.completed and order.status.lower() != "completed"
    no_retry = EsimGoClient(esimgo.url, esimgo.api_key, get_retries=0)
    with pytest.raises(EsimGoProcessing) as info:
        no_retry.assignments(order.reference)
    assert info.value.transient and info.value.status == 503


@pytest.mark.parametrize("status, error, transient", [
    (400, EsimGoBadRequest, False),
    (401, EsimGoAuthError, False),
    (403, EsimGoAuthError, False),
    (404, EsimGoNotFound, False),
    (429, EsimGoRateLimited, True),
    (500, EsimGoServerError, True),
    (503, EsimGoProcessing, True),
])
def test_every_error_status_maps_to_its_class(client, esimgo, status, error, transient):
    esimgo.fail("/orders", status, method="POST", message=f"scripted {status}")
    with pytest.raises(error) as info:
        client.create_order("esim_1GB_7D_TH_V2")
    assert info.value.status == status and info.value.transient is transient
    assert esimgo.orders == []


def test_insufficient_balance_is_a_definitive_bad_request(client, esimgo):
    esimgo.settings(balance=1.0)
    with pytest.raises(EsimGoBadRequest) as info:
        client.create_order("esim_1GB_7D_TH_V2")
    assert info.value.insufficient_balance and not info.value.transient


def test_a_wrong_api_key_is_an_auth_error(esimgo):
    with pytest.raises(EsimGoAuthError):
        EsimGoClient(esimgo.url, "wrong-key").balance()


def test_gets_are_retried_on_5xx_and_429_honouring_retry_after(client, esimgo):
    esimgo.fail("/organisation", 503, times=1, retry_after=1)
    esimgo.fail("/organisation", 429, times=1)
    assert client.balance().amount > 0
    assert count(esimgo, "GET", "/organisation") == 3


def test_gets_give_up_after_their_retries(client, esimgo):
    esimgo.fail("/organisation", 500, times=10)
    with pytest.raises(EsimGoServerError):
        client.balance()
    assert count(esimgo, "GET", "/organisation") == 4  # first try + 3 retries


def test_an_order_post_is_never_retried(client, esimgo):
    esimgo.fail("/orders", 500, method="POST", times=1)
    with pytest.raises(EsimGoServerError):
        client.create_order("esim_1GB_7D_TH_V2")
    assert count(esimgo, "POST", "/orders") == 1


def test_a_slow_answer_times_out_as_maybe_sent(client, esimgo):
    esimgo.fail("/orders", 0, method="POST", delay=3.0)
    with pytest.raises(EsimGoUnavailable) as info:
        client.create_order("esim_1GB_7D_TH_V2")
    assert info.value.transient and info.value.maybe_sent  # it may have been bought: check before buying again
    deadline = time.time() + 10
    while not esimgo.orders and time.time() < deadline:
        time.sleep(0.1)
    assert len(esimgo.orders) == 1  # and indeed it was: eSIM Go finished the order after we gave up


def test_a_refused_connection_is_known_not_to_have_been_sent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EsimGoUnavailable) as info:
        EsimGoClient(f"http://127.0.0.1:{port}/v2.4", "k", backoff=0.01).create_order("esim_1GB_7D_TH_V2")
    assert info.value.maybe_sent is False


@pytest.mark.parametrize("shape", ["list", "flat"])
def test_balance_reads_both_organisation_shapes(client, esimgo, shape):
    esimgo.settings(organisation_shape=shape, balance=123.45)
    balance = client.balance()
    assert balance.amount == Decimal("123.45") and balance.currency == "USD"


def test_esim_details_usage_and_compatibility(client, esimgo):
    order = client.create_order("esim_1GB_7D_TH_V2")
    iccid = order.esims[0].iccid
    details = client.esim(iccid)
    assert details.iccid == iccid and details.matching_id == order.esims[0].matching_id
    (usage,) = client.esim_bundles(iccid)
    assert usage.name == "esim_1GB_7D_TH_V2"
    assert usage.initial_bytes == 1_000_000_000  # bytes, 1 GB = 10^9
    assert usage.state == usage.state.lower()
    assert client.compatible(iccid, "esim_3GB_30D_TH_V2") is True
    with pytest.raises(EsimGoBadRequest):  # eSIM Go answers 400, not 404, for an unknown ICCID
        client.esim("8944999999999999999")


def test_a_top_up_goes_onto_the_existing_esim(client):
    first = client.create_order("esim_1GB_7D_TH_V2")
    iccid = first.esims[0].iccid
    top_up = client.create_order("esim_3GB_30D_TH_V2", iccids=[iccid])
    assert top_up.reference != first.reference
    assert {u.name for u in client.esim_bundles(iccid)} >= {"esim_1GB_7D_TH_V2", "esim_3GB_30D_TH_V2"}


@pytest.mark.parametrize("shape", ["envelope", "list", "object"])
def test_recent_orders_are_read_in_every_shape_eSIM_Go_may_answer(client, esimgo, shape):
    from datetime import UTC, datetime, timedelta

    bought = client.create_order("esim_1GB_7D_TH_V2")
    esimgo.settings(order_list_shape=shape)
    found = client.recent_orders(datetime.now(UTC) - timedelta(minutes=5))
    assert [o.reference for o in found.orders] == [bought.reference]
    assert "esim_1GB_7D_TH_V2" in found.orders[0].items
    assert found.complete is (shape != "object")  # one object shows only the newest order


def test_no_order_since_is_an_empty_list_in_every_shape(client, esimgo):
    from datetime import UTC, datetime

    for shape in ("envelope", "list", "object"):
        esimgo.settings(order_list_shape=shape)
        found = client.recent_orders(datetime.now(UTC))
        assert found.orders == () and found.complete


@pytest.mark.parametrize("body", ['"orders"', "42", '{"orders": {"a": 1}}'])
def test_an_order_list_that_is_not_understood_is_an_error_not_an_empty_list(client, esimgo, body):
    from datetime import UTC, datetime

    esimgo.fail("/orders", 200, method="GET", message=body, html=True)
    with pytest.raises(EsimGoBadResponse):
        client.recent_orders(datetime.now(UTC))
