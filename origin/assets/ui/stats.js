// Filled in by the stats page.
