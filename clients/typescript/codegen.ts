// graphql-codegen configuration: typed documents (TypedDocumentNode) for the operations in
// operations.graphql, checked against the service's schema. Run: npm ci && npx graphql-codegen
import type { CodegenConfig } from "@graphql-codegen/cli";

const config: CodegenConfig = {
  schema: "../../schema.graphql",
  documents: ["operations.graphql"],
  // A document that does not validate against the schema fails the run.
  generates: {
    "src/gql/graphql.ts": {
      // typescript-operations 6 emits the enums and input types itself (no "typescript" plugin).
      plugins: ["typescript-operations", "typed-document-node"],
      config: {
        // DateTime travels as an ISO 8601 string with a UTC offset.
        scalars: { DateTime: "string" },
        strictScalars: true,
        enumsAsTypes: true,
        useTypeImports: true,
        avoidOptionals: { field: true, inputValue: false, object: true, defaultValue: false },
      },
    },
  },
};

export default config;
