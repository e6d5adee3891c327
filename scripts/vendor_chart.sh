#!/usr/bin/env bash
# Vendor the chart page's browser files into graphql_api/static/chart/vendor/ so that /chart
# works with no internet access, like GraphiQL (scripts/vendor_graphiql.sh, docs/chart.md).
#
#   scripts/vendor_chart.sh                                   # the pinned versions below
#   LIGHTWEIGHT_CHARTS_VERSION=5.2.1 GRAPHQL_WS_VERSION=6.4.2 scripts/vendor_chart.sh
#
# Needs npm and network access to the npm registry; run by hand when upgrading, then commit the
# result. `npm pack` downloads each published tarball as-is (no dependency resolution, no
# install scripts). Both packages ship plain ES modules: lightweight-charts' "standalone" build
# bundles its one dependency (fancy-canvas); graphql-ws' browser client is `dist/client.js`,
# which imports one sibling chunk (`common-*.js`) by relative path, copied under its own name.
set -euo pipefail

LIGHTWEIGHT_CHARTS_VERSION="${LIGHTWEIGHT_CHARTS_VERSION:-5.2.1}"
GRAPHQL_WS_VERSION="${GRAPHQL_WS_VERSION:-6.4.2}"

root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/graphql_api/static/chart/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

command -v npm >/dev/null || { echo "vendor_chart.sh: npm is needed" >&2; exit 1; }

(cd "$work" && npm pack --silent "lightweight-charts@$LIGHTWEIGHT_CHARTS_VERSION" \
    "graphql-ws@$GRAPHQL_WS_VERSION" >/dev/null)
for tarball in "$work"/*.tgz; do
    name="$(basename "$tarball" .tgz)"
    mkdir -p "$work/$name"
    tar xzf "$tarball" -C "$work/$name"
done
lwc="$work/lightweight-charts-$LIGHTWEIGHT_CHARTS_VERSION/package"
gws="$work/graphql-ws-$GRAPHQL_WS_VERSION/package"
chunk="$(grep -o "from './common-[A-Za-z0-9_-]*\.js'" "$gws/dist/client.js" | head -1 | sed "s/from '.\///; s/'//")"

rm -rf "$dest"
mkdir -p "$dest"
cp "$lwc/dist/lightweight-charts.standalone.production.mjs" "$dest/lightweight-charts.mjs"
cp "$lwc/LICENSE" "$dest/LICENSE.lightweight-charts"
cp "$gws/dist/client.js" "$dest/graphql-ws.js"
cp "$gws/dist/$chunk" "$dest/$chunk"
cp "$gws/LICENSE.md" "$dest/LICENSE.graphql-ws"

{
    echo "# Vendored by scripts/vendor_chart.sh from the npm registry (npm pack)."
    echo "# package version"
    echo "lightweight-charts $LIGHTWEIGHT_CHARTS_VERSION"
    echo "graphql-ws $GRAPHQL_WS_VERSION"
    echo "# file bytes sha384 (base64, as in a Subresource Integrity attribute)"
    for path in "$dest"/*.mjs "$dest"/*.js; do
        name="$(basename "$path")"
        size="$(wc -c <"$path" | tr -d ' ')"
        sri="sha384-$(openssl dgst -sha384 -binary "$path" | openssl base64 -A)"
        echo "$name $size $sri"
    done
} >"$dest/VERSIONS"
cat "$dest/VERSIONS"
