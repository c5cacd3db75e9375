"""sample_server's own tests; they travel inside app.pyz and run from there too."""
