#!/usr/bin/env bash
# The test command: build (compiler, oclif manifest, man pages), then the whole vitest suite.
# Ends with one line "N passed, N failed" (vitest's own summary has another form) and vitest's exit code.
set -u
cd "$(dirname "$0")/.."
export NO_COLOR=1
export AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED=true
rm -f .vitest.json
if ! npm run --silent build; then
  echo "build failed"
  echo "0 passed, 1 failed"
  exit 1
fi
npx vitest run --reporter=default --reporter=json --outputFile.json=.vitest.json "$@"
rc=$?
VITEST_RC=$rc node -e '
const fs = require("fs")
let r = null
try { r = JSON.parse(fs.readFileSync(".vitest.json", "utf8")) } catch {}
if (!r) { console.log("0 passed, 1 failed"); process.exit(0) }
const skipped = r.numPendingTests + r.numTodoTests
const failedSuites = (r.testResults || []).filter((t) => t.status === "failed" && (!t.assertionResults || t.assertionResults.length === 0)).length
// Vitest also fails a run for errors outside any test (an unhandled rejection or EPIPE): count that as one.
const outside = process.env.VITEST_RC !== "0" && r.numFailedTests + failedSuites === 0 ? 1 : 0
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + failedSuites + outside} failed` + (skipped ? ` (${skipped} skipped)` : "") + (outside ? " (errors outside tests: see above)" : ""))
'
exit $rc
