"""Webhooks through a real sandbox (the pytest plugin's session server, or one of a test's own) and a
real receiver (sandbox/receiver.py): what a team's webhook handler will meet."""
