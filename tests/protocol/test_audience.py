"""The audience of a signed request names one member node: the same node in another spelling
passes, any other node is refused by name."""

from __future__ import annotations

import pytest

from node.protocol.audience import WrongAudience, check_audience, normalise_audience


@pytest.mark.parametrize("spelling", ["https://node.a.example", "https://NODE.a.example/", "https://node.a.example:443"])
def test_the_nodes_own_url_in_any_spelling_is_its_audience(spelling: str) -> None:
    check_audience(spelling, "https://node.a.example")
    assert normalise_audience(spelling) == "https://node.a.example"


@pytest.mark.parametrize("other", ["https://node.b.example", "http://node.a.example", "https://node.a.example:8443", "",
                                   "https://node.a.example/api"])
def test_another_nodes_audience_is_refused_by_name(other: str) -> None:
    with pytest.raises(WrongAudience) as refused:
        check_audience(other, "https://node.a.example")
    assert repr(other) in str(refused.value) and "https://node.a.example" in str(refused.value)
