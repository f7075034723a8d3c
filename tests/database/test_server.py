"""The throwaway server itself: reachable with the password on loopback, refused without it."""

from __future__ import annotations

import psycopg
import pytest


def test_server_takes_the_password_and_refuses_a_wrong_one(postgres):
    with postgres.connect() as connection:
        assert connection.execute("SELECT current_user").fetchone()[0] == postgres.user
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(f"postgresql://{postgres.user}:wrong@{postgres.host}:{postgres.port}/{postgres.database}")
