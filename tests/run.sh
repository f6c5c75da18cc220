#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Runs the unit tests (cmocka, TAP output) and the integration tests (pytest), and ends
# with one line "N passed, N failed" that sums both. Usage: tests/run.sh [unit|integration]
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PYTHON=${PYTHON:-/usr/bin/python3}
what=${1:-all}
passed=0
failed=0
skipped=0
failures=()

run_unit() {
	local bin out rc ok notok
	while IFS= read -r bin; do
		out=$(CMOCKA_MESSAGE_OUTPUT=TAP "$bin" 2>&1)
		rc=$?
		ok=$(grep -c '^ok ' <<<"$out")
		notok=$(grep -c '^not ok ' <<<"$out")
		if [ "$rc" -ne 0 ] && [ "$notok" -eq 0 ]; then
			# The binary died before it could report (a crash or a sanitizer).
			notok=1
		fi
		passed=$((passed + ok))
		failed=$((failed + notok))
		if [ "$notok" -ne 0 ]; then
			failures+=("${bin#"$BUILD"/}")
			printf '%s\n' "$out" | sed "s|^|${bin##*/}: |"
		fi
		printf '  unit %-40s %3d passed, %d failed\n' "${bin#"$BUILD"/tests/unit/}" "$ok" "$notok"
	done < <(find "$BUILD/tests/unit" -type f -name 'test_*' ! -name '*.[od]' 2>/dev/null | sort)
}

run_integration() {
	local xml="$BUILD/pytest.xml" counts
	rm -f "$xml"
	MESHLET_BUILD="$BUILD" "$PYTHON" -m pytest -p no:cacheprovider -q -rfEs \
		--junitxml="$xml" tests/integration
	if [ ! -s "$xml" ]; then
		failed=$((failed + 1))
		failures+=("pytest did not run")
		return
	fi
	counts=$("$PYTHON" - "$xml" <<-'EOF'
		import sys, xml.etree.ElementTree as ET
		root = ET.parse(sys.argv[1]).getroot()
		suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
		t = sum(int(s.get("tests", 0)) for s in suites)
		f = sum(int(s.get("failures", 0)) + int(s.get("errors", 0)) for s in suites)
		s = sum(int(s.get("skipped", 0)) for s in suites)
		print(t - f - s, f, s)
	EOF
	)
	read -r p f s <<<"$counts"
	passed=$((passed + p))
	failed=$((failed + f))
	skipped=$((skipped + s))
	[ "$f" -eq 0 ] || failures+=("integration: $f failed")
}

case "$what" in
all) run_unit; run_integration ;;
unit) run_unit ;;
integration) run_integration ;;
*) echo "usage: $0 [unit|integration]" >&2; exit 2 ;;
esac

for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
if [ "$skipped" -ne 0 ]; then
	echo "$passed passed, $failed failed, $skipped skipped"
else
	echo "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
