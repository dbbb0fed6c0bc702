"""The report opened in headless Chromium: it renders, with no console errors; a full-page screenshot is kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from planted import read_planted
from report_support import write_small_planted

from sparring.analysis.report import build_report


@pytest.mark.browser
def test_report_renders_in_headless_chromium(tmp_path: Path, chromium_executable: Path, artifacts_dir: Path):
    from playwright import sync_api

    path = tmp_path / "red_team_attempts.jsonl.gz"
    write_small_planted(path)
    result = build_report(read_planted(path), tmp_path / "report.html", map_sample=400)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium_executable),
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type in ("error", "warning") else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None)
            page.goto(result.html.as_uri())
            page.wait_for_load_state("load")
            page.screenshot(path=str(artifacts_dir / "report_full_page.png"), full_page=True)

            assert page.locator("#content-warning").is_visible()
            assert page.get_by_role("heading", level=1).is_visible()
            headings = page.get_by_role("heading", level=2)
            assert headings.count() == len(result.sections) + 1
            for index in range(headings.count()):
                assert headings.nth(index).is_visible()
            images = page.locator("img")
            assert images.count() >= 6
            widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
            assert all(width > 100 for width in widths)  # every inline figure decoded
            transcript = page.locator("pre.transcript").first
            assert not transcript.is_visible()  # attack text is hidden until asked for
            assert problems == [] and requests == []
        finally:
            browser.close()
