"""Who speaks the human side of an automated run: replay of red-team datasets and goal lists."""

from sparring.attacks import replay  # noqa: F401  (register)
from sparring.attacks.base import Attack, AttackItem, attacks

__all__ = ["Attack", "AttackItem", "attacks"]
