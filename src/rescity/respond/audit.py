"""The audit chain (全程留痕): an append-only, hash-chained log of every change.

Each record holds ``seq`` (1, 2, 3, ... without gaps), ``ts_ms``, ``actor``, ``action``,
``entity`` and ``entity_id`` (what changed), ``before`` and ``after`` (the state or the
values before and after) and ``data``; and two hashes::

    hash_n = SHA-256( hash_{n-1} || canonical_json(seq, ts_ms, actor, action, entity,
                                                    entity_id, before, after, data) )

with ``hash_0`` = 64 zeros. ``canonical_json`` sorts keys and uses no spaces, so the hash
depends on the content only. Editing a record changes its hash (the recomputed value no
longer matches the stored one, and the next record's ``prev_hash`` no longer matches);
deleting or reordering breaks the ``seq`` run and the links; deleting the newest records
is caught against the *head* (the last ``seq`` and ``hash``, kept apart from the log and
updated in the same transaction). Someone who can rewrite the log, its head and every
hash after the change is beyond what a chain alone can see: export the head regularly
(``rescity audit head``) to a place they cannot write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

GENESIS = "0" * 64


@dataclass(frozen=True, slots=True)
class AuditRecord:
    seq: int
    ts_ms: int
    actor: str
    action: str
    entity: str
    entity_id: str
    before: Any = None
    after: Any = None
    data: dict[str, Any] = field(default_factory=dict)
    prev_hash: str = GENESIS
    hash: str = ""

    def content(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts_ms": self.ts_ms, "actor": self.actor, "action": self.action,
                "entity": self.entity, "entity_id": self.entity_id, "before": self.before,
                "after": self.after, "data": self.data}


def canonical_json(obj: Any) -> str:
    """Sorted keys, no spaces, UTF-8 kept: the bytes that are hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=str)


def record_hash(prev_hash: str, content: dict[str, Any]) -> str:
    """``SHA-256(prev_hash || canonical_json(content))`` as 64 hex digits."""
    h = hashlib.sha256(prev_hash.encode("ascii"))
    h.update(canonical_json(content).encode("utf-8"))
    return h.hexdigest()


def seal(prev: AuditRecord | None, *, ts_ms: int, actor: str, action: str, entity: str,
         entity_id: str, before: Any = None, after: Any = None,
         data: dict[str, Any] | None = None) -> AuditRecord:
    """The next record after ``prev`` (None: the first), with its hashes."""
    seq = 1 if prev is None else prev.seq + 1
    prev_hash = GENESIS if prev is None else prev.hash
    # round-trip through JSON so the stored content and the hashed content are the same
    body = json.loads(canonical_json({"before": before, "after": after, "data": data or {}}))
    rec = AuditRecord(seq, int(ts_ms), actor, action, entity, str(entity_id), body["before"],
                      body["after"], body["data"], prev_hash)
    return AuditRecord(**{**rec.content(), "prev_hash": prev_hash,
                          "hash": record_hash(prev_hash, rec.content())})


@dataclass(frozen=True, slots=True)
class Verdict:
    """The result of :func:`verify`: ``ok``, how many records were checked, and for a
    broken chain the first bad record's ``seq`` (or the position) and why."""

    ok: bool
    records: int
    bad_seq: int | None = None
    reason: str = ""

    def describe(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.records} records"
        return f"audit chain BROKEN at record {self.bad_seq}: {self.reason}"


def verify(records: Iterable[AuditRecord], head: tuple[int, str] | None = None) -> Verdict:
    """Check the chain: ``seq`` runs 1, 2, 3, ...; each ``prev_hash`` is the previous
    record's ``hash``; each ``hash`` recomputes from the content; the last record is
    ``head`` = (seq, hash) when given. Records come in storage order (by ``seq``)."""
    prev_hash, n, last_seq = GENESIS, 0, 0
    for rec in records:
        n += 1
        if rec.seq != last_seq + 1:
            what = "missing" if rec.seq > last_seq + 1 else "out of order or duplicated"
            return Verdict(False, n, last_seq + 1 if rec.seq > last_seq + 1 else rec.seq,
                           f"record {last_seq + 1} is {what} (found seq {rec.seq} after {last_seq})")
        if rec.prev_hash != prev_hash:
            return Verdict(False, n, rec.seq, "its prev_hash does not match the previous "
                           "record's hash (a record before it was changed, removed or moved)")
        if record_hash(rec.prev_hash, rec.content()) != rec.hash:
            return Verdict(False, n, rec.seq, "its content does not match its hash "
                           "(the record was edited)")
        prev_hash, last_seq = rec.hash, rec.seq
    if head is not None:
        hseq, hhash = head
        if hseq != last_seq:
            return Verdict(False, n, last_seq + 1 if hseq > last_seq else hseq,
                           f"the head says {hseq} records, the log holds {last_seq} "
                           "(records at the end were removed, or the head was changed)")
        if hhash != prev_hash and last_seq > 0:
            return Verdict(False, n, last_seq, "the last record's hash does not match the head")
    return Verdict(True, n)
