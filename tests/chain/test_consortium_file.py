"""The consortium file: the threshold as a share of members in basis points (or a number of the
founders' votes, turned into that share), and the founders' GS1 Company Prefixes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from eth_utils.address import to_checksum_address

from node.chain.consortium import DEFAULT_MAX_REPORTING_DELAY, ConsortiumFileError, bps_for_votes, load_consortium, votes_needed

ACCOUNTS = ["0x" + f"{i:02x}" * 20 for i in range(1, 5)]


def write(tmp_path: Path, **top: Any) -> Path:
    members = top.pop("members", None) or [
        {"name": f"Member {i}", "country": "NL", "account": a, "roles": ["CARRIER"]} for i, a in enumerate(ACCOUNTS)
    ]
    path = tmp_path / "consortium.json"
    path.write_text(json.dumps({"members": members, **top}))
    return path


def test_threshold_bps_is_read_and_gives_votes_rounded_up(tmp_path: Path) -> None:
    spec = load_consortium(write(tmp_path, thresholdBps=5_001))
    assert spec.threshold_bps == 5_001 and spec.threshold == 3  # a majority of 4


@pytest.mark.parametrize("votes", [3, 4])
def test_a_threshold_in_votes_becomes_the_share_that_needs_exactly_those_votes(tmp_path: Path, votes: int) -> None:
    spec = load_consortium(write(tmp_path, threshold=votes))
    assert spec.threshold == votes and spec.threshold_bps == bps_for_votes(votes, 4)


def test_votes_needed_rounds_up_for_every_membership() -> None:
    assert [votes_needed(2_500, n) for n in (1, 4, 5, 11, 12, 13)] == [1, 1, 2, 3, 3, 4]
    assert all(votes_needed(bps_for_votes(v, n), n) == v for n in range(1, 60) for v in range(1, n + 1))


@pytest.mark.parametrize(
    ("top", "field"),
    [({"thresholdBps": 0}, "thresholdBps"), ({"thresholdBps": 10_001}, "thresholdBps"),
     ({"thresholdBps": 5_000, "threshold": 2}, "thresholdBps"), ({}, "threshold"), ({"threshold": 5}, "threshold"),
     # Half of the members or less is no majority: two coalitions could each pass proposals.
     ({"thresholdBps": 5_000}, "thresholdBps"), ({"thresholdBps": 2_500}, "thresholdBps"), ({"threshold": 2}, "threshold"),
     ({"threshold": 1}, "threshold")],
)
def test_bad_thresholds_are_refused_by_field(tmp_path: Path, top: dict[str, Any], field: str) -> None:
    with pytest.raises(ConsortiumFileError) as info:
        load_consortium(write(tmp_path, **top))
    assert info.value.field == field


def test_a_threshold_of_half_says_a_majority_is_needed(tmp_path: Path) -> None:
    with pytest.raises(ConsortiumFileError, match="from 3 to 4, more than half of the 4 members"):
        load_consortium(write(tmp_path, threshold=2))
    with pytest.raises(ConsortiumFileError, match="from 5001 to 10000"):
        load_consortium(write(tmp_path, thresholdBps=5_000))


def test_founders_company_prefixes_are_read_and_passed_to_the_constructor(tmp_path: Path) -> None:
    members = [{"name": "Maker", "country": "VN", "account": ACCOUNTS[0], "roles": ["MANUFACTURER"],
                "gs1CompanyPrefixes": ["0614141", "9521234"]}]
    spec = load_consortium(write(tmp_path, members=members, threshold=1))
    assert spec.members[0].company_prefixes == ("0614141", "9521234")
    assert spec.founding_members()[0][5] == [(614141, 7), (9521234, 7)]


@pytest.mark.parametrize("prefixes", [["952"], ["95212341234567"], ["95a1234"], [9521234], ["952123", "9521234"]])
def test_bad_or_overlapping_company_prefixes_are_refused(tmp_path: Path, prefixes: list[Any]) -> None:
    members = [{"name": "Maker", "country": "VN", "account": ACCOUNTS[0], "roles": [], "gs1CompanyPrefixes": prefixes}]
    with pytest.raises(ConsortiumFileError) as info:
        load_consortium(write(tmp_path, members=members, threshold=1))
    assert "gs1CompanyPrefixes" in info.value.field


def test_node_urls_anchor_accounts_keys_and_hosts_are_read_and_passed_to_the_constructor(tmp_path: Path) -> None:
    key = "0x" + "11" * 32
    members = [
        {"name": "Maker", "country": "VN", "account": ACCOUNTS[0], "roles": ["MANUFACTURER"],
         "nodeUrl": "https://node.maker.example", "anchorAccounts": [ACCOUNTS[2]], "encryptionKey": key},
        {"name": "Courier", "country": "NL", "account": ACCOUNTS[1], "roles": ["CARRIER"], "hostedBy": "Maker"},
        {"name": "Customs", "country": "NL", "account": ACCOUNTS[3], "roles": ["CUSTOMS"], "anchorAccounts": [ACCOUNTS[3][:-2] + "ff"]},
    ]
    spec = load_consortium(write(tmp_path, members=members, threshold=2, maxReportingDelay=3600,
                                 verifierBundleHash="0x" + "22" * 32))
    maker, courier, customs = spec.members
    assert customs.roles == ("CUSTOMS", "ANCHORER")  # anchor accounts: it will run a node, its URL published later
    assert maker.roles == ("MANUFACTURER", "ANCHORER")  # a member that runs a node anchors from the start
    assert courier.roles == ("CARRIER",) and courier.host == 1 and maker.host == 0
    assert spec.founding_members()[0][6:] == ([to_checksum_address(ACCOUNTS[2])], "https://node.maker.example", bytes.fromhex("11" * 32), 0)
    assert spec.founding_members()[1][6:] == ([], "", b"\0" * 32, 1)
    assert spec.constructor_args()[1:] == [6_666, 3600, bytes.fromhex("22" * 32)]


def test_the_reporting_delay_defaults_to_seven_days(tmp_path: Path) -> None:
    assert load_consortium(write(tmp_path, threshold=3)).max_reporting_delay == DEFAULT_MAX_REPORTING_DELAY == 7 * 24 * 3600


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"nodeUrl": "ftp://node.example"}, "members[0].nodeUrl"),
        ({"nodeUrl": "https://node.example/"}, "members[0].nodeUrl"),
        ({"nodeUrl": 8600}, "members[0].nodeUrl"),
        ({"anchorAccounts": ["0x12"]}, "members[0].anchorAccounts"),
        ({"anchorAccounts": [ACCOUNTS[1]]}, "members"),  # another member's account
        ({"encryptionKey": "0x1234"}, "members[0].encryptionKey"),
        ({"hostedBy": "Member 0"}, "members[0].hostedBy"),  # itself
        ({"hostedBy": "Nobody"}, "members[0].hostedBy"),
    ],
)
def test_bad_node_fields_are_refused_by_field(tmp_path: Path, extra: dict[str, Any], field: str) -> None:
    members = [{"name": f"Member {i}", "country": "NL", "account": a, "roles": ["CARRIER"]} for i, a in enumerate(ACCOUNTS)]
    members[0].update(extra)
    with pytest.raises(ConsortiumFileError) as info:
        load_consortium(write(tmp_path, members=members, threshold=3))
    assert info.value.field == field


@pytest.mark.parametrize(("top", "field"), [({"maxReportingDelay": 0}, "maxReportingDelay"),
                                            ({"maxReportingDelay": 367 * 24 * 3600}, "maxReportingDelay"),
                                            ({"maxReportingDelay": "7d"}, "maxReportingDelay"),
                                            ({"verifierBundleHash": "0xabc"}, "verifierBundleHash")])
def test_bad_consortium_parameters_are_refused_by_field(tmp_path: Path, top: dict[str, Any], field: str) -> None:
    with pytest.raises(ConsortiumFileError) as info:
        load_consortium(write(tmp_path, threshold=3, **top))
    assert info.value.field == field
