"""Print every deck of the built book to a PDF handout with headless Chromium (offline).

    python -m book_tools.handouts [--html _build/html] [--out _build/handouts]

The built book is served on 127.0.0.1 and each deck is opened with `?print-pdf`, reveal.js's
print layout (one slide per page, 1280 x 720, fragments shown, no speaker notes). The script
waits until reveal.js has laid every slide out as a page and MathJax has typeset the formulas,
then prints through Chromium's DevTools (`Page.printToPDF`), and checks that the handout has at
least one page per slide. Any host other than 127.0.0.1 fails to resolve, so a handout can never
depend on the network (book_tools.chromium, shared with the book's PDF). `make handouts` runs
this after `make book`.
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

from book_tools import chromium
from book_tools.decks import deck_path
from book_tools.toc import ROOT, toc_chapters

# True once reveal.js is ready and has wrapped every slide in a print page.
_LAID_OUT = (
    "window.Reveal && Reveal.isReady() && document.querySelectorAll('.pdf-page').length > 0"
    " && document.querySelectorAll('.pdf-page').length >="
    " document.querySelectorAll('.reveal .slides section:not(.stack)').length"
)


def print_deck(driver, url: str) -> tuple[bytes, int]:
    """The deck at `url` printed in reveal.js's print layout, and its number of slides."""
    driver.get(url)
    chromium.wait_for(driver, _LAID_OUT, "reveal.js's print layout")
    chromium.settle(driver)
    slides = driver.execute_script(
        "return document.querySelectorAll('.reveal .slides section:not(.stack)').length;")
    # reveal.js gives a tall slide as many pages as its content needs (up to
    # pdfMaxPagesPerSlide) but forgets the offset it places the slide at, so a slide just taller
    # than a page loses its last line or two; give such a page room for all of its content.
    clipped = driver.execute_script(
        "const unit = Math.floor(Reveal.getConfig().height * (1 + Reveal.getConfig().margin));"
        "return Array.from(document.querySelectorAll('.pdf-page'))"
        "  .map((page, i) => [page, i])"
        "  .filter(([page, i]) => page.scrollHeight > page.clientHeight + 1)"
        "  .map(([page, i]) => {"
        "    page.style.height = Math.ceil(page.scrollHeight / unit) * unit - 1 + 'px';"
        "    const heading = page.querySelector('h1, h2, h3');"
        "    const title = heading ? heading.textContent.replace('¶', '').trim() : '';"
        "    return `slide ${i + 1}` + (title ? ` (${title})` : ''); });")
    if clipped:
        print(f"  {len(clipped)} slide(s) given another page: {clipped}")
    # The deck's own @page rule sets the paper size (the slide's size); no margins, no header.
    pdf = chromium.print_pdf(driver, preferCSSPageSize=True, marginTop=0, marginBottom=0,
                             marginLeft=0, marginRight=0)
    return pdf, slides


def main() -> None:
    from pypdf import PdfReader

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--html", type=Path, default=ROOT / "_build" / "html")
    parser.add_argument("--out", type=Path, default=ROOT / "_build" / "handouts")
    args = parser.parse_args()
    decks = [deck_path(chapter) for chapter in toc_chapters()]
    missing = [deck for deck in decks if not (args.html / deck).is_file()]
    if missing:
        sys.exit(f"decks not built: {missing}; run `make book` first")
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    with chromium.serve(args.html) as base, chromium.browser() as driver:
        for deck in decks:
            start = time.perf_counter()
            data, slides = print_deck(driver, f"{base}{deck}?print-pdf")
            pages = len(PdfReader(io.BytesIO(data)).pages)
            if pages < slides:
                sys.exit(f"{deck}: the handout has {pages} pages for {slides} slides")
            pdf = args.out / Path(deck).name.replace(".slides.html", ".pdf")
            pdf.write_bytes(data)
            shown = pdf.relative_to(ROOT) if pdf.is_relative_to(ROOT) else pdf
            print(f"handout {shown}: {slides} slides, {pages} pages, {len(data) // 1024} KiB,"
                  f" {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
