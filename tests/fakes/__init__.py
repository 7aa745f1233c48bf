"""Local fakes of third-party APIs, served on loopback ports for the tests."""
