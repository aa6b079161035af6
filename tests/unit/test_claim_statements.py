"""The claim's statement text: on PostgreSQL the batch size is written into it."""

from __future__ import annotations

import pytest

from reminders.store.claims import ClaimStatements


@pytest.mark.parametrize("size", [0, -1, True, 2.0, "5"])
def test_a_postgresql_claim_refuses_a_batch_size_that_is_not_a_positive_int(
    size: object,
) -> None:
    """The batch size is written into the statement's text, so only a positive int gets there."""
    statements = ClaimStatements.build(["id"], ["patient_id"])
    with pytest.raises(ValueError, match="batch size"):
        statements.postgresql(size)  # type: ignore[arg-type]
    assert "LIMIT 7 FOR UPDATE" in str(statements.postgresql(7))
