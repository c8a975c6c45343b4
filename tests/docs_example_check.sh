#!/usr/bin/env bash
# Fails when docs/writing-an-operation.md and examples/custom_op.cc differ.
set -euo pipefail
root=$1
diff <(sed -n '/<!-- example:begin -->/,/<!-- example:end -->/p' \
         "$root/docs/writing-an-operation.md" | sed '1,2d;$d' | sed '$d') \
     "$root/examples/custom_op.cc"
