#!/usr/bin/env bash
# Vendor the GraphiQL page's browser files into graphql_api/static/graphiql/ so that the service
# serves GraphiQL with no internet access (Strawberry's stock page loads them from unpkg.com).
#
#   scripts/vendor_graphiql.sh            # re-vendor the pinned versions below
#   GRAPHIQL_VERSION=3.8.3 scripts/vendor_graphiql.sh
#
# Needs npm (Node >= 18) and network access to the npm registry; run it by hand when upgrading,
# then commit the result. Installing the Python package never runs it: the files are committed.
# `npm pack` downloads each package's published tarball as-is (no dependency resolution, no
# install scripts run), so the copied files are byte-for-byte the ones unpkg.com serves.
# Keep the four versions compatible: graphiql 3.x's UMD bundle expects React 18 UMD globals and
# @graphiql/plugin-explorer 1.x reads window.GraphiQL.React. The pins default to the versions
# Strawberry's own template uses (strawberry/static/graphiql.html).
set -euo pipefail

REACT_VERSION="${REACT_VERSION:-18.2.0}"
GRAPHIQL_VERSION="${GRAPHIQL_VERSION:-3.8.3}"
EXPLORER_VERSION="${EXPLORER_VERSION:-1.0.2}"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/graphql_api/static/graphiql"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v npm >/dev/null || { echo "vendor_graphiql.sh: npm is needed" >&2; exit 1; }

packages=(
    "react@$REACT_VERSION"
    "react-dom@$REACT_VERSION"
    "graphiql@$GRAPHIQL_VERSION"
    "@graphiql/plugin-explorer@$EXPLORER_VERSION"
)
(cd "$work" && npm pack --silent "${packages[@]}" >/dev/null)
for tarball in "$work"/*.tgz; do
    name="$(basename "$tarball" .tgz)"
    mkdir -p "$work/$name"
    tar xzf "$tarball" -C "$work/$name"
done

react="$work/react-$REACT_VERSION/package"
react_dom="$work/react-dom-$REACT_VERSION/package"
graphiql="$work/graphiql-$GRAPHIQL_VERSION/package"
explorer="$work/graphiql-plugin-explorer-$EXPLORER_VERSION/package"

# destination name <- source file (minified production builds only; no source maps)
files=(
    "react.production.min.js=$react/umd/react.production.min.js"
    "react-dom.production.min.js=$react_dom/umd/react-dom.production.min.js"
    "graphiql.min.js=$graphiql/graphiql.min.js"
    "graphiql.min.css=$graphiql/graphiql.min.css"
    "plugin-explorer.umd.js=$explorer/dist/index.umd.js"
    "plugin-explorer.css=$explorer/dist/style.css"
    "LICENSE.react=$react/LICENSE"
    "LICENSE.react-dom=$react_dom/LICENSE"
    "LICENSE.graphiql=$graphiql/LICENSE"
)

rm -rf "$dest"
mkdir -p "$dest"
for entry in "${files[@]}"; do
    cp "${entry#*=}" "$dest/${entry%%=*}"
done
# @graphiql/plugin-explorer ships no LICENSE file; its package.json says MIT (same authors).
cp "$graphiql/LICENSE" "$dest/LICENSE.plugin-explorer"

{
    echo "# Vendored by scripts/vendor_graphiql.sh from the npm registry (npm pack)."
    echo "# package version"
    echo "react $REACT_VERSION"
    echo "react-dom $REACT_VERSION"
    echo "graphiql $GRAPHIQL_VERSION"
    echo "@graphiql/plugin-explorer $EXPLORER_VERSION"
    echo "# file bytes sha384 (base64, as in a Subresource Integrity attribute)"
    for entry in "${files[@]}"; do
        name="${entry%%=*}"
        case "$name" in LICENSE.*) continue ;; esac
        size="$(wc -c <"$dest/$name" | tr -d ' ')"
        sri="sha384-$(openssl dgst -sha384 -binary "$dest/$name" | openssl base64 -A)"
        echo "$name $size $sri"
    done
} >"$dest/VERSIONS"

cat "$dest/VERSIONS"
du -sh "$dest"
