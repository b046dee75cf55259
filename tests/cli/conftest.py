from tests.attacks.conftest import edited  # noqa: F401  (the attack command is tested on the same edited pipeline)
