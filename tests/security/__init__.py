"""Security, limits and robustness: API keys, cost, GraphQL over HTTP, fuzzing, faults."""
