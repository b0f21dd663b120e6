"""The lessons, one script per topic (run them with `tinylm lesson run NAME`)."""
