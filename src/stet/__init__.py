"""stet: make long parameter sweeps resumable."""
