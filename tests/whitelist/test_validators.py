from __future__ import annotations

import hashlib

import pytest

from whitelist.keccak import keccak256
from whitelist.validators import (
    AddressFormatError,
    address_check,
    eip55_checksum,
    looks_alike,
    network_family,
)

EIP55_EXAMPLES = [
    "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed",
    "0xfB6916095ca1df60bB79Ce92cE3Ea74c37c5d359",
    "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB",
    "0xD1220A0cf47c7B9Be7A2E6BA89F429762e7b9aDb",
]


def test_keccak256_known_vectors_differ_from_sha3():
    assert (
        keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
    )
    assert (
        keccak256(b"abc").hex()
        == "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45"
    )
    assert keccak256(b"abc") != hashlib.sha3_256(b"abc").digest()


def test_keccak256_multi_block_input():
    # 200 bytes spans two 136-byte blocks; the digest is stable and not the one-block one.
    assert keccak256(b"a" * 200) != keccak256(b"a" * 136)
    assert len(keccak256(b"a" * 200)) == 32


@pytest.mark.parametrize("address", EIP55_EXAMPLES)
def test_eip55_examples(address):
    assert eip55_checksum(address.lower()) == address
    assert address_check(network="Ethereum", address=address) == "evm"


@pytest.mark.parametrize(
    "network,address,memo",
    [
        ("Bitcoin", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq", ""),  # bech32 v0
        ("BTC", "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297", ""),  # bech32m
        ("bitcoin", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", ""),  # P2PKH
        ("bech32", "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", ""),  # P2SH
        ("eth", "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed", ""),  # all lower: no checksum
        ("BSC", "0x5AAEB6053F3E94C9B9A09F33669435E7EF1BEAED", ""),  # all upper: no checksum
        ("Tron", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7", ""),
        ("Ripple", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "104857"),
        ("stellar", "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7", "invoice 7"),
    ],
)
def test_valid_addresses(network, address, memo):
    assert address_check(network=network, address=address, memo=memo)


@pytest.mark.parametrize(
    "network,address,memo,field,words",
    [
        ("Ethereum", "0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "", "address", "EIP-55"),
        ("Ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAe", "", "address", "40 hex"),
        ("Bitcoin", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdx", "", "address", "bech32"),
        ("Bitcoin", "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdQ", "", "address", "bech32"),
        ("Bitcoin", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3", "", "address", "base58"),
        ("Bitcoin", "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx", "", "address", "testnet"),
        ("Tron", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU8", "", "address", "Tron"),
        ("Tron", "1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2", "", "address", "0x41"),
        ("Ripple", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "", "memo", "destination tag"),
        ("Ripple", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "abc", "memo", "whole number"),
        # Unicode digits: "²" made int() raise (a 500), Arabic-Indic and full-width passed.
        ("Ripple", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "²", "memo", "whole number"),
        (
            "Ripple",
            "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
            "\u0661\u0662\u0663",
            "memo",
            "whole number",
        ),
        (
            "Ripple",
            "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh",
            "\uff11\uff12\uff13",
            "memo",
            "whole number",
        ),
        ("Ripple", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTh", "4294967296", "memo", "whole number"),
        ("Ripple", "rHb9CJAWyB4rj91VRWn96DkukG4bwdtyTi", "1", "address", "XRP"),
        ("Stellar", "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7", "", "memo", "memo"),
        ("Stellar", "GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN6", "m", "address", ""),
        ("Ethereum", "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "1", "memo", "no memo"),
        ("Solana", "So11111111111111111111111111111111111111112", "", "network", "cannot check"),
        ("Ethereum", " 0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", "", "address", "spaces"),
    ],
)
def test_malformed_addresses_get_a_clear_message(network, address, memo, field, words):
    with pytest.raises(AddressFormatError) as info:
        address_check(network=network, address=address, memo=memo)
    assert info.value.field == field
    assert words.lower() in info.value.message.lower()


def test_network_spellings_of_every_venue_map_to_a_family():
    spellings = {"Bitcoin": "bitcoin", "bech32": "bitcoin", "BTC": "bitcoin", "eth": "evm"}
    spellings |= {"BSC": "evm", "ethereum": "evm", "trx": "tron", "TRON": "tron"}
    spellings |= {"Ripple": "xrp", "xrp": "xrp"}
    for name, family in spellings.items():
        assert network_family(name) == family
    assert network_family("Dogecoin") is None


def test_looks_alike_needs_same_ends_and_a_different_middle():
    a = "0xdbF03B407c01E7cD3CBea99509d93f8DDDC8C6FB"
    assert looks_alike(a, "0xdb" + "0" * 34 + "c6fb")
    assert not looks_alike(a, a.lower())  # the same address in another case
    assert not looks_alike(a, "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed")
