"""The human red-team web app: accounts, campaigns, the red-team flow, reviews, well-being, admin."""

from sparring.web.settings import WebSettings

__all__ = ["WebSettings", "create_app"]


def create_app(settings: WebSettings):  # type: ignore[no-untyped-def]
    """Imported lazily so ``import sparring.web`` stays cheap for the CLI."""
    from sparring.web.app import create_app as build

    return build(settings)
