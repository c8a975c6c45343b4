"""Stand-in for @rules_cc//cc:defs.bzl: Bazel 4's native C++ rules.

@bazel_tools (tools/cpp/BUILD, the generated @local_config_cc and others)
loads these names from @rules_cc, which Bazel 4.2.3 would otherwise download.
In Bazel 4 the real rules_cc re-exports the same native rules.
"""

cc_binary = native.cc_binary
cc_import = native.cc_import
cc_library = native.cc_library
cc_proto_library = native.cc_proto_library
cc_test = native.cc_test
cc_toolchain = native.cc_toolchain
cc_toolchain_suite = native.cc_toolchain_suite
objc_library = native.objc_library
