"""CLI commands whose implementation lives outside ``cli.py`` (one module per area); ``cli.py``
registers them."""

# torch.set_num_threads with a huge count crashes the process (a segfault, or an overflow error),
# so every --threads option stops well above any real machine's core count.
MAX_THREADS = 1024
