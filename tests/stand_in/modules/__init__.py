"""Stand-in of the WebUI's ``modules`` package (tests only; see ../README.md)."""
