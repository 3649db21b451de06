"""The documentation a fresh clone has stands alone: every link resolves inside the repository."""

import glob
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_LINK = re.compile(r"\]\(([^)\s]+)\)")


def _docs():
  return [os.path.join(ROOT, "README.md"), os.path.join(ROOT, "BUILD_NOTES.md"),
          *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]


def test_every_link_resolves_inside_the_repository():
  assert os.path.isfile(os.path.join(ROOT, "docs", "architecture.md"))
  for doc in _docs():
    text = open(doc, encoding="utf-8").read()
    for target in _LINK.findall(text):
      assert "://" not in target, f"{doc}: link leaves the repository: {target}"
      path = os.path.normpath(os.path.join(os.path.dirname(doc), target.split("#")[0]))
      assert path.startswith(ROOT + os.sep), f"{doc}: link leaves the repository: {target}"
      assert os.path.exists(path), f"{doc}: broken link {target}"


def test_no_internal_work_item_names_in_docs_or_code():
  # Readers see features, not the tracker's numbers.
  pattern = re.compile(r"\bissue \d+", re.IGNORECASE)
  files = _docs() + glob.glob(os.path.join(ROOT, "al_jax", "**", "*.py"), recursive=True) \
      + glob.glob(os.path.join(ROOT, "experiments", "**", "*.py"), recursive=True)
  hits = [f"{os.path.relpath(f, ROOT)}: {m.group(0)}" for f in files
          for m in pattern.finditer(open(f, encoding="utf-8").read())]
  assert not hits, hits
