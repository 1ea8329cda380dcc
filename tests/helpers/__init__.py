"""What the test suites share; what they share with the benches lives in bench/kit (tenants, the
truth a tenant implies for J1, syncd as a child process, wait_for, churn, the crash loop).

- `harness`: the product harness (syncd.sim.harness) as a context manager, test configs, the
  simulators' fault switches.
- `inprocess`: the daemon and the runtime on the test's own event loop.
- `graph_sim`: the Graph simulator driven over raw HTTP (tests/sim).
- `j1`: the J1 simulator's readings of the J1 docs, J1 compared with the mirror, job keys.
- `j1_objects`: entities and relationships in the shape syncd uploads them.
- `intune`: the Intune origins, script bodies that must not leak.
- `service`: the daemon as a service: sd_notify, health listener, metrics.
- `notifications`: change notifications shaped like Graph's, and the webhook's TLS.
"""
