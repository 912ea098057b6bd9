"""The consortium file: the threshold as a share of members in basis points (or a number of the
founders' votes, turned into that share), and the founders' GS1 Company Prefixes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from node.consortium import ConsortiumFileError, bps_for_votes, load_consortium, votes_needed

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


@pytest.mark.parametrize("votes", [1, 2, 3, 4])
def test_a_threshold_in_votes_becomes_the_share_that_needs_exactly_those_votes(tmp_path: Path, votes: int) -> None:
    spec = load_consortium(write(tmp_path, threshold=votes))
    assert spec.threshold == votes and spec.threshold_bps == bps_for_votes(votes, 4)


def test_votes_needed_rounds_up_for_every_membership() -> None:
    assert [votes_needed(2_500, n) for n in (1, 4, 5, 11, 12, 13)] == [1, 1, 2, 3, 3, 4]
    assert all(votes_needed(bps_for_votes(v, n), n) == v for n in range(1, 60) for v in range(1, n + 1))


@pytest.mark.parametrize(
    ("top", "field"),
    [({"thresholdBps": 0}, "thresholdBps"), ({"thresholdBps": 10_001}, "thresholdBps"),
     ({"thresholdBps": 5_000, "threshold": 2}, "thresholdBps"), ({}, "threshold"), ({"threshold": 5}, "threshold")],
)
def test_bad_thresholds_are_refused_by_field(tmp_path: Path, top: dict[str, Any], field: str) -> None:
    with pytest.raises(ConsortiumFileError) as info:
        load_consortium(write(tmp_path, **top))
    assert info.value.field == field


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
