// shardio_doctor: can shardio run here, and what does the kernel offer?
//
// Prints shardio::probe()'s report: whether io_uring can be set up (and if
// not, why and what to do), the kernel, liburing, io_uring_disabled,
// seccomp, RLIMIT_MEMLOCK, the CPUs allowed, the setup flags, features and
// opcodes the kernel supports, and the shardio features they enable.
// Needs no Runtime, and works where io_uring does not.
//
// Usage: shardio_doctor
// Exit status: 0 when io_uring is usable, 1 when not (the message says
// what to do), 2 for bad arguments.
#include <cstdio>
#include <cstring>
#include <string>

#include "shardio/probe.h"

int main(int argc, char** argv) {
  if (argc > 1) {
    const bool help =
        std::strcmp(argv[1], "--help") == 0 || std::strcmp(argv[1], "-h") == 0;
    std::fputs(
        "usage: shardio_doctor\n"
        "Reports whether shardio can use io_uring here and what the "
        "kernel supports.\nExit status 0: usable; 1: not usable.\n",
        help ? stdout : stderr);
    return help ? 0 : 2;
  }
  const shardio::ProbeReport report = shardio::probe();
  std::fputs(shardio::to_string(report).c_str(), stdout);
  if (!report.usable) {
    std::fprintf(stderr, "shardio_doctor: io_uring is not usable here: %s\n",
                 report.message.c_str());
    return 1;
  }
  return 0;
}
