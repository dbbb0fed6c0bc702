"""``SHA256SUMS``: one line per bundle file, in the format ``sha256sum -c`` verifies."""

from __future__ import annotations

import hashlib
from pathlib import Path

NAME = "SHA256SUMS"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_sha256sums(directory: Path) -> Path:
    """Hash every file under ``directory`` (sorted, relative POSIX paths) except the sums file itself."""
    lines = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != NAME):
        relative = path.relative_to(directory).as_posix()
        if "\n" in relative or "\\" in relative:
            raise ValueError(f"{relative!r}: a file name sha256sum would have to escape")
        lines.append(f"{file_sha256(path)}  {relative}\n")
    target = directory / NAME
    target.write_text("".join(lines), encoding="utf-8")
    return target


def verify_sha256sums(directory: Path) -> list[str]:
    """Files whose hash does not match (empty when the bundle is intact)."""
    bad = []
    for line in (directory / NAME).read_text("utf-8").splitlines():
        digest, relative = line.split("  ", 1)
        path = directory / relative
        if not path.is_file() or file_sha256(path) != digest:
            bad.append(relative)
    return bad
