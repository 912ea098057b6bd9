"""Speed of the provenance primitives on one core, each against a baseline from the same run.

    .venv/bin/python scripts/bench/provenance.py [--leaves 100000]

* CBV 2.0 event hash per event (three event shapes) vs the epcis-event-hash-generator package
* EIP-712 attestation recovery per signature vs eth_account's encode_typed_data + recover_message
* Merkle tree build for N leaves (+ all proofs) vs the same tree built with eth_abi + eth_hash
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from epcis_event_hash_generator import hash_generator, json_to_py  # noqa: E402
from eth_abi.abi import encode  # noqa: E402
from eth_account import Account  # noqa: E402
from eth_account.messages import encode_typed_data  # noqa: E402
from eth_hash.auto import keccak  # noqa: E402

from node.protocol import epcis  # noqa: E402
from node.protocol import vocabulary  # noqa: E402
from node.protocol.attestation import AttestationDomain, attestation_typed_data, recover_attester, sign_attestation_fields  # noqa: E402
from node.protocol.event_hash import event_hash  # noqa: E402
from node.protocol.gs1 import UnitId, make_sscc, new_serial  # noqa: E402
from node.protocol.merkle import build_tree  # noqa: E402


def per_call(function: Callable[[], Any], repeat: int) -> float:
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat


def events() -> dict[str, dict[str, Any]]:
    """One event of each shape, with fresh random serials (so no cache sees them twice)."""
    units = [UnitId("09506000134352", new_serial(), "LOT-24") for _ in range(10)]
    t = "2024-05-01T10:00:00.123+02:00"
    return {
        "ObjectEvent, 1 unit": epcis.object_event(
            epcs=units[:1], action="OBSERVE", event_time=t, biz_step="inspecting", disposition="conformant",
            read_point="https://id.gs1.org/414/9506000134352"),
        "AggregationEvent, 10 units": epcis.aggregation_event(
            parent_id=f"https://id.gs1.org/00/{make_sscc('9506000', int.from_bytes(os.urandom(3), 'big'))}",
            child_epcs=units, action="ADD", event_time=t, biz_step="packing", disposition="container_closed"),
        "ObjectEvent, sensors+docs+customs": epcis.object_event(
            epcs=units[:3], action="OBSERVE", event_time=t, biz_step=vocabulary.customs_step("cleared"),
            disposition=vocabulary.customs_disposition("released"), read_point="https://id.gs1.org/414/9506000134352",
            biz_transactions=[epcis.biz_transaction("urn:epcglobal:cbv:bt:9506000134352:PO-77", "po")],
            sensor_elements=[epcis.sensor_element([epcis.temperature(4.5), epcis.relative_humidity(61)],
                                                  time="2024-05-01T09:59:00Z")],
            documents=[epcis.document_ref("customs_release", os.urandom(32).hex())],
            extensions=epcis.customs_fields(declaration_id="DE-1", duty_amount="125.50", duty_currency="EUR")),
    }


def bench_hash() -> dict[str, dict[str, float]]:
    print("CBV 2.0 event hash, per event (distinct events, each hashed once)")
    samples = [events() for _ in range(3000)]
    figures = {}
    for name in samples[0]:
        batch = [sample[name] for sample in samples]
        start = time.perf_counter()
        for event in batch:
            event_hash(event)
        ours = (time.perf_counter() - start) / len(batch)
        document = epcis.epcis_document(batch[:50])
        document["@context"] = [vocabulary.EPCIS_CONTEXT_URL, vocabulary.WAYMARK_CONTEXT[1]]

        def package() -> None:
            parsed = json_to_py.event_list_from_epcis_document_json(copy.deepcopy(document))
            hash_generator.epcis_hashes_from_events(parsed)

        baseline = per_call(package, 3) / 50
        print(f"  {name:36s} ours {ours * 1e6:7.1f} us   epcis-event-hash-generator {baseline * 1e6:8.1f} us"
              f"   x{baseline / ours:,.0f}")
        figures[name] = {"ours_us": round(ours * 1e6, 1), "baseline_us": round(baseline * 1e6, 1)}
    return figures


def bench_recover() -> dict[str, float]:
    account = Account.create()
    domain = AttestationDomain(31337, "0x5FbDB2315678afecb367f032d93F642f64180aa3")
    items = [sign_attestation_fields(account.key, domain, os.urandom(32), os.urandom(32), 1_700_000_000 + i)
             for i in range(500)]
    it = iter(items * 10)

    def ours() -> None:
        a = next(it)
        recover_attester(domain, a.event_digest, a.subject, a.event_time, a.signature)

    it2 = iter(items * 10)

    def reference() -> None:
        a = next(it2)
        message = encode_typed_data(full_message=attestation_typed_data(domain, a.event_digest, a.subject, a.event_time))
        Account.recover_message(message, signature=a.signature)

    mine, base = per_call(ours, 3000), per_call(reference, 300)
    print("EIP-712 attestation recovery, per signature")
    print(f"  ours {mine * 1e6:7.1f} us ({1 / mine:,.0f}/s)   eth_account {base * 1e6:7.1f} us ({1 / base:,.0f}/s)"
          f"   x{base / mine:.1f}")
    return {"ours_us": round(mine * 1e6, 1), "baseline_us": round(base * 1e6, 1)}


def bench_merkle(leaves: int) -> dict[str, float]:
    values = [(os.urandom(32), "0x" + os.urandom(20).hex()) for _ in range(leaves)]
    start = time.perf_counter()
    tree = build_tree(values)
    built = time.perf_counter() - start
    start = time.perf_counter()
    tree.proofs()
    proved = time.perf_counter() - start

    sample = values[: min(leaves, 10000)]
    start = time.perf_counter()
    for digest, attester in sample:
        keccak(keccak(encode(["bytes32", "address"], [digest, attester])))
    generic = (time.perf_counter() - start) / len(sample) * leaves
    print(f"Merkle tree (OZ StandardMerkleTree layout), {leaves:,} leaves")
    print(f"  build {built:.2f} s, all proofs {proved:.2f} s   "
          f"baseline: leaf hashes alone with eth_abi+eth_hash {generic:.2f} s (extrapolated)")
    return {"leaves": leaves, "build_s": round(built, 2), "proofs_s": round(proved, 2), "baseline_leaf_hashes_s": round(generic, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leaves", type=int, default=100_000)
    args = parser.parse_args()
    summary = {"benchmark": "provenance", "event_hash": bench_hash(), "recovery": bench_recover(), "merkle": bench_merkle(args.leaves),
               "load_average": round(os.getloadavg()[0], 2)}
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
