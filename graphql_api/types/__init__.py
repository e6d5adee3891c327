"""Strawberry types of the GraphQL schema."""
