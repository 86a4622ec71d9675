"""Who pays for an answer's model tokens (the daily budget's key, lectern_chat.budget): a
signed-in reader is counted as themselves wherever they ask from, a guest by their address,
so a new guest token does not reset the allowance."""

from __future__ import annotations

import pytest

from lectern_chat.budget import payer
from lectern_chat.owners import Owner, guest_owner, reader_owner

GUEST = guest_owner(b"\x01" * 32)


@pytest.mark.parametrize(
    ("owner", "address", "expected"),
    [
        (reader_owner("reader-1"), None, "user:reader-1"),
        (reader_owner("reader-1"), "10.0.0.7", "user:reader-1"),
        (GUEST, "10.0.0.7", "ip:10.0.0.7"),
        (guest_owner(b"\x02" * 32), "10.0.0.7", "ip:10.0.0.7"),
        (GUEST, None, GUEST.key),
    ],
)
def test_the_payer_is_the_reader_else_the_guest_address(
    owner: Owner, address: str | None, expected: str
):
    assert payer(owner, address) == expected
