"""Web pages: fetched with the guarded client (``jobs.outbound``), main content extracted
(``extract``: the article's headings, paragraphs, lists, tables and code, without menus,
sidebars, comments and footers, plus what the page says about itself), chunked into
memories."""
