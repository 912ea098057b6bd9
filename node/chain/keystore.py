"""Local signing keys from encrypted keystore files (the Web3 Secret Storage format)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import cast

from eth_account import Account
from eth_account.signers.local import LocalAccount
from pydantic import SecretStr

from node.chain.devnet_keys import DEVNET_CHAIN_ID, devnet_addresses
from node.errors import WaymarkError


class KeystoreError(WaymarkError):
    code = "keystore_error"


class KeystoreMissing(KeystoreError):
    code = "keystore_missing"

    def __init__(self, path: Path) -> None:
        super().__init__(f"keystore file {path} does not exist")


class KeystoreUnreadable(KeystoreError):
    code = "keystore_unreadable"

    def __init__(self, path: Path, detail: str) -> None:
        super().__init__(f"keystore file {path} is not a valid encrypted keystore: {detail}")


class KeystoreWrongPassword(KeystoreError):
    code = "keystore_wrong_password"

    def __init__(self, path: Path, source: str = "the given password") -> None:
        super().__init__(f"keystore file {path} cannot be decrypted with {source}: wrong password")


class PasswordFileMissing(KeystoreError):
    code = "password_file_missing"

    def __init__(self, path: Path, problem: str = "does not exist") -> None:
        super().__init__(f"password file {path} {problem} (--password-file or WAYMARK_SIGNER_PASSWORD_FILE)")


class PasswordMissing(KeystoreError):
    code = "password_missing"

    def __init__(self, keystore: Path) -> None:
        super().__init__(f"keystore file {keystore} needs its password: give --password-file FILE "
                         "(or WAYMARK_SIGNER_PASSWORD_FILE / WAYMARK_SIGNER_PASSWORD)")


class KeystoreExists(KeystoreError):
    code = "keystore_exists"

    def __init__(self, path: Path) -> None:
        super().__init__(f"keystore file {path} already exists; it is never overwritten (choose another path)")


def read_password_file(path: Path) -> str:
    """The password on the first line of a password file, or a KeystoreError saying what is wrong with it."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise PasswordFileMissing(path) from None
    except IsADirectoryError:
        raise PasswordFileMissing(path, "is a folder, not a file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PasswordFileMissing(path, f"cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not lines or not lines[0]:
        raise PasswordFileMissing(path, "is empty (the password goes on its first line)")
    return lines[0]


def resolve_password(password: SecretStr | None, password_file: Path | None) -> str:
    """A keystore's password as settings give it: the password itself, else the first line of the
    password file (a missing file is its own error, not a wrong password), else empty."""
    if password is not None:
        return password.get_secret_value()
    if password_file is not None:
        return read_password_file(password_file)
    return ""


class DevnetKeyRefused(KeystoreError):
    code = "devnet_key_refused"

    def __init__(self, address: str, chain_id: int) -> None:
        super().__init__(
            f"account {address} is a publicly known devnet key; it is refused on chain {chain_id} "
            f"(allowed only on the devnet, chain {DEVNET_CHAIN_ID})"
        )


def read_keystore(path: Path) -> dict[str, object]:
    """A keystore file's JSON, checked to be an encrypted keystore (not decrypted)."""
    if not path.is_file():
        raise KeystoreMissing(path)
    try:
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or "crypto" not in {k.lower() for k in data}:
            raise ValueError("no 'crypto' section")
    except (OSError, ValueError) as exc:
        raise KeystoreUnreadable(path, str(exc)) from None
    return data


def load_keystore(path: Path, password: str, source: str = "the given password") -> LocalAccount:
    data = read_keystore(path)
    try:
        key = Account.decrypt(data, password)
    except ValueError as exc:
        if "MAC mismatch" in str(exc):
            raise KeystoreWrongPassword(path, source) from None
        raise KeystoreUnreadable(path, str(exc)) from None
    # from_key is an eth_utils combomethod, whose descriptor erases the return type to Any.
    return cast(LocalAccount, Account.from_key(key))


def keystore_address(path: Path) -> str:
    """The account a keystore file holds, read without its password (the file's `address` field)."""
    if not path.is_file():
        raise KeystoreMissing(path)
    try:
        data = json.loads(path.read_text())
        address = str(data["address"]) if isinstance(data, dict) else ""
    except (OSError, ValueError, KeyError) as exc:
        raise KeystoreUnreadable(path, f"no address ({exc})") from None
    if not address:
        raise KeystoreUnreadable(path, "no address")
    return "0x" + address.removeprefix("0x")


def write_keystore(account: LocalAccount, password: str, path: Path, *, light: bool = False) -> Path:
    """Encrypt a key to a keystore file. `light` uses a cheap KDF: for public devnet keys only."""
    if light:
        data = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=1024)
    else:
        data = Account.encrypt(account.key, password)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    path.chmod(0o600)
    return path


def refuse_devnet_key(account: LocalAccount, chain_id: int) -> LocalAccount:
    if chain_id != DEVNET_CHAIN_ID and account.address in devnet_addresses():
        raise DevnetKeyRefused(account.address, chain_id)
    return account
