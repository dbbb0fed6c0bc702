"""Who speaks the human side: dataset replay now; attacker models and people plug in the same way."""

from sparring.attacks.base import Attack, AttackItem, attacks
from sparring.attacks import replay  # noqa: E402,F401  (register)

__all__ = ["Attack", "AttackItem", "attacks"]
