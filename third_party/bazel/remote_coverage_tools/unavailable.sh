#!/bin/sh
echo "bazel coverage is not available with the offline stand-in for" \
     "@remote_coverage_tools (third_party/bazel/README.md)" >&2
exit 1
