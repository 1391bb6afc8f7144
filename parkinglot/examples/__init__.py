"""Example files shipped with the package (the demo site file)."""
