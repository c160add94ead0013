"""Local fakes of remote services, for tests that drive the real client libraries over HTTP."""
