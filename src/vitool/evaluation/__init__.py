"""The literature's evaluation protocols and metrics.

The choice lists live here, free of numpy, so that the command line offers them without importing it.
"""

PROTOCOLS = ("sysu", "regdb", "llcm", "generic")
MODES = ("all", "indoor")  # SYSU-MM01's gallery cameras
SHOTS = ("single", "multi")  # one or ten gallery images per identity and camera
DIRECTIONS = ("v2i", "i2v")  # visible queries against an infrared gallery, or the reverse
