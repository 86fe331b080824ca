#!/usr/bin/env bash
# Runs a `go test -v` command line, showing its output as it comes, and
# when it fails repeats at the end what failed: the failed tests with their
# messages and, for a timeout, the tests that were running. A CI log shows
# its last lines, and a timeout's goroutine dump would push the cause out
# of them.
#
#   usage: gotest.sh GO test -v ARG...
set -uo pipefail
log=$(mktemp)
trap 'rm -f "$log"' EXIT
"$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
if [ "$status" -ne 0 ]; then
  echo
  echo "=== what failed (go test exited $status) ==="
  # A timeout names the tests still running right after its panic line.
  sed -n '/^panic: test timed out/,/^$/p' "$log"
  # testify's messages (Error Trace, Error, Messages) and t.Fatal's lines
  # come before the --- FAIL line of their test.
  grep -E '^\s*(--- FAIL|Error Trace:|Error:|Test:|Messages:)|^\s+[A-Za-z0-9_]+_test\.go:[0-9]+:|^(FAIL|ok)\s' "$log" | cut -c1-400 | tail -n 150
fi
exit "$status"
