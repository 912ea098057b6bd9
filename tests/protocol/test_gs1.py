"""GS1 identifiers: Digital Link parsing and validation, serials, SSCCs, issuance signatures."""

from __future__ import annotations

import math

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data

from node.errors import WaymarkError
from node.protocol import gs1
from node.protocol import digital_link
from node.protocol import issuance
from node.protocol.digital_link import parse_digital_link, parse_identifier
from node.protocol.gs1 import (
    ContainerId,
    InvalidIdentifier,
    UnitId,
    check_digit,
    make_sscc,
    new_serial,
    normalize_gtin,
)
from node.protocol.canonical_ids import canonical_epc
from node.protocol.labels import human_readable

GTIN13 = "9506000134352"  # GS1's example GTIN-13 (check digit 2)
GTIN14 = "09506000134352"


def problem_of(uri: str) -> str:
    with pytest.raises(InvalidIdentifier) as caught:
        parse_digital_link(uri)
    assert isinstance(caught.value, WaymarkError)
    return caught.value.problem


def test_a_uri_that_does_not_split_is_an_invalid_identifier() -> None:
    assert problem_of("https://[") == "not a URI: Invalid IPv6 URL"


def test_check_digit_matches_known_keys() -> None:
    assert check_digit("950600013435") == 2  # GTIN-13 9506000134352
    assert check_digit("0950600013435") == 2
    assert check_digit("10614141123456789") == 7  # SSCC 106141411234567897
    assert check_digit("9638507") == 4  # GTIN-8 96385074


@pytest.mark.parametrize(
    ("gtin", "expected"),
    [
        ("96385074", "00000096385074"),  # GTIN-8
        ("614141000036", "00614141000036"),  # GTIN-12 (UPC-A)
        (GTIN13, GTIN14),  # GTIN-13
        (GTIN14, GTIN14),  # GTIN-14
        ("10614141000033", "10614141000033"),  # GTIN-14 with indicator digit
    ],
)
def test_gtins_of_every_length_are_padded_to_14_digits(gtin: str, expected: str) -> None:
    assert normalize_gtin(gtin) == expected
    link = parse_digital_link(f"https://brand.example/01/{gtin}/10/L1/21/S1")
    assert isinstance(link.identifier, UnitId)
    assert link.identifier.gtin == expected
    assert link.identifier.canonical_uri == f"https://id.gs1.org/01/{expected}/21/S1"


@pytest.mark.parametrize("gtin", ["9506000134353", "09506000134351", "96385075", "614141000037"])
def test_bad_gtin_check_digit_is_rejected_with_the_expected_digit(gtin: str) -> None:
    problem = problem_of(f"https://brand.example/01/{gtin}/21/S1")
    assert "bad GTIN check digit" in problem
    assert "expected" in problem


@pytest.mark.parametrize("gtin", ["123", "950600013435", "950600013435222", "95060001343X2"])
def test_gtin_of_wrong_length_or_characters_is_rejected(gtin: str) -> None:
    problem = problem_of(f"https://brand.example/01/{gtin}/21/S1")
    assert "GTIN" in problem


def test_qualifiers_out_of_order_are_rejected_naming_the_order() -> None:
    problem = problem_of(f"https://brand.example/01/{GTIN14}/21/S1/10/L1")
    assert "qualifier order" in problem
    assert "/10/ (lot) must come before /21/ (serial)" in problem


def test_unit_link_without_serial_is_rejected() -> None:
    assert "serial" in problem_of(f"https://brand.example/01/{GTIN14}/10/L1")


def test_unknown_qualifier_and_duplicate_qualifier_are_rejected() -> None:
    assert "not a key qualifier" in problem_of(f"https://brand.example/01/{GTIN14}/17/250101/21/S1")
    assert "appears twice" in problem_of(f"https://brand.example/01/{GTIN14}/21/S1/21/S2")


def test_scheme_host_and_primary_key_are_required() -> None:
    assert "https://" in problem_of(f"ftp://brand.example/01/{GTIN14}/21/S1")
    assert "primary key" in problem_of("https://brand.example/414/9506000134352")
    assert "no value" in problem_of(f"https://brand.example/01/{GTIN14}/21")


def test_percent_encoded_lot_and_serial_are_decoded_and_reencoded_canonically() -> None:
    link = parse_digital_link(f"https://brand.example/01/{GTIN14}/10/AB%2F12/21/X%2B1%21")
    unit = link.identifier
    assert isinstance(unit, UnitId)
    assert unit.lot == "AB/12"
    assert unit.serial == "X+1!"
    assert unit.uri("brand.example") == f"https://brand.example/01/{GTIN14}/10/AB%2F12/21/X%2B1%21"
    assert unit.canonical_uri == f"https://id.gs1.org/01/{GTIN14}/21/X%2B1%21"
    # a lower-case escape is the same value
    again = parse_digital_link(f"https://brand.example/01/{GTIN14}/10/AB%2f12/21/X%2b1%21")
    assert again.identifier == unit


@pytest.mark.parametrize(
    ("segment", "words"),
    [
        ("A%2", "bad percent-encoding"),
        ("A%ZZ", "bad percent-encoding"),
        ("A%20B", "outside the GS1 AI set"),  # a space is not in CSet 82
        ("A%C3%A9", "outside the GS1 AI set"),  # nor is é
        ("%FF", "not UTF-8"),
    ],
)
def test_bad_percent_encoding_and_characters_are_rejected(segment: str, words: str) -> None:
    assert words in problem_of(f"https://brand.example/01/{GTIN14}/21/{segment}")


def test_whitespace_and_fragment_are_rejected() -> None:
    assert "whitespace" in problem_of(f"https://brand.example/01/{GTIN14}/21/A B")
    assert "fragment" in problem_of(f"https://brand.example/01/{GTIN14}/21/S1#x")


def test_serial_longer_than_20_characters_is_rejected() -> None:
    assert "20 characters" in problem_of(f"https://brand.example/01/{GTIN14}/21/{'A' * 21}")


def test_short_names_and_path_prefix_on_the_resolver_are_understood() -> None:
    link = parse_digital_link(f"https://brand.example/products/gtin/{GTIN14}/lot/L1/ser/S1")
    assert link.identifier == UnitId(GTIN14, "S1", "L1")
    assert link.resolver == "brand.example/products"


def test_sscc_links_parse_validate_and_reject_bad_check_digit() -> None:
    link = parse_digital_link("https://carrier.example/00/106141411234567897")
    assert link.identifier == ContainerId("106141411234567897")
    assert link.identifier.canonical_uri == "https://id.gs1.org/00/106141411234567897"
    assert "bad SSCC check digit" in problem_of("https://carrier.example/00/106141411234567890")
    assert "18 digits" in problem_of("https://carrier.example/00/10614141123456789")
    assert "no qualifiers" in problem_of("https://carrier.example/00/106141411234567897/21/1")


def test_make_sscc_builds_a_valid_18_digit_key() -> None:
    assert make_sscc("0614141", 123456789, extension_digit=1) == "106141411234567897"
    sscc = make_sscc("9506000", 42)
    assert len(sscc) == 18 and gs1.validate_sscc(sscc) == sscc
    with pytest.raises(InvalidIdentifier, match="at most 9 digits"):
        make_sscc("0614141", 10**9)
    with pytest.raises(InvalidIdentifier, match="company prefix"):
        make_sscc("12", 1)


def test_random_serials_carry_at_least_64_bits_in_the_ai21_set() -> None:
    serials = {new_serial() for _ in range(2000)}
    assert len(serials) == 2000
    for serial in list(serials)[:50]:
        assert len(serial) * math.log2(62) >= 64
        assert len(serial) <= 20
        assert all(char in gs1.SERIAL_ALPHABET for char in serial)
        UnitId(GTIN14, serial)  # valid AI 21 value
    assert len(new_serial(64)) == 11
    with pytest.raises(ValueError):
        new_serial(32)


def test_epc_urns_parse_to_the_same_ids_as_digital_links() -> None:
    unit = parse_identifier("urn:epc:id:sgtin:9506000.013435.ABC1")
    assert unit == UnitId(GTIN14, "ABC1")
    container = parse_identifier("urn:epc:id:sscc:0614141.1234567890")
    assert container == ContainerId("106141412345678908")
    with pytest.raises(InvalidIdentifier):
        parse_identifier("urn:epc:id:sgtin:9506000.0134.ABC1")


def test_issued_code_signature_recovers_the_manufacturer_offline() -> None:
    manufacturer = Account.create()
    unit, link = issuance.issue_unit(GTIN13, "LOT-7", private_key=manufacturer.key, chain_id=31337,
                                resolver="scan.waymark.example")
    # Digital Link 1.4: the GTIN-13 is printed as 13 digits, not padded
    assert link.startswith(f"https://scan.waymark.example/01/{GTIN13}/10/LOT-7/21/{unit.serial}?s=")
    assert issuance.recover_issuer(link, 31337) == manufacturer.address
    assert issuance.verify_issuance(link, 31337, manufacturer.address)
    # another chain, another lot, or another serial: the signature no longer matches
    assert not issuance.verify_issuance(link, 1, manufacturer.address)
    forged_lot = link.replace("/10/LOT-7/", "/10/LOT-8/")
    assert not issuance.verify_issuance(forged_lot, 31337, manufacturer.address)
    forged_serial = link.replace(f"/21/{unit.serial}?", "/21/NEVERISSUED1?")
    assert not issuance.verify_issuance(forged_serial, 31337, manufacturer.address)
    # the resolver host is not part of what was signed
    moved = link.replace("scan.waymark.example", "id.gs1.org")
    assert issuance.verify_issuance(moved, 31337, manufacturer.address)


def test_issuance_digest_is_standard_eip712() -> None:
    manufacturer = Account.create()
    unit = UnitId(GTIN14, "S1", "L1")
    typed = {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
            ],
            "CodeIssuance": [{"name": "unit", "type": "string"}],
        },
        "primaryType": "CodeIssuance",
        "domain": {"name": "Waymark code issuance", "version": "1", "chainId": 31337},
        "message": {"unit": f"https://id.gs1.org/01/{GTIN14}/10/L1/21/S1"},
    }
    reference = Account.sign_message(encode_typed_data(full_message=typed), manufacturer.key)
    assert issuance.sign_issuance(manufacturer.key, unit, 31337) == reference.signature


def test_unsigned_links_have_no_issuer_and_malformed_signatures_are_rejected() -> None:
    plain = f"https://brand.example/01/{GTIN14}/21/S1"
    assert issuance.recover_issuer(plain, 31337) is None
    assert not issuance.verify_issuance(plain, 31337, Account.create().address)
    assert "issuance signature" in problem_of(plain + "?s=abcd")
    assert "twice" in problem_of(plain + "?s=" + "00" * 65 + "&s=" + "00" * 65)
    # well-formed length but not a signature of anything
    assert not issuance.verify_issuance(plain + "?s=" + "00" * 64 + "1b", 31337, Account.create().address)


# --- Digital Link 1.4: every key trade uses, data attributes, one key per item --------------------

GLN = "9506000000008"  # a GLN with a valid check digit (9506000 00000 8)


def link_problem(uri: str) -> str:
    with pytest.raises(InvalidIdentifier) as caught:
        digital_link.parse_link(uri)
    return caught.value.problem


def test_product_and_lot_level_links_parse_to_product_ids_with_canonical_keys() -> None:
    product = digital_link.parse_link(f"https://brand.example/01/{GTIN13}").key
    assert product == gs1.ProductId(GTIN14) and product.level == "product"
    assert product.canonical_uri == f"https://id.gs1.org/01/{GTIN14}"
    lot = digital_link.parse_link(f"https://brand.example/01/{GTIN14}/10/AB%2F1").key
    assert isinstance(lot, gs1.ProductId) and lot.lot == "AB/1" and lot.level == "lot"
    assert lot.canonical_uri == f"https://id.gs1.org/01/{GTIN14}/10/AB%2F1"


@pytest.mark.parametrize("gtin", ["96385074", "614141000036", GTIN13])
def test_short_gtins_are_not_zero_padded_in_the_uri_but_share_one_key(gtin: str) -> None:
    unit = digital_link.parse_link(f"https://brand.example/01/{gtin}/21/S1").key
    assert isinstance(unit, UnitId)
    assert unit.uri("r.example") == f"https://r.example/01/{gtin}/21/S1"
    padded = digital_link.parse_link(f"https://brand.example/01/{gtin.zfill(14)}/21/S1").key
    assert padded == unit and padded.canonical_uri == unit.canonical_uri == f"https://id.gs1.org/01/{gtin.zfill(14)}/21/S1"


def test_consumer_product_variant_is_kept_in_the_link_and_out_of_the_key() -> None:
    unit = digital_link.parse_link(f"https://brand.example/01/{GTIN14}/22/V-2/10/L1/21/S1").key
    assert isinstance(unit, UnitId) and unit.cpv == "V-2"
    assert unit.uri("r.example") == f"https://r.example/01/{GTIN14}/22/V-2/10/L1/21/S1"
    assert unit.canonical_uri == f"https://id.gs1.org/01/{GTIN14}/21/S1"


def test_location_party_and_asset_keys_parse_with_their_qualifiers() -> None:
    location = digital_link.parse_link(f"https://brand.example/414/{GLN}/254/DOCK-3").key
    assert location == gs1.GS1Key("414", GLN, (("254", "DOCK-3"),))
    assert location.canonical_uri == f"https://id.gs1.org/414/{GLN}/254/DOCK-3"
    assert digital_link.parse_link(f"https://brand.example/417/{GLN}").key == gs1.GS1Key("417", GLN)
    assert digital_link.parse_link("https://brand.example/8004/9506000XYZ-1").key == gs1.GS1Key("8004", "9506000XYZ-1")
    assert "check digit" in link_problem("https://brand.example/414/9506000000009")
    assert "254" in link_problem(f"https://brand.example/417/{GLN}/254/A")
    assert "not one this network resolves" in link_problem("https://brand.example/8006/095060001343521001")


def test_data_attributes_are_validated_per_ai_and_other_parameters_ignored() -> None:
    link = digital_link.parse_link(f"https://brand.example/01/{GTIN14}/10/L1?17=261231&3103=000150&linkType=gs1:pip&utm_source=x")
    assert link.attributes == (("17", "261231"), ("3103", "000150"))
    assert link.canonical_uri == f"https://id.gs1.org/01/{GTIN14}/10/L1"


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("17=261331", "AI (17)"),  # month 13
        ("17=", "AI (17) USE BY or EXPIRY is empty"),
        ("17=261231&17=270101", "AI (17) USE BY or EXPIRY appears twice"),
        ("9999=1", "AI (9999) in the query string is not a GS1 Application Identifier"),
        ("3103=12", "AI (3103)"),
        ("10=L1", "AI (10) BATCH/LOT is a key qualifier of (01)"),
        ("00=106141411234567897", "AI (00) SSCC is a primary key"),
    ],
)
def test_bad_data_attributes_are_refused_naming_the_ai(query: str, words: str) -> None:
    assert words in link_problem(f"https://brand.example/01/{GTIN14}?{query}")


def test_a_link_on_any_host_with_any_query_has_the_key_of_its_canonical_form() -> None:
    canonical = f"https://id.gs1.org/01/{GTIN14}/21/S1"
    for link in (canonical + "?17=261231", f"https://brand.example/shop/01/{GTIN13}/10/L1/21/S1?17=261231&x=y", canonical):
        assert digital_link.canonical_key(link) == canonical
        assert canonical_epc(link) == canonical  # how capture indexes events


def test_bare_gtin_and_sscc_are_the_same_key_as_their_digital_links() -> None:
    assert digital_link.canonical_key("106141411234567897") == digital_link.canonical_key("https://carrier.example/00/106141411234567897")
    assert digital_link.canonical_key(GTIN13) == digital_link.canonical_key(f"https://id.gs1.org/01/{GTIN14}") == f"https://id.gs1.org/01/{GTIN14}"
    with pytest.raises(InvalidIdentifier, match="bare key"):
        digital_link.canonical_key("12345")


def test_unit_parser_still_refuses_product_level_and_other_keys() -> None:
    assert "serial" in problem_of(f"https://brand.example/01/{GTIN14}")
    assert "primary key" in problem_of(f"https://brand.example/414/{GLN}")


def test_human_readable_lines_keep_the_variant_and_the_data_attributes() -> None:
    link = f"https://brand.example/01/{GTIN13}/22/V2/10/L1/21/S1?17=261231&linkType=all"
    assert human_readable(link) == [f"(01) {GTIN14}", "(22) V2", "(10) L1", "(21) S1", "(17) 261231"]
