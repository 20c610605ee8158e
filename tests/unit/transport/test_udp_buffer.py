"""The runtime says when the kernel's receive buffer makes UDP load shedding unreachable."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from pbx_runtime.transport.udp import receive_buffer_warning

SMALL = 64 * 1024  # below any net.core.rmem_max (Debian's default is 208 KiB)


@pytest.fixture
def small_socket() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL)
        sock.bind(("127.0.0.1", 0))
        yield sock


def test_a_buffer_smaller_than_the_shed_limit_is_reported(small_socket: socket.socket) -> None:
    warning = receive_buffer_warning(small_socket, 4 * 1024 * 1024)
    assert warning is not None
    assert "net.core.rmem_max" in warning and "limits.udp_backlog_bytes = 4194304" in warning


def test_a_buffer_that_holds_the_shed_limit_is_fine(small_socket: socket.socket) -> None:
    # Linux grants twice the request (bookkeeping overhead): 128 KiB holds a 64 KiB limit.
    assert receive_buffer_warning(small_socket, SMALL) is None
