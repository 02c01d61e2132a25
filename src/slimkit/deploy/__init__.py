"""Step 5, deploy: the user-facing export command and the HTTP server."""
