"""Local fakes of remote services, for tests that run with no internet."""
