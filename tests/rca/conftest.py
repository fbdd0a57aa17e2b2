from tests.fakes.k8s import fake_k8s  # noqa: F401  (re-exported pytest fixture)
