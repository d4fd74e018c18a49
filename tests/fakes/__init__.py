"""Local stand-ins for the platforms' HTTP APIs, speaking their wire format."""
