// A minimal typed request over fetch: the result and variable types come from the document.
import type { TypedDocumentNode } from "@graphql-typed-document-node/core";
import { print } from "graphql";

export class GraphQLRequestError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly errors: ReadonlyArray<{ message: string; extensions?: Record<string, unknown> }>,
  ) {
    super(message);
  }
}

export async function request<TResult, TVariables>(
  url: string,
  document: TypedDocumentNode<TResult, TVariables>,
  variables: TVariables,
  headers: Record<string, string> = {},
): Promise<TResult> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "application/json", ...headers },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await response.json()) as {
    data?: TResult | null;
    errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
  };
  if (!response.ok || body.errors?.length || body.data == null) {
    const errors = body.errors ?? [];
    throw new GraphQLRequestError(errors[0]?.message ?? `HTTP ${response.status}`, response.status, errors);
  }
  return body.data;
}
