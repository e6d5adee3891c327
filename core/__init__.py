"""The ground floor: settings, errors, database, tables, intervals, events, cache, metrics,
tracing and logging. Imports nothing of graphql_api, loaders or workers."""
