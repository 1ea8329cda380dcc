"""What the benches and the tests share to drive syncd against its simulators (`syncd.sim`).

Tenants of known shapes, the truth a tenant implies for J1 (computed without syncd's converters),
syncd as a child process, polling, tenant churn, the crash loop and the webhook flood. The benches
import only this package and `syncd`; the tests import it too. Nothing here imports `tests`.
"""
