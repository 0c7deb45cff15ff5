"""The book's build tools, one module per job, each run as `python -m book_tools.<module>` (the
Makefile's targets do; code/book_tools/README.md says more):

- `toc`: the repository (`ROOT`) and the chapters of its _toc.yml (the Makefile's TOC_CHAPTERS);
- `myst`: MyST to plain Markdown, for the decks and the student notebooks;
- `decks`: one reveal.js deck per chapter, into the built book (`make book`, `make decks`);
- `student_notebooks`: the chapters without their exercise solutions (`make student`);
- `chromium`: a local server and headless Chromium, for the printers and the browser tests;
- `handouts`: every deck printed to PDF (`make handouts`);
- `pdf`: the whole book as one PDF (`make pdf`), with `book_print.css`;
- `gpu_check`: everything that needs CUDA, in one report (`make gpu-check`);
- `seq2seq_variants`: the sequence-to-sequence runs chapter 6 reports from its record;
- `recall_sweep`: the recall runs chapter 1 reports from its record;
- `recording`: where a recorded run ran (`machine()`), and writing the record;
- `sphinx`: the Sphinx extensions that _config.yml names.
"""
