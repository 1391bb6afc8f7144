"""Console accounts: password policy, login outcomes (audit, lockout alerts) and session ends.

``records.users`` (creation, authentication, permissions) and ``records.user_admin`` predate
this package and are imported widely; new account rules live here.
"""
