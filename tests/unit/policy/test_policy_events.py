"""SecurityEvent records and the bounded EventLog outbox (pbx_runtime.events)."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pbx_runtime.events import MAX_FIELD_CHARS, EventKind, EventLog, SecurityEvent


def event(**overrides: object) -> SecurityEvent:
    fields: dict[str, object] = {
        "tenant": "acme",
        "kind": EventKind.LOCKOUT,
        "source": "[2001:db8::1]:5061",
        "user": "1001",
        "reason": "source locked 60s strike 1",
        "at": 1_700_000_000.25,
    }
    fields.update(overrides)
    return SecurityEvent(**fields)  # type: ignore[arg-type]


def test_to_json_is_one_sorted_object_with_iso_utc_time() -> None:
    text = event().to_json()
    assert "\n" not in text
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data == {
        "at": "2023-11-14T22:13:20.250Z",
        "kind": "lockout",
        "reason": "source locked 60s strike 1",
        "source": "[2001:db8::1]:5061",
        "tenant": "acme",
        "user": "1001",
    }


def test_peer_controlled_fields_are_escaped_and_clipped() -> None:
    nasty = 'x"\r\n\x00' + "é" * 500
    text = event(user=nasty, reason=nasty, source=None).to_json()
    assert text.isascii() and "\n" not in text and "\r" not in text
    data = json.loads(text)
    assert data["source"] is None
    assert len(data["user"]) == MAX_FIELD_CHARS + 1 and data["user"].startswith('x"\r\n\x00')


def test_events_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        event().user = "other"  # type: ignore[misc]


def test_every_kind_serialises_as_its_value() -> None:
    for kind in EventKind:
        assert json.loads(event(kind=kind).to_json())["kind"] == kind.value


def test_event_log_is_a_bounded_outbox() -> None:
    log = EventLog("globex", max_pending=3)
    for i in range(5):
        log.emit(EventKind.AUTH_FAILED, source="s", user=str(i), reason="bad_response", at=i)
    assert len(log) == 3 and log.dropped == 2
    drained = log.drain()
    assert [e.user for e in drained] == ["2", "3", "4"]
    assert all(e.tenant == "globex" for e in drained)
    assert log.drain() == [] and len(log) == 0
    with pytest.raises(ValueError):
        EventLog("x", max_pending=0)


@settings(max_examples=300)
@given(
    tenant=st.text(max_size=20),
    kind=st.sampled_from(EventKind),
    source=st.none() | st.text(max_size=40),
    user=st.none() | st.text(max_size=200),
    reason=st.text(max_size=200),
    at=st.floats(min_value=0, max_value=4_102_444_800, allow_nan=False),
)
def test_to_json_is_the_text_json_dumps_writes(
    tenant: str, kind: EventKind, source: str | None, user: str | None, reason: str, at: float
) -> None:
    """to_json is written out by hand for speed; it must stay byte-identical to json.dumps."""
    record = SecurityEvent(tenant=tenant, kind=kind, source=source, user=user, reason=reason, at=at)
    reference = json.dumps(record.to_dict(), sort_keys=True, separators=(",", ":"))
    assert record.to_json() == reference


@pytest.mark.parametrize(
    ("at", "stamp"),
    [
        (0, "1970-01-01T00:00:00.000Z"),
        (1_700_000_000.9999, "2023-11-14T22:13:20.999Z"),  # truncated, never rounded up
        (1_709_164_800.5, "2024-02-29T00:00:00.500Z"),  # leap day
        (4_102_444_799.001, "2099-12-31T23:59:59.001Z"),
    ],
)
def test_time_is_iso_utc_with_truncated_milliseconds(at: float, stamp: str) -> None:
    assert json.loads(event(at=at).to_json())["at"] == stamp
