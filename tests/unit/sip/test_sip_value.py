"""Value objects (pbx_runtime.sip.value): equality, hashing, repr and immutability."""

from __future__ import annotations

import pytest

from pbx_runtime import COMPILED
from pbx_runtime.core import Peer, Send
from pbx_runtime.sip import CSeq, Via, parse_via


def test_equal_values_are_equal_and_hash_alike() -> None:
    assert CSeq(1, "INVITE") == CSeq(1, "INVITE")
    assert hash(CSeq(1, "INVITE")) == hash(CSeq(1, "INVITE"))
    assert CSeq(1, "INVITE") != CSeq(2, "INVITE")
    assert {Peer("UDP", "192.0.2.1", 5060, 0): "a"}[Peer("UDP", "192.0.2.1", 5060, 0)] == "a"


def test_a_value_never_equals_another_type_with_the_same_fields() -> None:
    assert CSeq(1, "INVITE") != (1, "INVITE")
    peer = Peer("UDP", "192.0.2.1", 5060, 0)
    assert Send(peer, b"x") != (peer, b"x")
    assert CSeq(1, "INVITE") != Via(transport="UDP", host="h")


def test_repr_names_the_class_and_its_fields() -> None:
    assert repr(CSeq(7, "BYE")) == "CSeq(7, 'BYE')"
    assert repr(Via(transport="UDP", host="h", port=5060)).startswith("Via('UDP', 'h', 5060, ")


def test_derived_attributes_follow_the_fields() -> None:
    params = parse_via("SIP/2.0/UDP x;branch=z9hG4bKa;rport").params
    assert Via(transport="UDP", host="h", params=params).branch == "z9hG4bKa"
    assert Via(transport="UDP", host="h").branch is None
    assert Peer("TLS", "192.0.2.1", 5061, 1, conn=3).is_stream


@pytest.mark.skipif(not COMPILED, reason="interpreted, Final is checked by mypy only")
def test_compiled_values_refuse_reassignment() -> None:
    cseq = CSeq(1, "INVITE")
    with pytest.raises(AttributeError):
        cseq.number = 2  # type: ignore[misc]
