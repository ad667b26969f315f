from __future__ import annotations

import socket

import pytest

from custos.core.errors import InvalidInput, PayloadTooLarge
from custos.core.frames import recv_frame, send_frame


def test_frames_round_trip_and_end_of_stream_is_none() -> None:
    a, b = socket.socketpair()
    with a, b:
        send_frame(a, {"round": 1, "values": [1.5, None]})
        assert recv_frame(b) == {"round": 1, "values": [1.5, None]}
        a.shutdown(socket.SHUT_WR)
        assert recv_frame(b) is None


def test_oversized_and_malformed_frames_are_refused() -> None:
    a, b = socket.socketpair()
    with a, b:
        with pytest.raises(PayloadTooLarge):
            send_frame(a, {"x": "y" * 100}, max_bytes=10)
        send_frame(a, {"x": "y" * 100})
        with pytest.raises(PayloadTooLarge):
            recv_frame(b, max_bytes=10)
    a, b = socket.socketpair()
    with a, b:
        a.sendall(b"\x00\x00\x00\x03[1]")
        with pytest.raises(InvalidInput, match="JSON object"):
            recv_frame(b)
