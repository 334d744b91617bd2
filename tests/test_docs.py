"""README.md and the experiments' READMEs link only to files that exist (a moved grid or renamed
experiment folder once left a dead link)."""

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
LINK = re.compile(r"\]\(([^)\s]+)\)")


def dead_links(markdown: Path) -> list[str]:
    """Relative link targets (images included) of `markdown` that name no file or folder."""
    dead = []
    for target in LINK.findall(markdown.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a URL or an anchor in the same page
        if not (markdown.parent / target.split("#")[0]).exists():
            dead.append(target)
    return dead


def test_dead_links_are_found(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    page = tmp_path / "README.md"
    page.write_text("![x](a.png) [y](b.png) [z](https://e.org/c) [w](#top) [v](a.png#k)")
    assert dead_links(page) == ["b.png"]


def test_readmes_link_to_existing_files():
    pages = [ROOT / "README.md", *sorted((ROOT / "experiments").glob("**/*.md"))]
    dead = {str(p.relative_to(ROOT)): d for p in pages if (d := dead_links(p))}
    assert dead == {}
