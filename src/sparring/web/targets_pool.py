"""Live targets per campaign, built once on first use and shared by every request."""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from sparring.conversation import Conversation
from sparring.store.campaign_schema import CampaignRow
from sparring.web.targets_config import CampaignComponents, build_targets, parse_targets

log = logging.getLogger(__name__)


class TargetsPool:
    def __init__(self) -> None:
        self._built: dict[str, CampaignComponents] = {}
        self._campaigns: dict[str, CampaignRow] = {}  # detached rows: sampling settings, fixed at creation
        self._lock = asyncio.Lock()
        self._warming: set[asyncio.Task[None]] = set()
        self._errors: dict[str, deque[str]] = {}

    def record_error(self, campaign_id: str, detail: str) -> None:
        """Keep the last model errors (already redacted) for the admin's campaign page; red teamers see a reference."""
        self._errors.setdefault(campaign_id, deque(maxlen=20)).append(detail)

    def recent_errors(self, campaign_id: str) -> list[str]:
        """Newest first; only this server process's errors (the log has them all)."""
        return list(reversed(self._errors.get(campaign_id, ())))

    async def get(self, campaign_id: str, targets_toml: str) -> CampaignComponents:
        """The campaign's components; the TOML was validated when the campaign was created."""
        built = self._built.get(campaign_id)
        if built is None:
            async with self._lock:
                built = self._built.get(campaign_id)
                if built is None:
                    built = build_targets(parse_targets(targets_toml, f"campaign {campaign_id} targets"))
                    self._built[campaign_id] = built
        return built

    def remember_campaign(self, campaign: CampaignRow) -> None:
        self._campaigns[campaign.id] = campaign

    def cached(self, campaign_id: str) -> tuple[CampaignRow, CampaignComponents] | None:
        """The campaign and its components when both were read before (no database round trip)."""
        campaign, built = self._campaigns.get(campaign_id), self._built.get(campaign_id)
        return (campaign, built) if campaign is not None and built is not None else None

    async def warm(self, campaign_id: str, targets_toml: str) -> None:
        """Load the scorer (the PM loads torch: seconds) before the first red teamer waits for it."""
        try:
            components = await self.get(campaign_id, targets_toml)
            await components.scorer.score_many(Conversation(), ["warm-up"])
        except Exception:  # best effort: the first real call reports any problem to the person
            log.warning("warming up campaign %s failed", campaign_id, exc_info=True)

    def warm_in_background(self, campaign_id: str, targets_toml: str) -> None:
        task = asyncio.get_running_loop().create_task(self.warm(campaign_id, targets_toml))
        self._warming.add(task)
        task.add_done_callback(self._warming.discard)

    async def aclose(self) -> None:
        for task in list(self._warming):
            task.cancel()
        built, self._built = self._built, {}
        self._campaigns.clear()
        for components in built.values():
            await components.aclose()
