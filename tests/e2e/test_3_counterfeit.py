"""Story 3: a vase's code is copied onto fakes.

- A shopper in Utrecht scans a genuine vase: genuine.
- Minutes later a phone at a market in Sao Paulo scans the same code (printed on a fake): a
  code cannot travel from the Netherlands to Brazil that fast, so the scan API flags it and the
  passport says suspicious.
- A shopper in Berlin scans a code of the same product and lot that nobody ever issued: the
  resolver answers that the code is unknown.
"""

from __future__ import annotations

from waymark.demo.story import Story


def test_a_code_scanned_in_two_countries_is_suspicious_and_a_code_never_issued_is_unknown(delivered: Story) -> None:
    story = delivered

    first, second = story.clone_scanned()
    assert first.status == 200 and first.verdict == "genuine", first.passport.get("reasons")
    assert second.status == 200 and second.verdict == "suspicious"
    assert "implausible_places" in second.flags()
    assert sorted(second.passport["scans"]["regionsInWindow"]) == ["BR", "NL"]

    unknown = story.unknown_scanned()
    assert unknown.status == 404
    assert unknown.verdict == "unknown"
