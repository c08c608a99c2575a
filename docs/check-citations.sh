#!/usr/bin/env bash
# Checks the repository's citations of its own documentation:
#   * no file cites the spec files the project was built from (`spec/03`, `spec/04 §2`, ...): they
#     are not in this repository; cite docs/ instead;
#   * every `docs/<page>.md#<anchor>` (and every `<page>.md#<anchor>` inside docs/) names a heading
#     that exists, using GitHub's anchor rules (lowercase, punctuation dropped, spaces to hyphens).
# Exit 1 with one line per problem. Not wired into CI yet: run it by hand or from scripts/test-all.sh.
set -euo pipefail
cd "$(dirname "$0")/.."

status=0

# 1. Citations of the spec files.
if git grep -nE '(^|[^a-z/])spec/0[0-9]' -- ':!docs/check-citations.sh' ':!Cargo.lock' ':!deploy/local/go'; then
    echo "check-citations: the lines above cite spec files that are not in this repository; cite docs/ instead" >&2
    status=1
fi

# 2. Anchors.
anchors_of() { # page -> one anchor per line
    awk '
        /^```/ { code = !code; next }
        code { next }
        /^#+ / {
            t = $0; sub(/^#+ +/, "", t); t = tolower(t)
            gsub(/[^a-z0-9 _-]/, "", t); gsub(/ /, "-", t)
            n = seen[t]++; print (n ? t "-" n : t)
        }' "$1"
}
declare -A known
for page in docs/*.md; do
    while IFS= read -r a; do known["${page#docs/}#$a"]=1; done < <(anchors_of "$page")
done
while IFS= read -r hit; do
    file=${hit%%:*}
    rest=${hit#*:}
    line=${rest%%:*}
    cite=${rest#*:}
    page=${cite%%#*}
    page=${page##*/}
    [ -f "docs/$page" ] || continue
    if [ -z "${known["$page#${cite#*#}"]:-}" ]; then
        echo "$file:$line: $cite: no such section in docs/$page" >&2
        status=1
    fi
done < <(
    git grep -noE 'docs/[a-z-]+\.md#[a-z0-9_-]+' -- ':!Cargo.lock' ':!deploy/local/go' || true
    git grep -noE '(^|[(`/])[a-z-]+\.md#[a-z0-9_-]+' -- 'docs/*.md' | sed -E 's/:([(`/])/:/' || true
)
[ "$status" = 0 ] && echo "check-citations: ok"
exit "$status"
