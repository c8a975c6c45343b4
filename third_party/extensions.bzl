"""Bzlmod module extension for MODULE.bazel: the system libraries that the
Bazel Central Registry does not provide (liburing).

Not run here: Debian 12 has no Bazel >= 6 and this machine is offline. The
repository rule it calls, system_library, was tried under Bazel 4.2.3."""

load(":repositories.bzl", "system_library")

def _shardio_system_libraries_impl(_mctx):
    system_library(
        name = "liburing",
        build_file = Label("//third_party:liburing.BUILD"),
        headers = ["liburing.h", "liburing"],
        missing_hint = "Debian/Ubuntu: apt-get install liburing-dev",
    )

shardio_system_libraries = module_extension(
    implementation = _shardio_system_libraries_impl,
)
