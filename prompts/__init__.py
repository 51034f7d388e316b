"""babelcap: prompts package."""
