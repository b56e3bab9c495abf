"""Closed-loop response (闭环处置): incidents and their state machine, routing to the
responsible units, deadlines and tiered escalation, the hash-chained audit trail,
citizen reports (12345), public warnings (CAP 1.2 and GB/T 35965.1) and access control."""
