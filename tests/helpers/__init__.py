"""What the test suites share (what they share with the benches lives in bench/kit):

- `harness`: the product harness (syncd.sim.harness) as a context manager, and test configs.
- `inprocess`: the daemon and the runtime on the test's own event loop.
- `graph_sim`: the Graph simulator driven over raw HTTP (tests/sim).
- `j1`: the J1 simulator's readings of the J1 docs, J1 compared with the mirror, job keys.
- `notifications`: change notifications shaped like Graph's, and the webhook's TLS.
"""
