"""Developer tools: CLI, local stack supervisor, fake Gemini."""
