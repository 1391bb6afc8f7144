"""Evidence that holds up without the database: the audit chain's hashing, checkpoint
signatures, and bundles of a stay's records that a court or an insurer can verify.

``chain``, ``signing`` and ``verify`` import nothing from ``parkinglot.records`` (the
verifier must run on a machine with no database); ``export`` is the service that
gathers a bundle from the database.
"""
