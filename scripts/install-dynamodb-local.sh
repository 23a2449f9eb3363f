#!/usr/bin/env bash
# Installs DynamoDB Local (the official AWS engine, Java) into .local/dynamodb without Docker:
# the npm package amplify-dynamodb-simulator ships it in its emulator/ folder.
set -euo pipefail

VERSION="2.9.30"
# emulator/sha256 in that package is the checksum of the upstream dynamodb_local tarball it came from;
# we pin it, and the jar's own checksum, so a changed package cannot slip in unnoticed.
EXPECTED_UPSTREAM_SHA256="55b425a9a42cfc728436eaf0e4ae64d688b64d177c99c4f4c4d7e3dbb3ac6c09"
EXPECTED_JAR_SHA256="454305e9bc3e6ebcca5b62569869e31563b8d7e346474e94557b2600702146c7"

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TARGET="${DYNAMODB_LOCAL_DIR:-$ROOT/.local/dynamodb}"

if [ -f "$TARGET/DynamoDBLocal.jar" ] && [ -f "$TARGET/.installed-$VERSION" ]; then
  exit 0
fi
command -v java >/dev/null || { echo "DynamoDB Local needs Java 17+ (java not found on PATH)" >&2; exit 1; }
command -v npm >/dev/null || { echo "npm is needed to fetch DynamoDB Local (install Node 20+)" >&2; exit 1; }

WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
echo "Fetching DynamoDB Local from amplify-dynamodb-simulator@$VERSION (npm verifies the package integrity)..."
(cd "$WORK" && npm pack --silent "amplify-dynamodb-simulator@$VERSION" >/dev/null)
tar -xzf "$WORK/amplify-dynamodb-simulator-$VERSION.tgz" -C "$WORK"
EMULATOR="$WORK/package/emulator"

actual_upstream="$(tr -d '[:space:]' < "$EMULATOR/sha256")"
if [ "$actual_upstream" != "$EXPECTED_UPSTREAM_SHA256" ]; then
  echo "emulator/sha256 is $actual_upstream, expected $EXPECTED_UPSTREAM_SHA256: refusing to install" >&2
  exit 1
fi
echo "$EXPECTED_JAR_SHA256  $EMULATOR/DynamoDBLocal.jar" | sha256sum --check --quiet - || {
  echo "DynamoDBLocal.jar checksum mismatch: refusing to install" >&2; exit 1; }

rm -rf "$TARGET"
mkdir -p "$TARGET"
cp -R "$EMULATOR/DynamoDBLocal.jar" "$EMULATOR/DynamoDBLocal_lib" "$EMULATOR/LICENSE.txt" "$EMULATOR/sha256" "$TARGET/"
touch "$TARGET/.installed-$VERSION"
echo "DynamoDB Local installed in $TARGET"
