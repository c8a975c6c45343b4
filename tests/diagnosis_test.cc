// Start-up diagnosis (shardio/probe.h): the shardio.setup codes, the
// decision behind each message (diagnose_setup_failure with made-up facts,
// since io_uring_disabled cannot be changed on a shared machine), the
// Runtime's errors for options that cannot work, probe() on this machine,
// and a real seccomp filter that blocks io_uring_setup, installed in a
// child process (this test binary re-executed, so that no fork happens in a
// process with threads).
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <system_error>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "shardio/probe.h"
#include "shardio/runtime.h"

extern char** environ;

namespace shardio {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr SetupError kAllErrors[] = {
    SetupError::kIoUringDisabled, SetupError::kNotInIoUringGroup,
    SetupError::kSeccomp,         SetupError::kPermissionDenied,
    SetupError::kNoIoUring,       SetupError::kLockedMemory,
    SetupError::kKernelTooOld,    SetupError::kTooManyShards,
    SetupError::kInvalidOptions,  SetupError::kOther,
};

TEST(SetupErrorTest, CategoryNamesAndDistinctCodes) {
  EXPECT_STREQ(setup_category().name(), "shardio.setup");
  std::set<int> values;
  std::set<std::string> names, messages;
  for (SetupError e : kAllErrors) {
    const std::error_code ec = e;  // is_error_code_enum
    EXPECT_EQ(ec.category(), setup_category());
    EXPECT_EQ(ec, make_error_code(e));
    EXPECT_NE(ec.value(), 0) << setup_error_name(e);
    EXPECT_TRUE(static_cast<bool>(ec));
    values.insert(ec.value());
    names.insert(std::string(setup_error_name(e)));
    messages.insert(ec.message());
  }
  const std::size_t n = std::size(kAllErrors);
  EXPECT_EQ(values.size(), n);
  EXPECT_EQ(names.size(), n);
  EXPECT_EQ(messages.size(), n);
  EXPECT_EQ(setup_error_name(SetupError::kSeccomp), "seccomp");
  EXPECT_EQ(setup_error_name(SetupError{}), "ok");
}

TEST(SetupErrorTest, SystemErrorCodesCompareWithTheEnumAndWithErrc) {
  const std::system_error e(SetupError::kSeccomp, "context");
  EXPECT_EQ(e.code(), SetupError::kSeccomp);
  EXPECT_NE(e.code(), SetupError::kNoIoUring);
  EXPECT_THAT(e.what(), HasSubstr("context"));
  EXPECT_THAT(e.what(), HasSubstr("seccomp"));
  // The nearest std::errc, where one fits.
  EXPECT_EQ(make_error_code(SetupError::kTooManyShards),
            std::errc::invalid_argument);
  EXPECT_EQ(make_error_code(SetupError::kInvalidOptions),
            std::errc::invalid_argument);
  EXPECT_EQ(make_error_code(SetupError::kIoUringDisabled),
            std::errc::operation_not_permitted);
  EXPECT_EQ(make_error_code(SetupError::kNotInIoUringGroup),
            std::errc::operation_not_permitted);
  EXPECT_EQ(make_error_code(SetupError::kPermissionDenied),
            std::errc::operation_not_permitted);
  EXPECT_EQ(make_error_code(SetupError::kNoIoUring),
            std::errc::function_not_supported);
  EXPECT_EQ(make_error_code(SetupError::kLockedMemory),
            std::errc::not_enough_memory);
  EXPECT_EQ(make_error_code(SetupError::kKernelTooOld),
            std::errc::not_supported);
  // A seccomp filter may answer ENOSYS or EPERM: no single errc.
  EXPECT_NE(make_error_code(SetupError::kSeccomp),
            std::errc::function_not_supported);
  EXPECT_NE(make_error_code(SetupError::kSeccomp),
            std::errc::operation_not_permitted);
  // A system_category errno is not a SetupError.
  EXPECT_NE(std::error_code(ENOSYS, std::system_category()),
            SetupError::kNoIoUring);
}

// An ordinary system where io_uring is allowed.
detail::SystemFacts facts() {
  detail::SystemFacts f;
  f.io_uring_disabled = 0;
  f.io_uring_group = -1;
  f.seccomp_mode = 0;
  f.memlock_soft = 8u << 20;
  f.memlock_hard = 8u << 20;
  f.uid = 1000;
  f.gid = 1000;
  f.kernel_release = "6.1.0-test";
  f.ring_entries = 256;
  return f;
}

TEST(DiagnoseTest, IoUringDisabledForAll) {
  detail::SystemFacts f = facts();
  f.io_uring_disabled = 2;
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(EPERM, f);
  EXPECT_EQ(d.error, SetupError::kIoUringDisabled);
  EXPECT_THAT(d.message, HasSubstr("/proc/sys/kernel/io_uring_disabled is 2"));
  EXPECT_THAT(d.message, HasSubstr("sysctl -w kernel.io_uring_disabled=0"));
  // The sysctl is certain, a seccomp filter only a suspect.
  f.seccomp_mode = 2;
  EXPECT_EQ(detail::diagnose_setup_failure(EPERM, f).error,
            SetupError::kIoUringDisabled);
}

TEST(DiagnoseTest, IoUringDisabledForUsersOutsideTheGroup) {
  detail::SystemFacts f = facts();
  f.io_uring_disabled = 1;
  f.io_uring_group = 1234;
  f.io_uring_group_name = "iouring";
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(EPERM, f);
  EXPECT_EQ(d.error, SetupError::kNotInIoUringGroup);
  EXPECT_THAT(d.message, HasSubstr("io_uring_disabled is 1"));
  EXPECT_THAT(d.message, HasSubstr("group iouring (1234)"));
  EXPECT_THAT(d.message, HasSubstr("usermod -aG iouring"));
  EXPECT_THAT(d.message, HasSubstr("uid 1000"));

  // No group configured: only CAP_SYS_ADMIN may.
  f.io_uring_group = -1;
  f.io_uring_group_name.clear();
  d = detail::diagnose_setup_failure(EPERM, f);
  EXPECT_EQ(d.error, SetupError::kNotInIoUringGroup);
  EXPECT_THAT(d.message, HasSubstr("no group"));
  EXPECT_THAT(d.message, HasSubstr("CAP_SYS_ADMIN"));
  EXPECT_THAT(d.message, HasSubstr("kernel.io_uring_group"));

  // In the group, or privileged: the sysctl is not why.
  f.io_uring_group = 1234;
  f.in_io_uring_group = true;
  EXPECT_EQ(detail::diagnose_setup_failure(EPERM, f).error,
            SetupError::kPermissionDenied);
  f.in_io_uring_group = false;
  f.cap_sys_admin = true;
  EXPECT_EQ(detail::diagnose_setup_failure(EPERM, f).error,
            SetupError::kPermissionDenied);
  f.seccomp_mode = 2;
  EXPECT_EQ(detail::diagnose_setup_failure(EPERM, f).error,
            SetupError::kSeccomp);
}

TEST(DiagnoseTest, SeccompFilterWithEnosysOrEperm) {
  detail::SystemFacts f = facts();
  f.seccomp_mode = 2;
  for (int err : {ENOSYS, EPERM}) {
    detail::SetupDiagnosis d = detail::diagnose_setup_failure(err, f);
    EXPECT_EQ(d.error, SetupError::kSeccomp) << err;
    EXPECT_THAT(d.message, HasSubstr("a seccomp filter is installed"));
    EXPECT_THAT(d.message, HasSubstr(err == ENOSYS ? "ENOSYS" : "EPERM"));
    EXPECT_THAT(d.message, HasSubstr("io_uring_setup, io_uring_enter and "
                                     "io_uring_register"));
  }
}

TEST(DiagnoseTest, EnosysWithoutSeccompMeansNoIoUring) {
  detail::SystemFacts f = facts();
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(ENOSYS, f);
  EXPECT_EQ(d.error, SetupError::kNoIoUring);
  EXPECT_THAT(d.message, HasSubstr("CONFIG_IO_URING"));
  EXPECT_THAT(d.message, HasSubstr("kernel 6.1.0-test"));
  EXPECT_THAT(d.message, Not(HasSubstr("or a seccomp filter")));
  f.seccomp_mode = -1;  // could not tell
  d = detail::diagnose_setup_failure(ENOSYS, f);
  EXPECT_EQ(d.error, SetupError::kNoIoUring);
  EXPECT_THAT(d.message, HasSubstr("or a seccomp filter blocks it"));
}

TEST(DiagnoseTest, EpermThatNothingExplainsPointsAtSecurityModules) {
  detail::SystemFacts f = facts();
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(EPERM, f);
  EXPECT_EQ(d.error, SetupError::kPermissionDenied);
  EXPECT_THAT(d.message, HasSubstr("security module"));
  EXPECT_THAT(d.message, Not(HasSubstr("sqpoll")));
  f.sqpoll = true;
  d = detail::diagnose_setup_failure(EPERM, f);
  EXPECT_EQ(d.error, SetupError::kPermissionDenied);
  EXPECT_THAT(d.message, HasSubstr("without sqpoll"));
}

TEST(DiagnoseTest, EnomemNamesRlimitMemlock) {
  detail::SystemFacts f = facts();
  f.memlock_soft = 64 << 10;
  f.memlock_hard = 128 << 10;
  f.ring_entries = 4096;
  f.kernel_release = "5.10.0-old";
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(ENOMEM, f);
  EXPECT_EQ(d.error, SetupError::kLockedMemory);
  EXPECT_THAT(d.message,
              HasSubstr("RLIMIT_MEMLOCK is 64 KiB (hard limit 128 KiB)"));
  EXPECT_THAT(d.message, HasSubstr("ulimit -l"));
  EXPECT_THAT(d.message, HasSubstr("4096 entries"));
  EXPECT_THAT(d.message, HasSubstr("kernel 5.10.0-old"));
  f.memlock_soft = f.memlock_hard = ProbeReport::kUnlimited;
  EXPECT_THAT(detail::diagnose_setup_failure(ENOMEM, f).message,
              HasSubstr("RLIMIT_MEMLOCK is unlimited (hard limit unlimited)"));
}

TEST(DiagnoseTest, OldKernelListsTheMissingOpcodes) {
  detail::SystemFacts f = facts();
  f.kernel_release = "5.4.0-old";
  f.missing_opcodes = {"READ", "MSG_RING"};
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(0, f);
  EXPECT_EQ(d.error, SetupError::kKernelTooOld);
  EXPECT_THAT(d.message, HasSubstr("kernel 5.4.0-old lacks io_uring opcodes "
                                   "the shardio runtime submits: READ, "
                                   "MSG_RING"));
  EXPECT_THAT(d.message, HasSubstr("upgrade the kernel"));

  // A kernel that cannot list its opcodes (before 5.6).
  f.missing_opcodes = {"NOP", "READ", "ASYNC_CANCEL", "TIMEOUT"};
  f.opcode_probe_errno = EINVAL;
  d = detail::diagnose_setup_failure(0, f);
  EXPECT_EQ(d.error, SetupError::kKernelTooOld);
  EXPECT_THAT(d.message, HasSubstr("IORING_REGISTER_PROBE failed with EINVAL"));
  // ...unless a seccomp filter blocks io_uring_register.
  f.opcode_probe_errno = EPERM;
  f.seccomp_mode = 2;
  d = detail::diagnose_setup_failure(0, f);
  EXPECT_EQ(d.error, SetupError::kSeccomp);
  EXPECT_THAT(d.message, HasSubstr("io_uring_register failed with EPERM"));
}

TEST(DiagnoseTest, EinvalAndOtherErrnos) {
  detail::SystemFacts f = facts();
  f.ring_entries = 100000;
  detail::SetupDiagnosis d = detail::diagnose_setup_failure(EINVAL, f);
  EXPECT_EQ(d.error, SetupError::kInvalidOptions);
  EXPECT_THAT(d.message, HasSubstr("ring_entries must be between 1 and 32768"));
  EXPECT_THAT(d.message, HasSubstr("100000 entries"));
  d = detail::diagnose_setup_failure(EMFILE, f);
  EXPECT_EQ(d.error, SetupError::kOther);
  EXPECT_THAT(d.message, HasSubstr("EMFILE"));
  EXPECT_THAT(d.message, HasSubstr("ulimit -n"));
  d = detail::diagnose_setup_failure(EFAULT, f);
  EXPECT_EQ(d.error, SetupError::kOther);
  EXPECT_THAT(d.message, HasSubstr(std::strerror(EFAULT)));
}

TEST(DiagnoseTest, EachCaseHasItsOwnCode) {
  struct Case {
    int err;
    detail::SystemFacts f;
  };
  detail::SystemFacts disabled = facts(), group = facts(), seccomp = facts(),
                      old = facts();
  disabled.io_uring_disabled = 2;
  group.io_uring_disabled = 1;
  seccomp.seccomp_mode = 2;
  old.missing_opcodes = {"MSG_RING"};
  const std::vector<Case> cases = {
      {EPERM, disabled}, {EPERM, group},    {ENOSYS, seccomp},
      {EPERM, facts()},  {ENOSYS, facts()}, {ENOMEM, facts()},
      {0, old},          {EINVAL, facts()}, {EBADF, facts()},
  };
  std::set<SetupError> seen;
  for (const Case& c : cases) {
    seen.insert(detail::diagnose_setup_failure(c.err, c.f).error);
  }
  // Every code but kTooManyShards, which the Runtime decides by itself.
  EXPECT_EQ(seen.size(), cases.size());
  EXPECT_EQ(seen.count(SetupError::kTooManyShards), 0u);
}

std::string status_line(const char* key) {
  std::ifstream in("/proc/thread-self/status");
  std::string line;
  const std::string prefix = std::string(key) + ":";
  while (std::getline(in, line)) {
    if (line.rfind(prefix, 0) == 0) {
      const std::size_t i = line.find_first_not_of(" \t", prefix.size());
      return i == std::string::npos ? "" : line.substr(i);
    }
  }
  return "";
}

TEST(SystemFactsTest, GatheredFactsMatchTheSystem) {
  const detail::SystemFacts f = detail::gather_system_facts();
  EXPECT_EQ(std::to_string(f.seccomp_mode), status_line("Seccomp"));
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
  EXPECT_EQ(f.memlock_soft, rl.rlim_cur == RLIM_INFINITY
                                ? ProbeReport::kUnlimited
                                : uint64_t{rl.rlim_cur});
  EXPECT_EQ(f.memlock_hard, rl.rlim_max == RLIM_INFINITY
                                ? ProbeReport::kUnlimited
                                : uint64_t{rl.rlim_max});
  std::ifstream disabled("/proc/sys/kernel/io_uring_disabled");
  int v = -1;
  if (disabled) disabled >> v;
  EXPECT_EQ(f.io_uring_disabled, v);
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  EXPECT_EQ(f.kernel_release, u.release);
  EXPECT_EQ(f.uid, static_cast<unsigned>(geteuid()));
}

TEST(RuntimeSetupErrorTest, PinnedShardsBeyondTheAllowedCpus) {
  cpu_set_t set;
  CPU_ZERO(&set);
  ASSERT_EQ(sched_getaffinity(0, sizeof(set), &set), 0);
  const unsigned n = static_cast<unsigned>(CPU_COUNT(&set)) + 1;
  try {
    Runtime rt(RuntimeOptions{.shards = n, .pin_cpus = true});
    FAIL() << "a runtime with " << n << " pinned shards was created";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), SetupError::kTooManyShards);
    EXPECT_EQ(e.code(), std::errc::invalid_argument);
    EXPECT_THAT(e.what(), HasSubstr("pin_cpus"));
  }
}

TEST(RuntimeSetupErrorTest, RingEntriesOutOfRange) {
  for (unsigned entries : {0u, 32769u, 1u << 20}) {
    try {
      Runtime rt(RuntimeOptions{.shards = 1, .ring_entries = entries});
      ADD_FAILURE() << "a runtime with ring_entries = " << entries
                    << " was created";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), SetupError::kInvalidOptions) << entries;
      EXPECT_EQ(e.code(), std::errc::invalid_argument) << entries;
      EXPECT_THAT(e.what(),
                  HasSubstr("ring_entries is " + std::to_string(entries)));
      EXPECT_THAT(e.what(), HasSubstr("between 1 and 32768"));
    }
  }
}

TEST(ProbeTest, NamesAndRequiredOpcodes) {
  EXPECT_EQ(detail::opcode_name(IORING_OP_MSG_RING), "MSG_RING");
  EXPECT_EQ(detail::opcode_name(IORING_OP_NOP), "NOP");
  EXPECT_EQ(detail::opcode_name(IORING_OP_SEND_ZC), "SEND_ZC");
  EXPECT_EQ(detail::opcode_name(200), "OP_200");
  const std::vector<uint8_t> one = detail::required_opcodes(1);
  const std::vector<uint8_t> two = detail::required_opcodes(2);
  for (uint8_t op : {IORING_OP_NOP, IORING_OP_READ, IORING_OP_ASYNC_CANCEL,
                     IORING_OP_TIMEOUT}) {
    EXPECT_THAT(one, ::testing::Contains(op));
    EXPECT_THAT(two, ::testing::Contains(op));
  }
  EXPECT_THAT(one, Not(::testing::Contains(uint8_t{IORING_OP_MSG_RING})));
  EXPECT_THAT(two, ::testing::Contains(uint8_t{IORING_OP_MSG_RING}));
  EXPECT_EQ(detail::setup_flags_to_string(0), "none");
  EXPECT_EQ(detail::setup_flags_to_string(IORING_SETUP_SINGLE_ISSUER |
                                          IORING_SETUP_COOP_TASKRUN),
            "COOP_TASKRUN|SINGLE_ISSUER");
  EXPECT_EQ(detail::setup_flag_candidates(false).back(), 0u);
  for (unsigned f : detail::setup_flag_candidates(true)) {
    EXPECT_NE(f & IORING_SETUP_SQPOLL, 0u);
  }
}

TEST(ProbeTest, ReportsThisSystemAndAgreesWithTheRuntime) {
  const ProbeReport r = probe();
  utsname u{};
  ASSERT_EQ(uname(&u), 0);
  EXPECT_EQ(r.kernel_release, u.release);
  EXPECT_EQ(r.machine, u.machine);
  EXPECT_FALSE(r.liburing_version.empty());
  EXPECT_GE(r.cpus_allowed, 1u);
  EXPECT_EQ(std::to_string(r.seccomp_mode), status_line("Seccomp"));
  const std::string text = to_string(r);
  EXPECT_THAT(text, HasSubstr("\nkernel: " + std::string(u.release) + " "));
  EXPECT_THAT(text, HasSubstr("\nRLIMIT_MEMLOCK: "));
  EXPECT_EQ(r.setup_flags.size(), 5u);
  if (!r.usable) {
    // No io_uring here: the runtime fails the same way.
    EXPECT_NE(r.error, SetupError{});
    EXPECT_FALSE(r.message.empty());
    EXPECT_EQ(text.rfind("io_uring: NOT USABLE", 0), 0u) << text;
    try {
      Runtime rt(RuntimeOptions{.shards = 1});
      ADD_FAILURE() << "probe() says io_uring is not usable, but a runtime "
                       "was created";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), r.error) << e.what();
    }
    return;
  }
  EXPECT_EQ(r.error, SetupError{});
  EXPECT_EQ(r.setup_errno, 0);
  EXPECT_EQ(text.rfind("io_uring: usable\n", 0), 0u) << text;
  EXPECT_TRUE(r.missing_required_opcodes.empty());
  EXPECT_TRUE(r.supports(IORING_OP_NOP));
  EXPECT_TRUE(r.supports(IORING_OP_READ));
  EXPECT_GE(r.last_op, IORING_OP_READ);
  ASSERT_GE(r.opcodes.size(), static_cast<std::size_t>(r.last_op) + 1);
  EXPECT_EQ(r.opcodes[IORING_OP_MSG_RING].name, "MSG_RING");
  EXPECT_NE(r.features & IORING_FEAT_NODROP, 0u);
  EXPECT_THAT(r.feature_names, ::testing::Contains("NODROP"));
  EXPECT_FALSE(r.shardio_features.empty());
  // The runtime picks the same flags and agrees on every opcode.
  Runtime rt(RuntimeOptions{.shards = 1});
  EXPECT_EQ(rt.setup_flags(0), r.runtime_setup_flags);
  std::vector<uint8_t> supported =
      rt.submit(0, [] {
          std::vector<uint8_t> ops;
          for (int op = 0; op < 256; ++op) {
            if (this_shard::supports(static_cast<uint8_t>(op))) {
              ops.push_back(static_cast<uint8_t>(op));
            }
          }
          return ops;
        }).get();
  std::vector<uint8_t> probed;
  for (const auto& o : r.opcodes) {
    if (o.supported) probed.push_back(o.opcode);
  }
  EXPECT_EQ(supported, probed);
}

// --- A real seccomp filter, in a child process ----------------------------
//
// The test re-executes this binary (/proc/self/exe) with --gtest_filter
// naming itself and kChildEnv set; in the child, the same test installs a
// filter that makes io_uring_setup fail with ENOSYS or EPERM, tries a
// Runtime and probe(), and writes what happened as key=value lines to fd
// kChildFd. Exec rather than a bare fork: the child starts threads (the
// shards), which ThreadSanitizer forbids after a fork of a threaded process.

constexpr char kChildEnv[] = "SHARDIO_DIAGNOSIS_CHILD";
constexpr int kChildFd = 213;

#if defined(__x86_64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_X86_64;
#elif defined(__aarch64__)
constexpr uint32_t kAuditArch = AUDIT_ARCH_AARCH64;
#else
constexpr uint32_t kAuditArch = 0;  // the test skips
#endif

// Installs (for every thread, then for new ones) a classic BPF filter:
// io_uring_setup of this architecture returns `err`, everything else runs.
// Returns nullptr or what failed.
const char* install_io_uring_setup_filter(int err) {
  sock_filter prog[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, arch)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kAuditArch, 0, 3),
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
      BPF_STMT(BPF_RET | BPF_K,
               static_cast<uint32_t>(
                   SECCOMP_RET_ERRNO |
                   (static_cast<uint32_t>(err) & SECCOMP_RET_DATA))),
      BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
  };
  sock_fprog fprog{static_cast<unsigned short>(std::size(prog)), prog};
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return "prctl(PR_SET_NO_NEW_PRIVS)";
  }
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC,
              &fprog) != 0 &&
      prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0) {
    return "seccomp(SECCOMP_SET_MODE_FILTER)";
  }
  return nullptr;
}

std::string one_line(std::string s) {
  for (char& c : s) {
    if (c == '\n') c = ' ';
  }
  return s;
}

[[noreturn]] void seccomp_child(int err) {
  std::string out;
  auto put = [&out](const std::string& key, const std::string& value) {
    out += key + "=" + one_line(value) + "\n";
  };
  auto flush = [&out] {
    std::size_t off = 0;
    while (off < out.size()) {
      const ssize_t n = ::write(kChildFd, out.data() + off, out.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
  };
  if (const char* failed = install_io_uring_setup_filter(err)) {
    put("filter", std::string(failed) + ": " + std::strerror(errno));
    flush();
    ::_exit(0);
  }
  put("filter", "installed");
  io_uring_params params{};
  const long raw = syscall(__NR_io_uring_setup, 1, &params);
  put("raw_errno", std::to_string(raw < 0 ? errno : 0));
  if (raw >= 0) ::close(static_cast<int>(raw));

  try {
    Runtime rt(RuntimeOptions{.shards = 1});
    put("runtime", "created");
  } catch (const std::system_error& e) {
    put("runtime", "threw");
    put("runtime_category", e.code().category().name());
    put("runtime_is_seccomp", e.code() == SetupError::kSeccomp ? "1" : "0");
    put("runtime_what", e.what());
  } catch (const std::exception& e) {
    put("runtime", std::string("threw another exception: ") + e.what());
  }

  const ProbeReport r = probe();
  put("probe_usable", r.usable ? "1" : "0");
  put("probe_error", std::string(setup_error_name(r.error)));
  put("probe_setup_errno", std::to_string(r.setup_errno));
  put("probe_seccomp_mode", std::to_string(r.seccomp_mode));
  put("probe_message", r.message);
  put("probe_text", to_string(r));
  flush();
  ::_exit(0);
}

// Runs the current test in a child process with kChildEnv=`mode`; returns
// its key=value lines.
std::map<std::string, std::string> run_in_child(const std::string& mode) {
  const ::testing::TestInfo* info =
      ::testing::UnitTest::GetInstance()->current_test_info();
  const std::string filter = std::string("--gtest_filter=") +
                             info->test_suite_name() + "." + info->name();
  // The child must run this one test, unsharded, and leave the parent's
  // result files (Bazel's, gtest's XML) alone.
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    const std::string s = *e;
    if (s.rfind("GTEST_", 0) == 0 || s.rfind("XML_OUTPUT_FILE=", 0) == 0 ||
        s.rfind("TEST_PREMATURE_EXIT_FILE=", 0) == 0 ||
        s.rfind("TEST_SHARD_", 0) == 0 ||
        s.rfind("TEST_TOTAL_SHARDS=", 0) == 0 ||
        s.rfind(std::string(kChildEnv) + "=", 0) == 0) {
      continue;
    }
    env.push_back(s);
  }
  env.push_back(std::string(kChildEnv) + "=" + mode);
  std::vector<char*> envp;
  for (std::string& s : env) envp.push_back(s.data());
  envp.push_back(nullptr);
  std::string exe = "/proc/self/exe";
  char* argv[] = {exe.data(), const_cast<char*>(filter.c_str()), nullptr};

  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe2: " << std::strerror(errno);
    return {};
  }
  EXPECT_NE(fds[1], kChildFd);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, fds[1], kChildFd);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null",
                                   O_WRONLY, 0);
  pid_t pid = -1;
  const int rc =
      posix_spawn(&pid, exe.c_str(), &actions, nullptr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (rc != 0) {
    ::close(fds[0]);
    ADD_FAILURE() << "posix_spawn: " << std::strerror(rc);
    return {};
  }
  std::string text;
  char buf[4096];
  for (;;) {
    const ssize_t n = ::read(fds[0], buf, sizeof(buf));
    if (n > 0) {
      text.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0 || errno != EINTR) {
      break;
    }
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "child status " << status << "; it wrote:\n"
      << text;
  std::map<std::string, std::string> kv;
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    const std::size_t eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
    pos = end + 1;
  }
  return kv;
}

void check_seccomp_case(int err, const char* errname) {
  if (const char* mode = std::getenv(kChildEnv)) {
    seccomp_child(std::atoi(mode));
  }
  if (kAuditArch == 0) {
    GTEST_SKIP() << "no seccomp audit architecture known for this build";
  }
  std::map<std::string, std::string> kv = run_in_child(std::to_string(err));
  ASSERT_FALSE(kv.empty()) << "the child wrote nothing";
  if (kv["filter"] != "installed") {
    GTEST_SKIP() << "could not install a seccomp filter here: " << kv["filter"];
  }
  EXPECT_EQ(kv["raw_errno"], std::to_string(err))
      << "the filter did not make io_uring_setup fail with " << errname;
  EXPECT_EQ(kv["runtime"], "threw");
  EXPECT_EQ(kv["runtime_category"], "shardio.setup");
  EXPECT_EQ(kv["runtime_is_seccomp"], "1") << kv["runtime_what"];
  EXPECT_THAT(kv["runtime_what"], HasSubstr("seccomp filter is installed"));
  EXPECT_THAT(kv["runtime_what"], HasSubstr(errname));
  EXPECT_THAT(kv["runtime_what"], HasSubstr("shard 0 could not create its "
                                            "io_uring"));
  EXPECT_EQ(kv["probe_usable"], "0");
  EXPECT_EQ(kv["probe_error"], "seccomp");
  EXPECT_EQ(kv["probe_setup_errno"], std::to_string(err));
  EXPECT_EQ(kv["probe_seccomp_mode"], "2");
  EXPECT_THAT(kv["probe_message"], HasSubstr("seccomp filter is installed"));
  EXPECT_THAT(kv["probe_text"], HasSubstr("io_uring: NOT USABLE (seccomp, "
                                          "shardio.setup:3)"));
  std::cout << "child runtime error: " << kv["runtime_what"] << "\n";
}

TEST(SeccompChildTest, EnosysFromTheFilterIsReportedAsSeccomp) {
  check_seccomp_case(ENOSYS, "ENOSYS");
}

TEST(SeccompChildTest, EpermFromTheFilterIsReportedAsSeccomp) {
  check_seccomp_case(EPERM, "EPERM");
}

}  // namespace
}  // namespace shardio
