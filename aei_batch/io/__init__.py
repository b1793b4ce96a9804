"""Storage, tables, sinks and queries: how bytes and rows reach object stores and catalogs."""
