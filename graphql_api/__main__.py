"""`python -m graphql_api` runs the CLI."""

from graphql_api.cli import main

main()
