"""Print the whole book as one PDF, offline: `_build/pdf/transformers-i.pdf`.

    python -m book_tools.pdf [--out _build/pdf]

The route, in three steps (`make pdf` runs it):

1. Sphinx's single-page builder (`jupyter-book build --builder singlehtml`) writes every page of
   `_toc.yml`, in order, into one HTML page, with the same numbered figures, resolved
   cross-references, citations and bibliography as the HTML book. Any warning fails the build.
2. Headless Chromium (book_tools.chromium) loads that page from 127.0.0.1 and the book's
   own MathJax typesets the formulas. The script then adds a title page and a table of contents
   (every chapter and its sections, linked), prints folded cells and solutions open, starts each
   chapter on a new page and wraps long code lines (book_print.css, next to this module).
3. Chromium prints it through DevTools (`Page.printToPDF`: A4, page numbers in the footer, the
   headings as PDF bookmarks, a tagged PDF for screen readers). The contents' page numbers come
   from that first print: Chromium writes a named destination for every linked heading, and
   pypdf reads on which page each one landed. The book is printed again with the numbers filled
   in, and the script checks that every number matches the second print.
"""

from __future__ import annotations

import argparse
import datetime
import io
import subprocess
import sys
import time
from pathlib import Path

import yaml

from book_tools import chromium
from book_tools.toc import ROOT

PDF_NAME = "transformers-i.pdf"
PRINT_CSS = Path(__file__).resolve().with_name("book_print.css")
SUBTITLE = "An executable course on the Transformer encoder"
A4 = {"paperWidth": 8.27, "paperHeight": 11.69}  # inches
MARGINS = {"marginTop": 0.7, "marginBottom": 0.8, "marginLeft": 0.75, "marginRight": 0.75}
FOOTER = (
    '<div style="font-size: 8px; width: 100%; margin: 0 0.75in; display: flex; color: #555;">'
    '<span class="title" style="flex: 1;"></span><span class="pageNumber"></span></div>'
)
MAX_PRINTS = 3  # the second print normally confirms the first one's page numbers


def build_single_page(out: Path) -> Path:
    """Runs the single-page HTML build into `out`/source; returns the folder to serve."""
    log = out / "singlehtml-build.log"
    command = ["jupyter-book", "build", str(ROOT), "--builder", "singlehtml", "-W", "-n",
               "--keep-going", "--path-output", str(out / "source")]
    print(" ".join(command[:6]), "...", flush=True)
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log.write_text(result.stdout, encoding="utf-8")
    if result.returncode != 0 or "WARNING" in result.stdout:
        sys.exit(f"the single-page build failed or warned; see {log}")
    html = out / "source" / "_build" / "singlehtml"
    if not (html / "intro.html").is_file():
        sys.exit(f"no {html / 'intro.html'} after the build; see {log}")
    return html


def book_metadata() -> dict[str, str]:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    printed = datetime.date.today().isoformat() + (f", from commit {commit}" if commit else "")
    return {"title": config["title"], "author": config["author"], "subtitle": SUBTITLE,
            "printed": printed}


# Turns the single page into the book to print. Returns the ids the contents link to.
_PREPARE = """
const meta = arguments[0];
const article = document.querySelector('article.bd-article');
const make = (tag, cls, text) => {
  const el = document.createElement(tag);
  if (cls) el.className = cls;
  if (text !== undefined) el.textContent = text;
  return el;
};
// A heading's content without its anchor link (formulas stay typeset).
const headingCopy = h => {
  const span = make('span', 'pdf-toc-title');
  h.childNodes.forEach(n => {
    if (!(n.classList && n.classList.contains('headerlink'))) span.append(n.cloneNode(true));
  });
  return span;
};
document.title = meta.title;

// Ids are unique within a page of the HTML book, not across pages: every chapter has a
// "summary". Later copies get a suffix (with their headings' anchor links), so that each
// contents entry and each PDF destination points to its own chapter.
const seen = {};
document.querySelectorAll('[id]').forEach(el => {
  const id = el.id;
  seen[id] = (seen[id] || 0) + 1;
  if (seen[id] === 1) return;
  el.id = id + '--' + seen[id];
  el.querySelectorAll(':scope > :is(h1, h2, h3, h4, h5, h6) > a.headerlink').forEach(a => {
    if (a.getAttribute('href') === '#' + id) a.setAttribute('href', '#' + el.id);
  });
});

// Everything folded on screen is printed open: code cells, solutions, dropdowns.
document.querySelectorAll('details').forEach(d => { d.open = true; });
document.querySelectorAll('.toggle-hidden').forEach(el => el.classList.remove('toggle-hidden'));

// The theme's printed header (a bare list of chapters) gives way to our title page and contents.
const printToc = document.querySelector('#jb-print-toc nav');
const parts = [];
let part = null;
for (const el of printToc ? printToc.children : []) {
  if (el.classList.contains('caption')) {
    part = {caption: el.textContent.trim(), docs: []};
    parts.push(part);
  } else if (el.tagName === 'UL' && part) {
    el.querySelectorAll('a[href^="#document-"]')
      .forEach(a => part.docs.push(a.getAttribute('href').slice(1)));
  }
}
document.querySelectorAll('#jb-print-docs-body').forEach(el => el.remove());

const title = make('section', 'pdf-title-page');
title.append(make('h1', null, meta.title), make('p', 'pdf-subtitle', meta.subtitle),
             make('p', null, meta.author), make('p', null, 'Printed ' + meta.printed));
const contents = make('nav', 'pdf-contents');
contents.setAttribute('aria-label', 'Table of contents');
contents.append(make('h2', null, 'Contents'));
const targets = [];
const entry = (list, section, level) => {
  const h = section.querySelector(':scope > h1, :scope > h2, :scope > h3, :scope > h4');
  if (!h || !section.id) return;
  const li = make('li', 'pdf-level-' + level);
  const a = make('a');
  a.href = '#' + section.id;
  a.append(headingCopy(h), make('span', 'pdf-leader'));
  const page = make('span', 'pdf-toc-page');
  page.dataset.target = section.id;
  a.append(page);
  li.append(a);
  list.append(li);
  targets.push(section.id);
};
const intro = article.querySelector(':scope > section');
if (intro) {
  const list = make('ol');
  entry(list, intro, 1);
  list.querySelector('.pdf-toc-title').textContent = 'Introduction';
  contents.append(list);
}
for (const p of parts) {
  contents.append(make('p', 'pdf-part', p.caption));
  const list = make('ol');
  for (const doc of p.docs) {
    const anchor = document.getElementById(doc);
    const chapter = anchor && anchor.nextElementSibling;
    if (!chapter || chapter.tagName !== 'SECTION') continue;
    chapter.classList.add('pdf-chapter');
    entry(list, chapter, 1);
    chapter.querySelectorAll(':scope > section').forEach(s => entry(list, s, 2));
  }
  contents.append(list);
}
article.prepend(title, contents);
return {
  targets: targets,
  chapters: parts.reduce((n, p) => n + p.docs.length, 0),
  untypeset: Array.from(document.querySelectorAll('.math'))
    .filter(el => !el.querySelector('mjx-container')).length,
  brokenImages: Array.from(document.images)
    .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.src),
};
"""

_FILL_PAGES = """
const pages = arguments[0];
document.querySelectorAll('.pdf-toc-page').forEach(el => {
  el.textContent = pages[el.dataset.target] || '?';
});
"""


def destination_pages(reader, targets: list[str]) -> dict[str, int]:
    """1-based page of each target id, read from the named destinations of a pypdf reader."""
    named = {name.lstrip("/"): dest for name, dest in reader.named_destinations.items()}
    missing = [t for t in targets if t not in named]
    if missing:
        sys.exit(f"the PDF has no destination for {len(missing)} contents entries: {missing[:5]}")
    return {t: reader.get_destination_page_number(named[t]) + 1 for t in targets}


def print_book(html: Path, css: str, meta: dict[str, str]) -> tuple[bytes, int]:
    """The book printed with its contents' page numbers; returns the PDF and its page count."""
    from pypdf import PdfReader

    options = {**A4, **MARGINS, "displayHeaderFooter": True, "headerTemplate": "<span></span>",
               "footerTemplate": FOOTER, "generateDocumentOutline": True,
               "generateTaggedPDF": True}
    with chromium.serve(html) as base, chromium.browser() as driver:
        driver.get(base + "intro.html")
        chromium.settle(driver)
        chromium.wait_for(
            driver, "!document.querySelector('.attention-explorer:not([data-ready=\"true\"])')",
            "the attention explorer")
        driver.execute_script(
            "const style = document.createElement('style'); style.textContent = arguments[0];"
            "document.head.append(style);", css)
        prepared = driver.execute_script(_PREPARE, meta)
        if prepared["chapters"] == 0 or not prepared["targets"]:
            sys.exit("found no chapters in the single page (the theme's print contents changed?)")
        if prepared["untypeset"] or prepared["brokenImages"]:
            sys.exit(f"{prepared['untypeset']} formulas not typeset, images not loaded:"
                     f" {prepared['brokenImages'][:5]}")
        chromium.settle(driver)
        pages: dict[str, int] = {}
        for attempt in range(1, MAX_PRINTS + 1):
            driver.execute_script(_FILL_PAGES, pages)
            start = time.perf_counter()
            pdf = chromium.print_pdf(driver, **options)
            reader = PdfReader(io.BytesIO(pdf))  # read once per print
            found = destination_pages(reader, prepared["targets"])
            print(f"print {attempt}: {len(reader.pages)} pages,"
                  f" {time.perf_counter() - start:.1f} s", flush=True)
            if found == pages:
                return pdf, len(reader.pages)
            pages = found
    sys.exit(f"the contents' page numbers did not settle in {MAX_PRINTS} prints")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "pdf")
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    html = build_single_page(args.out)
    css = PRINT_CSS.read_text(encoding="utf-8")
    pdf, pages = print_book(html, css, book_metadata())
    target = args.out / PDF_NAME
    target.write_bytes(pdf)
    shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
    print(f"book: {shown}, {pages} pages, {len(pdf) / 2**20:.1f} MiB,"
          f" {time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
