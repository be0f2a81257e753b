"""Mermaid's own parser, from the npm registry, run headless under node with jsdom.

``parse(text)`` returns None when mermaid accepts the diagram, else its error.
The packages are installed once per machine into a cache folder (versions
pinned); when node or npm is missing or the install fails, ``parser()``
returns None and the caller skips, unless TICKRAIL_REQUIRE_SERVICES=1.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

MERMAID, JSDOM = "11.17.2", "29.1.1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / (
    f"tickrail-tests/mermaid-{MERMAID}"
)

CHECK = """
import { JSDOM } from "jsdom";
const dom = new JSDOM("<!doctype html><html><body></body></html>");
globalThis.window = dom.window;
globalThis.document = dom.window.document;
const { default: mermaid } = await import("mermaid");
mermaid.initialize({ startOnLoad: false });
let text = "";
for await (const chunk of process.stdin) text += chunk;
try {
  const result = await mermaid.parse(text);
  console.log("OK " + result.diagramType);
} catch (e) {
  console.log("ERROR " + e.message);
  process.exit(1);
}
"""


class Mermaid:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def parse(self, text: str) -> str | None:
        done = subprocess.run(
            ["node", "check.mjs"],
            cwd=self.folder,
            input=text,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode == 0 and done.stdout.startswith("OK flowchart"):
            return None
        return (done.stdout + done.stderr).strip() or f"exit {done.returncode}"


def parser() -> Mermaid | str:
    """The parser, or why it is not available."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    (CACHE / "check.mjs").parent.mkdir(parents=True, exist_ok=True)
    if not (CACHE / "node_modules" / "mermaid" / "package.json").is_file():
        (CACHE / "package.json").write_text('{"name": "mermaid-check", "private": true}\n')
        done = subprocess.run(
            [
                "npm",
                "install",
                "--no-audit",
                "--no-fund",
                "--loglevel=error",
                f"mermaid@{MERMAID}",
                f"jsdom@{JSDOM}",
            ],
            cwd=CACHE,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            return f"npm install mermaid failed: {done.stderr[-500:]}"
    (CACHE / "check.mjs").write_text(CHECK)
    return Mermaid(CACHE)
