"""Pure policy: decisions with no threads, clocks, or I/O, tested on their own."""
