// Minimal, optional behaviour: every page works without it.
"use strict";

// A form submits once: its buttons are disabled right after the browser sends it.
document.addEventListener("submit", (event) => {
  const form = event.target;
  const buttons = form.querySelectorAll("button[type=submit]");
  setTimeout(() => buttons.forEach((b) => { b.disabled = true; }), 0);
  const waiting = form.querySelector(".waiting");
  if (waiting && form.dataset.waiting) { waiting.textContent = form.dataset.waiting; waiting.hidden = false; }
});

// At most two harm tags: further boxes are disabled once two are ticked.
function limitTags(fieldset) {
  const max = Number(fieldset.dataset.max || 2);
  const boxes = Array.from(fieldset.querySelectorAll("input[type=checkbox]"));
  const update = () => {
    const ticked = boxes.filter((b) => b.checked).length;
    boxes.forEach((b) => { b.disabled = !b.checked && ticked >= max; });
  };
  boxes.forEach((b) => b.addEventListener("change", update));
  update();
}

// Live progress on the admin campaign page, refreshed every 5 seconds (text only, never HTML).
function pollProgress(table) {
  const refresh = async () => {
    try {
      const response = await fetch(table.dataset.url, { credentials: "same-origin" });
      if (!response.ok) return;
      const data = await response.json();
      for (const row of data.targets) {
        const tr = Array.from(table.querySelectorAll("tr[data-target]")).find((r) => r.dataset.target === row.target);
        if (!tr) continue;
        tr.querySelectorAll("td[data-field]").forEach((td) => {
          const value = row[td.dataset.field];
          td.textContent = value === null ? "-" : String(value);
        });
      }
    } catch (_) { /* the next tick tries again */ }
  };
  setInterval(refresh, 5000);
}

document.addEventListener("DOMContentLoaded", () => {
  const tags = document.getElementById("tags");
  if (tags) limitTags(tags);
  const progress = document.getElementById("progress");
  if (progress && progress.dataset.url) pollProgress(progress);
});

// Coming back with the browser's Back button shows a live page again, not one with disabled buttons.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) document.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = false; });
});
