"""The records store: every read, stay, decision, payment and audit event, as evidence."""
