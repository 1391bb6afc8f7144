"""parkinglot: parking lot and vehicle management.

Plate recognition drives the barrier; every entry and exit is stored as evidence,
exits are paired with entries (safe retrieval), and attendants and finance work in
a Flask console.
"""

__version__ = "0.1.0"
