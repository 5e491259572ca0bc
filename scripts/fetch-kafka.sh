#!/usr/bin/env bash
# Puts the Kafka broker the tests start (KRaft mode) into a cache outside the repository: the Maven Central jars
# of org.apache.kafka:kafka_2.13 and its runtime dependencies, as listed in test/servers/kafka/pom.xml, in
#   ${STOWAGE_SERVER_CACHE:-$HOME/.cache/stowage-servers}/kafka-<version>/libs
# The test harness (test/support/servers.ts, kind `kafka`) reads the same version from the pom and runs
# `java -cp 'libs/*'`. Nothing is built: ~0.1 s when cached, ~10 s and ~75 MB on a fresh machine.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${STOWAGE_SERVER_CACHE:-$HOME/.cache/stowage-servers}"
pom="$root/test/servers/kafka/pom.xml"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom")"
out="$cache/kafka-$version"
if [ -f "$out/libs/kafka_2.13-$version.jar" ]; then
  echo "fetch-kafka: kafka $version is cached ($out)"
  exit 0
fi
command -v mvn >/dev/null || { echo "fetch-kafka: no mvn on PATH (apt-get install maven)" >&2; exit 1; }
command -v java >/dev/null || { echo "fetch-kafka: no java on PATH (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
mkdir -p "$cache"
# A staging folder renamed at the end: a half-copied set of jars is never taken for a cached one.
staging="$(mktemp -d "$cache/.kafka-XXXXXX")"
trap 'rm -rf "$staging"' EXIT
echo "fetch-kafka: fetching kafka $version from Maven Central…"
(cd "$(dirname "$pom")" && nice -n 10 mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$staging/libs")
rm -rf "$out"
mv "$staging" "$out"
trap - EXIT
echo "fetch-kafka: kafka $version in $out"
