"""What the tests share that is not a fixture: the checkout's paths, real servers, the fake OpenAI server and
small data. Imported as `tests.support.<module>` (setup.cfg puts the repository root on the path)."""
