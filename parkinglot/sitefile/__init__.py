"""Site files: a whole site (settings, zones, lanes, devices, tariff) as one YAML document.

``spec`` parses and checks a file with no database (every error names the file, line
and key); ``service`` applies a parsed file to a Session as a diff, and exports a
stored site back to the same format. The CLI (``parkinglot site apply|export``), the
admin console and the demo loader all go through here.
"""
