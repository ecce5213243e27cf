"""Top-floor orchestration: commands that combine export, the runtimes and verification (the
demo run and its report). Nothing below this package imports it."""
