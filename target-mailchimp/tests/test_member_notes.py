"""Issue 9 (the target's CPU): the write-ahead notes of member writes (`member_writes`) are
set and settled by statements that do the merge themselves, with no read of the notes first
(each was a SELECT of every member of the drain, then rows rebuilt in Python), on SQLite and
PostgreSQL alike. What a note holds afterwards is as before."""

from __future__ import annotations

import sqlalchemy as sa
from target_mailchimp.audit import AuditStore, OwnWrite

JAN, DEC = "2026-01-01T00:00:00+00:00", "2025-12-31T00:00:00+00:00"
FEB, FEB2 = "2026-02-01T00:00:00+00:00", "2026-02-02T00:00:00+00:00"


def test_notes_are_merged_by_the_database_without_reading_them(database_url: str) -> None:
    audit = AuditStore(database_url, "run-1")
    audit.remember_member_changes("L1", {"old@x.nl": JAN, "other@x.nl": JAN})
    audit.mark_members_pending("L1", ["dead@x.nl"], DEC)  # a run that died left this note
    audit.remember_member_changes("L2", {"old@x.nl": DEC})  # another audience: untouched
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if "member_writes" in statement:
            statements.append(statement.lstrip().split()[0].upper())

    sa.event.listen(audit.engine, "before_cursor_execute", seen)
    many = [f"m{i}@x.nl" for i in range(1200)]  # more than one IN (...) chunk
    audit.mark_members_pending("L1", ["old@x.nl", "dead@x.nl", "new@x.nl", "gone@x.nl", *many],
                               FEB)
    marking = list(statements)
    audit.settle_members("L1", ["old@x.nl", "dead@x.nl", "new@x.nl", *many],
                         {"new@x.nl": FEB2, "gone@x.nl": None, many[0]: FEB2})
    settling = statements[len(marking):]
    sa.event.remove(audit.engine, "before_cursor_execute", seen)

    assert "SELECT" not in marking + settling
    assert len(marking) <= 2 and len(settling) <= 4  # per call, not per member
    known = audit.own_member_changes("L1", ["old@x.nl", "dead@x.nl", "new@x.nl", "gone@x.nl",
                                            "other@x.nl", *many])
    assert known == {"old@x.nl": OwnWrite(JAN, None),  # kept what it knew, note cleared
                     "new@x.nl": OwnWrite(FEB2, None),  # confirmed
                     "other@x.nl": OwnWrite(JAN, None),  # not in this drain
                     many[0]: OwnWrite(FEB2, None)}  # dead@ and the rest: nothing left
    assert audit.pending_members("L1") == {}
    assert audit.own_member_changes("L2", ["old@x.nl"]) == {"old@x.nl": OwnWrite(DEC, None)}


def test_an_older_note_is_kept_when_members_are_marked_again(database_url: str) -> None:
    audit = AuditStore(database_url, "run-1")
    audit.remember_member_changes("L1", {"a@x.nl": JAN})
    audit.mark_members_pending("L1", ["b@x.nl"], DEC)
    audit.mark_members_pending("L1", ["a@x.nl", "b@x.nl", "c@x.nl"], FEB)
    assert audit.own_member_changes("L1", ["a@x.nl", "b@x.nl", "c@x.nl"]) == {
        "a@x.nl": OwnWrite(JAN, FEB), "b@x.nl": OwnWrite(None, DEC),  # its window stays open
        "c@x.nl": OwnWrite(None, FEB)}
    assert audit.pending_members("L1") == {"a@x.nl": FEB, "b@x.nl": DEC, "c@x.nl": FEB}
