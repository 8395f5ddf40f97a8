"""Address formats of the networks the venues use, checked with their own checksums.

Everything here is pure: no database, no network. A refusal raises :class:`AddressFormatError`
with a message fit for the page.
"""

from __future__ import annotations

import base64
import hashlib
import re

from .keccak import keccak256


class AddressFormatError(ValueError):
    """The address (or its memo/tag) cannot be right for the network. Message is user-facing."""

    def __init__(self, message: str, *, field: str = "address") -> None:
        super().__init__(message)
        self.message = message
        self.field = field


# A destination tag as the ledger takes it: up to 10 ASCII digits (range checked separately).
XRP_TAG = re.compile(r"[0-9]{1,10}")

# Venues spell networks their own way (Kraken "Ethereum", KuCoin "eth", Nord-Pay "BSC").
NETWORK_FAMILIES: dict[str, frozenset[str]] = {
    "bitcoin": frozenset({"bitcoin", "btc", "bech32", "segwit", "bitcoin (segwit)"}),
    "evm": frozenset(
        {
            "ethereum",
            "eth",
            "erc20",
            "bsc",
            "bep20",
            "bnb smart chain",
            "polygon",
            "matic",
            "arbitrum",
            "arbitrum one",
            "optimism",
            "base",
            "avalanche c-chain",
            "avaxc",
        }
    ),
    "tron": frozenset({"tron", "trx", "trc20"}),
    "xrp": frozenset({"ripple", "xrp", "xrp ledger"}),
    "xlm": frozenset({"stellar", "xlm"}),
}
_FAMILY_OF = {name: family for family, names in NETWORK_FAMILIES.items() for name in names}
# Families whose addresses are case-insensitive: compared in lower case for duplicates.
CASE_INSENSITIVE = frozenset({"evm"})


def network_family(network: str) -> str | None:
    return _FAMILY_OF.get((network or "").strip().lower())


def checkable_networks() -> list[str]:
    return sorted({name for names in NETWORK_FAMILIES.values() for name in names})


# --- base58 ---------------------------------------------------------------------------------

BITCOIN_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
RIPPLE_ALPHABET = "rpshnaf39wBUDNEGHJKLM4PQRST7VWXYZ2bcdeCg65jkm8oFqi1tuvAxyz"


def base58_decode(text: str, alphabet: str = BITCOIN_ALPHABET) -> bytes:
    number = 0
    for char in text:
        digit = alphabet.find(char)
        if digit < 0:
            raise ValueError(f"{char!r} is not a base58 character")
        number = number * 58 + digit
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading = len(text) - len(text.lstrip(alphabet[0]))
    return b"\x00" * leading + body


def base58check_decode(text: str, alphabet: str = BITCOIN_ALPHABET) -> bytes:
    """The payload (version byte included) of a base58check string; ValueError if it is not."""
    raw = base58_decode(text, alphabet)
    if len(raw) < 5:
        raise ValueError("too short")
    payload, checksum = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise ValueError("checksum mismatch")
    return payload


# --- bech32 / bech32m (BIP-173, BIP-350) ----------------------------------------------------

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
BECH32M_CONST = 0x2BC830A3
_BECH32_GEN = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_polymod(values: list[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, gen in enumerate(_BECH32_GEN):
            if (top >> i) & 1:
                chk ^= gen
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def bech32_decode(text: str) -> tuple[str, list[int], str]:
    """(hrp, data without checksum, "bech32" or "bech32m"); ValueError if the checksum fails."""
    if any(ord(c) < 33 or ord(c) > 126 for c in text):
        raise ValueError("invalid character")
    if text.lower() != text and text.upper() != text:
        raise ValueError("mixed case")
    text = text.lower()
    sep = text.rfind("1")
    if sep < 1 or sep + 7 > len(text) or len(text) > 90:
        raise ValueError("bad separator or length")
    if any(c not in BECH32_CHARSET for c in text[sep + 1 :]):
        raise ValueError("invalid data character")
    hrp, data = text[:sep], [BECH32_CHARSET.index(c) for c in text[sep + 1 :]]
    const = _bech32_polymod(_hrp_expand(hrp) + data)
    if const == 1:
        return hrp, data[:-6], "bech32"
    if const == BECH32M_CONST:
        return hrp, data[:-6], "bech32m"
    raise ValueError("checksum mismatch")


def _convert_bits(data: list[int], frombits: int, tobits: int) -> bytes:
    acc = bits = 0
    out = bytearray()
    maxv = (1 << tobits) - 1
    for value in data:
        acc = (acc << frombits) | value
        bits += frombits
        while bits >= tobits:
            bits -= tobits
            out.append((acc >> bits) & maxv)
    if bits >= frombits or ((acc << (tobits - bits)) & maxv):
        raise ValueError("invalid padding")
    return bytes(out)


def segwit_decode(text: str, hrp: str = "bc") -> tuple[int, bytes]:
    """(witness version, program) of a segwit address; ValueError if it is not one."""
    got_hrp, data, spec = bech32_decode(text)
    if got_hrp != hrp:
        raise ValueError(f"wrong prefix {got_hrp}")
    if not data or data[0] > 16:
        raise ValueError("bad witness version")
    program = _convert_bits(data[1:], 5, 8)
    if not 2 <= len(program) <= 40:
        raise ValueError("bad program length")
    if data[0] == 0 and len(program) not in (20, 32):
        raise ValueError("bad v0 program length")
    if (data[0] == 0) != (spec == "bech32"):
        raise ValueError("wrong checksum variant for the witness version")
    return data[0], program


# --- EVM (EIP-55) ---------------------------------------------------------------------------

_HEX40 = re.compile(r"^0x[0-9a-fA-F]{40}\Z")


def eip55_checksum(address: str) -> str:
    """The EIP-55 mixed-case form of a 0x-prefixed 20-byte hex address."""
    lower = address[2:].lower()
    digest = keccak256(lower.encode("ascii")).hex()
    return "0x" + "".join(
        c.upper() if c.isalpha() and int(digest[i], 16) >= 8 else c for i, c in enumerate(lower)
    )


# --- Stellar StrKey -------------------------------------------------------------------------


def _crc16_xmodem(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


def stellar_account_decode(text: str) -> bytes:
    """The 32-byte ed25519 key of a ``G...`` account id; ValueError if it is not one."""
    if len(text) != 56 or not text.startswith("G"):
        raise ValueError("not a G account id")
    try:
        raw = base64.b32decode(text)
    except ValueError as exc:
        raise ValueError("not base32") from exc
    if len(raw) != 35 or raw[0] != 6 << 3:
        raise ValueError("wrong version byte")
    if _crc16_xmodem(raw[:33]).to_bytes(2, "little") != raw[33:]:
        raise ValueError("checksum mismatch")
    return raw[1:33]


# --- the one entry point --------------------------------------------------------------------


def address_check(*, network: str, address: str, memo: str = "") -> str:
    """Check ``address`` (and ``memo``) for ``network``; return the network family.

    Raises AddressFormatError with a message naming what is wrong.
    """
    family = network_family(network)
    if family is None:
        raise AddressFormatError(
            f"Countersign cannot check addresses on the network “{network}”. Use one of the "
            "networks it knows (Bitcoin, Ethereum and other EVM chains, Tron, XRP, Stellar), "
            "spelled as the venue spells it.",
            field="network",
        )
    address = address or ""
    if address != address.strip() or not address:
        raise AddressFormatError("Enter the address exactly, with no spaces around it.")
    _CHECKS[family](address)
    _memo_check(family, memo or "")
    return family


def _check_bitcoin(address: str) -> None:
    if address.lower().startswith("bc1"):
        try:
            segwit_decode(address)
        except ValueError as exc:
            raise AddressFormatError(
                f"This is not a valid Bitcoin bech32/bech32m address ({exc})."
            ) from None
        return
    if address.lower().startswith(("tb1", "bcrt1")) or address[:1] in {"m", "n", "2"}:
        raise AddressFormatError("This is a Bitcoin testnet address; only mainnet is accepted.")
    try:
        payload = base58check_decode(address)
    except ValueError as exc:
        raise AddressFormatError(f"This is not a valid Bitcoin base58 address ({exc}).") from None
    if len(payload) != 21 or payload[0] not in (0x00, 0x05):
        raise AddressFormatError("This base58 string is not a Bitcoin P2PKH or P2SH address.")


def _check_evm(address: str) -> None:
    if not _HEX40.match(address):
        raise AddressFormatError("An EVM address is 0x followed by 40 hexadecimal characters.")
    body = address[2:]
    if body != body.lower() and body != body.upper() and address != eip55_checksum(address):
        raise AddressFormatError(
            "The EIP-55 checksum (the mix of capital letters) does not match: a character "
            "of this address is wrong."
        )


def _check_tron(address: str) -> None:
    try:
        payload = base58check_decode(address)
    except ValueError as exc:
        raise AddressFormatError(f"This is not a valid Tron address ({exc}).") from None
    if len(payload) != 21 or payload[0] != 0x41:
        raise AddressFormatError("A Tron address starts with T (version byte 0x41).")


def _check_xrp(address: str) -> None:
    if not address.startswith("r"):
        raise AddressFormatError("A classic XRP address starts with r.")
    try:
        payload = base58check_decode(address, RIPPLE_ALPHABET)
    except ValueError as exc:
        raise AddressFormatError(f"This is not a valid XRP address ({exc}).") from None
    if len(payload) != 21 or payload[0] != 0x00:
        raise AddressFormatError("This is not a classic XRP account address.")


def _check_xlm(address: str) -> None:
    try:
        stellar_account_decode(address)
    except ValueError as exc:
        raise AddressFormatError(
            f"This is not a valid Stellar account id (G…, 56 characters; {exc})."
        ) from None


_CHECKS = {
    "bitcoin": _check_bitcoin,
    "evm": _check_evm,
    "tron": _check_tron,
    "xrp": _check_xrp,
    "xlm": _check_xlm,
}


def _memo_check(family: str, memo: str) -> None:
    if family == "xrp":
        if not memo:
            raise AddressFormatError(
                "XRP needs a destination tag: without it the venue credits nobody.", field="memo"
            )
        # ASCII digits only: str.isdigit() also accepts "²", Arabic-Indic and full-width digits,
        # which int() either refuses or silently turns into a different tag than the one shown.
        if not XRP_TAG.fullmatch(memo) or int(memo) > 2**32 - 1:
            raise AddressFormatError(
                "An XRP destination tag is a whole number up to 4294967295.", field="memo"
            )
    elif family == "xlm":
        if not memo:
            raise AddressFormatError(
                "Stellar needs a memo: without it the venue credits nobody.", field="memo"
            )
        if len(memo.encode()) > 28:
            raise AddressFormatError("A Stellar text memo is at most 28 bytes.", field="memo")
    elif memo:
        raise AddressFormatError("This network takes no memo or tag.", field="memo")


def address_canonical(*, network: str, address: str) -> str:
    """The form two addresses are compared in: case folded where the network ignores case."""
    family = network_family(network)
    if family in CASE_INSENSITIVE or address.lower().startswith("bc1"):
        return address.lower()
    return address


def looks_alike(a: str, b: str) -> bool:
    """Same first 4 and last 4 characters but not the same address (address poisoning)."""
    a_l, b_l = a.lower(), b.lower()
    return a_l != b_l and a_l[:4] == b_l[:4] and a_l[-4:] == b_l[-4:]


def differing_positions(address: str, other: str) -> frozenset[int]:
    """Positions in ``address`` whose character differs from ``other`` (case ignored): what a
    reader must look at to tell two look-alike addresses apart. Equal lengths compare place by
    place; otherwise everything between the common start and the common end differs."""
    a, b = address.lower(), other.lower()
    if len(a) == len(b):
        return frozenset(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
    start = 0
    while start < min(len(a), len(b)) and a[start] == b[start]:
        start += 1
    end = 0
    while end < min(len(a), len(b)) - start and a[-1 - end] == b[-1 - end]:
        end += 1
    return frozenset(range(start, len(a) - end))
