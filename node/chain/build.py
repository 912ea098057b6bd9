"""Compile the Solidity sources under contracts/ into cached artifacts.

The compiler is solc 0.8.28. Native solc cannot be downloaded on our machines, so by
default py-solc-x drives `scripts/solc-js`, a front for the npm `solc` package that
answers like native solc. A native `solc` of exactly the pinned version on PATH gives
the same artifacts and is used when present (it is much faster).

Artifacts are rebuilt only when a source, the settings, the compiler or the
OpenZeppelin version changes: the build key is a hash over all of them.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import solcx
import solcx.exceptions

from node.errors import WaymarkError
from node.paths import ARTIFACTS_DIR, CONTRACTS_DIR, NODE_MODULES, PROJECT_ROOT, SOLC_JS

SOLC_VERSION = "0.8.28"
COMPILER_SETTINGS: dict[str, Any] = {
    "evmVersion": "cancun",
    "optimizer": {"enabled": True, "runs": 200},
    # The IR pipeline (Yul, optimised across functions): 2-3 % less gas per order's life than the
    # legacy code generator and TradeEscrow's runtime code 4.6 KB smaller (contracts/ESCROW.md,
    # "Gas"), for about 15 s more compiling through solc-js. Its semantic differences from the
    # legacy generator (state variables initialised with inheritance, `delete` of a struct,
    # modifiers) touch nothing our contracts rely on; the contract tests hold on both.
    "viaIR": True,
    "outputSelection": {
        "*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "metadata"]}
    },
}
INDEX_FILE = "index.json"


class CompileError(WaymarkError):
    """The compiler rejected the sources; one line per problem: file:line:col: kind: message."""

    code = "compile_error"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("contract compilation failed:\n" + "\n".join(problems))


class CompilerUnavailable(WaymarkError):
    code = "compiler_unavailable"

    def __init__(self, detail: str) -> None:
        super().__init__(f"no usable Solidity compiler {SOLC_VERSION}: {detail}")


class ArtifactNotFound(WaymarkError):
    code = "artifact_not_found"

    def __init__(self, name: str) -> None:
        super().__init__(f"no compiled contract named {name!r}; run `waymark build` first")


@dataclass(frozen=True)
class Artifact:
    name: str
    source: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    source_hash: str

    @property
    def code_hash(self) -> str:
        """sha256 of the runtime bytecode without its metadata trailer, to recognise deployed code."""
        return hashlib.sha256(bytes.fromhex(strip_metadata(self.deployed_bytecode))).hexdigest()


def strip_metadata(runtime_hex: str) -> str:
    """Drop the CBOR metadata trailer solc appends (its length is in the last two bytes)."""
    code = bytes.fromhex(runtime_hex.removeprefix("0x"))
    if len(code) < 2:
        return code.hex()
    trailer = int.from_bytes(code[-2:], "big") + 2
    return code[:-trailer].hex() if trailer <= len(code) else code.hex()


def solc_binary() -> Path:
    """A native solc of the pinned version if one is on PATH, else the solc-js front."""
    native = shutil.which("solc")
    if native:
        try:
            version = subprocess.run(
                [native, "--version"], capture_output=True, text=True, timeout=20
            ).stdout
        except (OSError, subprocess.SubprocessError):
            version = ""
        if f"Version: {SOLC_VERSION}+" in version:
            return Path(native)
    if not (NODE_MODULES / "solc" / "soljson.js").exists():
        raise CompilerUnavailable("npm package `solc` is not installed; run `make setup`")
    return SOLC_JS


def _source_files(contracts_dir: Path) -> list[Path]:
    return sorted(p for p in contracts_dir.rglob("*.sol") if p.is_file())


def _build_key(sources: dict[str, str]) -> str:
    digest = hashlib.sha256()
    digest.update(SOLC_VERSION.encode())
    digest.update(json.dumps(COMPILER_SETTINGS, sort_keys=True).encode())
    oz_package = NODE_MODULES / "@openzeppelin" / "contracts" / "package.json"
    if oz_package.exists():
        digest.update(json.loads(oz_package.read_text())["version"].encode())
    for path, content in sorted(sources.items()):
        digest.update(path.encode() + b"\0" + content.encode() + b"\0")
    return digest.hexdigest()


def _problem_line(error: dict[str, Any], sources: dict[str, str]) -> str:
    location = error.get("sourceLocation") or {}
    file = location.get("file", "")
    where = file or "<compiler>"
    text = sources.get(file)
    if text is None and file and (PROJECT_ROOT / file).exists():
        text = (PROJECT_ROOT / file).read_text()
    if text is not None and location.get("start", -1) >= 0:
        before = text[: location["start"]]
        where = f"{file}:{before.count(chr(10)) + 1}:{len(before) - before.rfind(chr(10))}"
    return f"{where}: {error.get('type', 'Error')}: {error.get('message', '').strip()}"


def build(contracts_dir: Path = CONTRACTS_DIR, out_dir: Path = ARTIFACTS_DIR, force: bool = False) -> bool:
    """Compile if anything changed. Returns True when it compiled, False when the cache was fresh."""
    sources = {
        str(p.relative_to(PROJECT_ROOT) if p.is_relative_to(PROJECT_ROOT) else p): p.read_text()
        for p in _source_files(contracts_dir)
    }
    key = _build_key(sources)
    index_path = out_dir / INDEX_FILE
    if not force and index_path.exists() and json.loads(index_path.read_text()).get("key") == key:
        return False

    standard_input = {
        "language": "Solidity",
        "sources": {path: {"content": content} for path, content in sources.items()},
        "settings": COMPILER_SETTINGS,
    }
    try:
        output = solcx.compile_standard(
            standard_input,
            solc_binary=solc_binary(),
            base_path=str(PROJECT_ROOT),
            allow_paths=[str(PROJECT_ROOT), str(NODE_MODULES)],
            allow_empty=True,
        )
    except solcx.exceptions.SolcError as exc:
        errors = [e for e in (exc.error_dict or []) if e.get("severity") == "error"]
        if errors:
            raise CompileError([_problem_line(e, sources) for e in errors]) from None
        raise CompilerUnavailable(str(exc).strip().splitlines()[0]) from None
    except (OSError, json.JSONDecodeError) as exc:
        raise CompilerUnavailable(str(exc)) from None

    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        stale.unlink()
    names: dict[str, str] = {}
    for source, contracts in output.get("contracts", {}).items():
        if source not in sources:
            continue  # libraries pulled in through imports are inlined into our artifacts
        for name, compiled in contracts.items():
            if name in names:
                raise CompileError([f"{source}: contract name {name} also defined in {names[name]}"])
            names[name] = source
            artifact = {
                "generated": "by node/chain/build.py; do not edit",
                "contractName": name,
                "sourceName": source,
                "sourceHash": hashlib.sha256(sources[source].encode()).hexdigest(),
                "compiler": {"version": SOLC_VERSION, "settings": COMPILER_SETTINGS},
                "abi": compiled["abi"],
                "bytecode": compiled["evm"]["bytecode"]["object"],
                "deployedBytecode": compiled["evm"]["deployedBytecode"]["object"],
            }
            (out_dir / f"{name}.json").write_text(json.dumps(artifact, indent=1))
    index_path.write_text(json.dumps({"key": key, "contracts": names}, indent=1))
    load_artifact.cache_clear()
    return True


@cache
def load_artifact(name: str, out_dir: Path = ARTIFACTS_DIR) -> Artifact:
    path = out_dir / f"{name}.json"
    if not path.exists():
        raise ArtifactNotFound(name)
    data = json.loads(path.read_text())
    return Artifact(
        name=name,
        source=data["sourceName"],
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        source_hash=data["sourceHash"],
    )


def all_artifacts(out_dir: Path = ARTIFACTS_DIR) -> list[Artifact]:
    index_path = out_dir / INDEX_FILE
    if not index_path.exists():
        return []
    return [load_artifact(name, out_dir) for name in json.loads(index_path.read_text())["contracts"]]


def main() -> int:
    force = "--force" in sys.argv[1:]
    try:
        compiled = build(force=force)
    except WaymarkError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print("compiled" if compiled else "up to date", f"-> {ARTIFACTS_DIR}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
