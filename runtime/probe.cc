// Start-up diagnosis: the shardio.setup error category, the facts and the
// decision behind a failed ring setup, and probe() / to_string() for
// shardio_doctor.
#include "shardio/probe.h"

#include <grp.h>
#include <liburing.h>
#include <sched.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/strings/str_format.h"
#include "shardio/stats.h"

#if __has_include(<liburing/io_uring_version.h>)
#include <liburing/io_uring_version.h>
#define SHARDIO_HAVE_LIBURING_VERSION 1
#endif

namespace shardio {
namespace {

class SetupCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "shardio.setup"; }

  std::string message(int code) const override {
    switch (static_cast<SetupError>(code)) {
      case SetupError::kIoUringDisabled:
        return "io_uring is disabled by kernel.io_uring_disabled";
      case SetupError::kNotInIoUringGroup:
        return "io_uring is restricted to kernel.io_uring_group";
      case SetupError::kSeccomp:
        return "io_uring is blocked by a seccomp filter";
      case SetupError::kPermissionDenied:
        return "io_uring_setup was refused";
      case SetupError::kNoIoUring:
        return "the kernel has no io_uring";
      case SetupError::kLockedMemory:
        return "not enough locked memory for the ring";
      case SetupError::kKernelTooOld:
        return "the kernel lacks io_uring opcodes shardio needs";
      case SetupError::kTooManyShards:
        return "more pinned shards than allowed CPUs";
      case SetupError::kInvalidOptions:
        return "invalid runtime options";
      case SetupError::kOther:
        return "io_uring could not be set up";
    }
    return code == 0 ? "no error" : "unknown shardio.setup error";
  }

  std::error_condition default_error_condition(
      int code) const noexcept override {
    switch (static_cast<SetupError>(code)) {
      case SetupError::kIoUringDisabled:
      case SetupError::kNotInIoUringGroup:
      case SetupError::kPermissionDenied:
        return std::errc::operation_not_permitted;
      case SetupError::kNoIoUring:
        return std::errc::function_not_supported;
      case SetupError::kLockedMemory:
        return std::errc::not_enough_memory;
      case SetupError::kKernelTooOld:
        return std::errc::not_supported;
      case SetupError::kTooManyShards:
      case SetupError::kInvalidOptions:
        return std::errc::invalid_argument;
      case SetupError::kSeccomp:  // ENOSYS or EPERM, whichever the filter says
      case SetupError::kOther:
        break;
    }
    return std::error_condition(code, *this);
  }
};

// Opcode names by number (the kernel's enum io_uring_op). The numbers are
// kernel ABI; names past the liburing headers in use are listed too.
constexpr const char* kOpcodeNames[] = {
    "NOP",
    "READV",
    "WRITEV",
    "FSYNC",
    "READ_FIXED",
    "WRITE_FIXED",
    "POLL_ADD",
    "POLL_REMOVE",
    "SYNC_FILE_RANGE",
    "SENDMSG",
    "RECVMSG",
    "TIMEOUT",
    "TIMEOUT_REMOVE",
    "ACCEPT",
    "ASYNC_CANCEL",
    "LINK_TIMEOUT",
    "CONNECT",
    "FALLOCATE",
    "OPENAT",
    "CLOSE",
    "FILES_UPDATE",
    "STATX",
    "READ",
    "WRITE",
    "FADVISE",
    "MADVISE",
    "SEND",
    "RECV",
    "OPENAT2",
    "EPOLL_CTL",
    "SPLICE",
    "PROVIDE_BUFFERS",
    "REMOVE_BUFFERS",
    "TEE",
    "SHUTDOWN",
    "RENAMEAT",
    "UNLINKAT",
    "MKDIRAT",
    "SYMLINKAT",
    "LINKAT",
    "MSG_RING",
    "FSETXATTR",
    "SETXATTR",
    "FGETXATTR",
    "GETXATTR",
    "SOCKET",
    "URING_CMD",
    "SEND_ZC",
    "SENDMSG_ZC",
    "READ_MULTISHOT",
    "WAITID",
    "FUTEX_WAIT",
    "FUTEX_WAKE",
    "FUTEX_WAITV",
    "FIXED_FD_INSTALL",
    "FTRUNCATE",
    "BIND",
    "LISTEN",
    "RECV_ZC",
    "EPOLL_WAIT",
    "READV_FIXED",
    "WRITEV_FIXED",
    "PIPE",
    "NOP128",
    "URING_CMD128",
};
constexpr int kNamedOpcodes =
    static_cast<int>(sizeof(kOpcodeNames) / sizeof(kOpcodeNames[0]));
static_assert(IORING_OP_LAST <= kNamedOpcodes);
static_assert(IORING_OP_TIMEOUT == 11 && IORING_OP_ASYNC_CANCEL == 14 &&
              IORING_OP_READ == 22 && IORING_OP_MSG_RING == 40 &&
              IORING_OP_SOCKET == 45 && IORING_OP_SEND_ZC == 47 &&
              IORING_OP_SENDMSG_ZC == 48);

// io_uring_params::features bits (IORING_FEAT_*), by bit number.
constexpr const char* kFeatureNames[] = {
    "SINGLE_MMAP",     "NODROP",         "SUBMIT_STABLE",   "RW_CUR_POS",
    "CUR_PERSONALITY", "FAST_POLL",      "POLL_32BITS",     "SQPOLL_NONFIXED",
    "EXT_ARG",         "NATIVE_WORKERS", "RSRC_TAGS",       "CQE_SKIP",
    "LINKED_FILE",     "REG_REG_RING",   "RECVSEND_BUNDLE", "MIN_TIMEOUT",
    "RW_ATTR",         "NO_IOWAIT",
};
static_assert(IORING_FEAT_CQE_SKIP == 1u << 11 &&
              IORING_FEAT_LINKED_FILE == 1u << 12);

// IORING_SETUP_* bits, by bit number.
constexpr const char* kSetupFlagNames[] = {
    "IOPOLL",    "SQPOLL",     "SQ_AFF",        "CQSIZE",        "CLAMP",
    "ATTACH_WQ", "R_DISABLED", "SUBMIT_ALL",    "COOP_TASKRUN",  "TASKRUN_FLAG",
    "SQE128",    "CQE32",      "SINGLE_ISSUER", "DEFER_TASKRUN",
};
static_assert(IORING_SETUP_SINGLE_ISSUER == 1u << 12 &&
              IORING_SETUP_DEFER_TASKRUN == 1u << 13);

// The kernel's IORING_MAX_ENTRIES.
constexpr unsigned kMaxRingEntries = 32768;

std::string read_first_line(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (in) std::getline(in, line);
  return line;
}

bool parse_long(const std::string& s, long* out) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str()) return false;
  *out = v;
  return true;
}

// The value of "Key:" in /proc/thread-self/status (the calling thread's:
// a seccomp filter can be per thread), or /proc/self/status on kernels
// before 3.17.
std::string status_field(const char* key) {
  std::ifstream in("/proc/thread-self/status");
  if (!in) in.open("/proc/self/status");
  const std::size_t klen = std::strlen(key);
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, klen, key) == 0 && line.size() > klen &&
        line[klen] == ':') {
      std::size_t i = klen + 1;
      while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
      return line.substr(i);
    }
  }
  return {};
}

const char* errno_name(int err) {
  switch (err) {
    case EPERM:
      return "EPERM";
    case ENOSYS:
      return "ENOSYS";
    case ENOMEM:
      return "ENOMEM";
    case EINVAL:
      return "EINVAL";
    case EMFILE:
      return "EMFILE";
    case ENFILE:
      return "ENFILE";
    case EFAULT:
      return "EFAULT";
    case EACCES:
      return "EACCES";
    case EOPNOTSUPP:
      return "EOPNOTSUPP";
    case EBUSY:
      return "EBUSY";
    default:
      return nullptr;
  }
}

// "ENOSYS" or "errno 123".
std::string errno_label(int err) {
  const char* n = errno_name(err);
  return n != nullptr ? std::string(n) : absl::StrFormat("errno %d", err);
}

std::string format_bytes(uint64_t v) {
  if (v == ProbeReport::kUnlimited) return "unlimited";
  if (v >= (uint64_t{1} << 30) && v % (uint64_t{1} << 30) == 0) {
    return absl::StrFormat("%d GiB", v >> 30);
  }
  if (v >= (uint64_t{1} << 20) && v % (uint64_t{1} << 20) == 0) {
    return absl::StrFormat("%d MiB", v >> 20);
  }
  if (v >= 1024 && v % 1024 == 0) return absl::StrFormat("%d KiB", v >> 10);
  return absl::StrFormat("%d bytes", v);
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const std::string& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

std::string kernel_label(const detail::SystemFacts& f) {
  return f.kernel_release.empty() ? std::string("this kernel")
                                  : "kernel " + f.kernel_release;
}

std::string seccomp_label(int mode) {
  switch (mode) {
    case 0:
      return "none";
    case 1:
      return "strict";
    case 2:
      return "filter";
    default:
      return "unknown";
  }
}

std::string group_label(const detail::SystemFacts& f) {
  if (f.io_uring_group_name.empty()) {
    return absl::StrFormat("group %d", f.io_uring_group);
  }
  return absl::StrFormat("group %s (%d)", f.io_uring_group_name,
                         f.io_uring_group);
}

detail::SetupDiagnosis seccomp_diagnosis(int err, const char* call) {
  return {SetupError::kSeccomp,
          absl::StrFormat(
              "%s failed with %s and a seccomp filter is installed in this "
              "process (Seccomp: 2 in /proc/self/status), so a sandbox - a "
              "container runtime's default seccomp profile, systemd's "
              "SystemCallFilter=, a CI runner - blocks io_uring. Allow "
              "io_uring_setup, io_uring_enter and io_uring_register in that "
              "profile (for Docker: docker run --security-opt "
              "seccomp=<profile that allows them>), or run outside the "
              "sandbox",
              call, errno_label(err))};
}

unsigned count_allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 0;
  return static_cast<unsigned>(CPU_COUNT(&set));
}

std::string liburing_version() {
#ifdef SHARDIO_HAVE_LIBURING_VERSION
  return absl::StrFormat("%d.%d (library), built with %d.%d headers",
                         io_uring_major_version(), io_uring_minor_version(),
                         IO_URING_VERSION_MAJOR, IO_URING_VERSION_MINOR);
#elif defined(IORING_SETUP_DEFER_TASKRUN)
  // io_uring_version.h came with 2.4; DEFER_TASKRUN with 2.3.
  return "2.3 (headers)";
#else
  return "older than 2.3 (headers); shardio needs 2.3";
#endif
}

}  // namespace

const std::error_category& setup_category() noexcept {
  static const SetupCategory category;
  return category;
}

std::error_code make_error_code(SetupError e) noexcept {
  return std::error_code(static_cast<int>(e), setup_category());
}

std::string_view setup_error_name(SetupError e) noexcept {
  switch (e) {
    case SetupError::kIoUringDisabled:
      return "io_uring_disabled";
    case SetupError::kNotInIoUringGroup:
      return "not_in_io_uring_group";
    case SetupError::kSeccomp:
      return "seccomp";
    case SetupError::kPermissionDenied:
      return "permission_denied";
    case SetupError::kNoIoUring:
      return "no_io_uring";
    case SetupError::kLockedMemory:
      return "locked_memory";
    case SetupError::kKernelTooOld:
      return "kernel_too_old";
    case SetupError::kTooManyShards:
      return "too_many_shards";
    case SetupError::kInvalidOptions:
      return "invalid_options";
    case SetupError::kOther:
      return "other";
  }
  return static_cast<int>(e) == 0 ? "ok" : "unknown";
}

bool ProbeReport::supports(uint8_t opcode) const noexcept {
  for (const Opcode& o : opcodes) {
    if (o.opcode == opcode) return o.supported;
  }
  return false;
}

// One table of opcode names for the probe report and the statistics
// (stats.h).
std::string_view opcode_name(uint8_t opcode) noexcept {
  return opcode < kNamedOpcodes ? kOpcodeNames[opcode] : std::string_view();
}

namespace detail {

SystemFacts gather_system_facts() {
  SystemFacts f;
  long v = 0;
  if (parse_long(read_first_line("/proc/sys/kernel/io_uring_disabled"), &v)) {
    f.io_uring_disabled = static_cast<int>(v);
  }
  if (parse_long(read_first_line("/proc/sys/kernel/io_uring_group"), &v)) {
    f.io_uring_group = v;
  }
  f.uid = static_cast<unsigned>(::geteuid());
  f.gid = static_cast<unsigned>(::getegid());
  if (f.io_uring_group >= 0) {
    const auto g = static_cast<gid_t>(f.io_uring_group);
    f.in_io_uring_group = ::getegid() == g;
    const int n = ::getgroups(0, nullptr);
    if (n > 0) {
      std::vector<gid_t> groups(static_cast<std::size_t>(n));
      const int m = ::getgroups(n, groups.data());
      for (int i = 0; i < m; ++i) {
        if (groups[static_cast<std::size_t>(i)] == g)
          f.in_io_uring_group = true;
      }
    }
    group buf{};
    group* found = nullptr;
    std::vector<char> scratch(16384);
    if (::getgrgid_r(g, &buf, scratch.data(), scratch.size(), &found) == 0 &&
        found != nullptr && found->gr_name != nullptr) {
      f.io_uring_group_name = found->gr_name;
    }
  }
  const std::string cap = status_field("CapEff");
  if (!cap.empty()) {
    const unsigned long long caps = std::strtoull(cap.c_str(), nullptr, 16);
    f.cap_sys_admin = (caps >> 21) & 1;  // CAP_SYS_ADMIN
  }
  if (parse_long(status_field("Seccomp"), &v)) {
    f.seccomp_mode = static_cast<int>(v);
  }
  rlimit rl{};
  if (::getrlimit(RLIMIT_MEMLOCK, &rl) == 0) {
    f.memlock_soft =
        rl.rlim_cur == RLIM_INFINITY ? ProbeReport::kUnlimited : rl.rlim_cur;
    f.memlock_hard =
        rl.rlim_max == RLIM_INFINITY ? ProbeReport::kUnlimited : rl.rlim_max;
  }
  utsname u{};
  if (::uname(&u) == 0) f.kernel_release = u.release;
  return f;
}

SetupDiagnosis diagnose_setup_failure(int err, const SystemFacts& f) {
  const bool filter = f.seccomp_mode == 2;
  if (err == 0) {
    const int perr = f.opcode_probe_errno;
    if (perr != 0 && filter && (perr == ENOSYS || perr == EPERM)) {
      return seccomp_diagnosis(perr, "io_uring_register");
    }
    std::string what;
    if (perr != 0) {
      what = absl::StrFormat(
          "%s could not list its io_uring opcodes (io_uring_register "
          "IORING_REGISTER_PROBE failed with %s; it needs Linux 5.6)",
          kernel_label(f), errno_label(perr));
    } else {
      what = absl::StrFormat(
          "%s lacks io_uring opcodes the shardio runtime submits: %s",
          kernel_label(f), join(f.missing_opcodes, ", "));
    }
    return {SetupError::kKernelTooOld,
            what +
                ". shardio needs Linux 5.6 for one shard and 5.18 "
                "(IORING_OP_MSG_RING, the cross-shard doorbell) for more; "
                "5.19 or newer is recommended: upgrade the kernel (run "
                "shardio_doctor to see which opcodes it has)"};
  }
  switch (err) {
    case EPERM:
      if (f.io_uring_disabled == 2) {
        return {SetupError::kIoUringDisabled,
                "io_uring is disabled on this system: "
                "/proc/sys/kernel/io_uring_disabled is 2, so io_uring_setup "
                "fails with EPERM for every process. An administrator can "
                "enable it with `sysctl -w kernel.io_uring_disabled=0`, or "
                "with 1 and this user in the group kernel.io_uring_group "
                "names (persist it in /etc/sysctl.d/)"};
      }
      if (f.io_uring_disabled == 1 && !f.cap_sys_admin &&
          !f.in_io_uring_group) {
        if (f.io_uring_group < 0) {
          return {SetupError::kNotInIoUringGroup,
                  absl::StrFormat(
                      "io_uring is restricted: "
                      "/proc/sys/kernel/io_uring_disabled is 1 and "
                      "kernel.io_uring_group is %d (no group), so only "
                      "processes with CAP_SYS_ADMIN may create rings, and "
                      "this one (uid %d) has not. An administrator can set "
                      "kernel.io_uring_group to a group of this user (sysctl "
                      "-w kernel.io_uring_group=<gid>) or "
                      "kernel.io_uring_disabled=0",
                      f.io_uring_group, f.uid)};
        }
        return {
            SetupError::kNotInIoUringGroup,
            absl::StrFormat(
                "io_uring is restricted: /proc/sys/kernel/"
                "io_uring_disabled is 1, so only processes with "
                "CAP_SYS_ADMIN or in %s (kernel.io_uring_group) may "
                "create rings, and this one (uid %d, gid %d) is in "
                "neither. Add the user to that group (usermod -aG %s "
                "<user>, then log in again) or have an administrator set "
                "kernel.io_uring_disabled=0",
                group_label(f), f.uid, f.gid,
                f.io_uring_group_name.empty() ? std::to_string(f.io_uring_group)
                                              : f.io_uring_group_name)};
      }
      if (filter) return seccomp_diagnosis(EPERM, "io_uring_setup");
      {
        std::string msg = absl::StrFormat(
            "io_uring_setup was refused with EPERM although "
            "kernel.io_uring_disabled (%s) and seccomp (%s) allow it: a "
            "security module (SELinux, AppArmor, a BPF LSM) probably denies "
            "io_uring to this program; look for the denial in the audit log "
            "(journalctl -k, ausearch -m AVC) and allow io_uring for it",
            f.io_uring_disabled < 0 ? std::string("absent")
                                    : std::to_string(f.io_uring_disabled),
            seccomp_label(f.seccomp_mode));
        if (f.sqpoll && !f.cap_sys_admin) {
          msg +=
              ". With RuntimeOptions::sqpoll, kernels before 5.11 also "
              "require CAP_SYS_ADMIN: run without sqpoll";
        }
        return {SetupError::kPermissionDenied, std::move(msg)};
      }
    case ENOSYS:
      if (filter) return seccomp_diagnosis(ENOSYS, "io_uring_setup");
      return {SetupError::kNoIoUring,
              absl::StrFormat(
                  "io_uring_setup does not exist here (ENOSYS; %s, seccomp: "
                  "%s): the kernel was built without CONFIG_IO_URING, is "
                  "older than 5.1, or is an emulation without io_uring "
                  "(gVisor, WSL1)%s. shardio needs Linux 5.6 or newer with "
                  "io_uring (5.19+ recommended)",
                  kernel_label(f), seccomp_label(f.seccomp_mode),
                  f.seccomp_mode < 0 ? ", or a seccomp filter blocks it" : "")};
    case ENOMEM:
      return {SetupError::kLockedMemory,
              absl::StrFormat(
                  "not enough locked memory for a ring of %d entries "
                  "(ENOMEM): RLIMIT_MEMLOCK is %s (hard limit %s), and "
                  "kernels before 5.12 charge ring memory against it (this "
                  "is %s). Raise it (ulimit -l; LimitMEMLOCK= for a systemd "
                  "service; docker run --ulimit memlock=-1) or lower "
                  "RuntimeOptions::ring_entries; on newer kernels ENOMEM "
                  "means the system is short of memory",
                  f.ring_entries, format_bytes(f.memlock_soft),
                  format_bytes(f.memlock_hard), kernel_label(f))};
    case EINVAL:
      return {SetupError::kInvalidOptions,
              absl::StrFormat(
                  "the kernel rejected the ring parameters (EINVAL, %d "
                  "entries%s): RuntimeOptions::ring_entries must be between "
                  "1 and %d, and older kernels accept fewer",
                  f.ring_entries, f.sqpoll ? ", SQPOLL" : "", kMaxRingEntries)};
    case EMFILE:
    case ENFILE:
      return {SetupError::kOther,
              absl::StrFormat("io_uring_setup failed: %s (%s): each shard "
                              "needs a ring fd and an eventfd; raise the "
                              "open-file limit (ulimit -n) or close files",
                              std::strerror(err), errno_label(err))};
    default:
      return {SetupError::kOther,
              absl::StrFormat("io_uring_setup failed: %s (%s)",
                              std::strerror(err), errno_label(err))};
  }
}

std::vector<uint8_t> required_opcodes(unsigned shards) {
  // NOP: padding for cancelled records; READ: the wake eventfd;
  // ASYNC_CANCEL: cancellation and shutdown; TIMEOUT: waits with a timeout
  // (liburing submits one on kernels without EXT_ARG) and sleep().
  std::vector<uint8_t> ops = {IORING_OP_NOP, IORING_OP_READ,
                              IORING_OP_ASYNC_CANCEL, IORING_OP_TIMEOUT};
  if (shards > 1) ops.push_back(IORING_OP_MSG_RING);
  return ops;
}

std::string opcode_name(uint8_t opcode) {
  const std::string_view name = shardio::opcode_name(opcode);
  if (!name.empty()) return std::string(name);
  return absl::StrFormat("OP_%d", opcode);
}

std::vector<unsigned> setup_flag_candidates(bool sqpoll) {
  if (sqpoll) {
    return {IORING_SETUP_SQPOLL | IORING_SETUP_SINGLE_ISSUER |
                IORING_SETUP_SUBMIT_ALL,
            IORING_SETUP_SQPOLL | IORING_SETUP_SUBMIT_ALL, IORING_SETUP_SQPOLL};
  }
  return {IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
          IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_SUBMIT_ALL,
          IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL,
          IORING_SETUP_COOP_TASKRUN, 0};
}

std::string setup_flags_to_string(unsigned flags) {
  if (flags == 0) return "none";
  std::vector<std::string> names;
  for (unsigned bit = 0; bit < 32; ++bit) {
    if ((flags & (1u << bit)) == 0) continue;
    names.push_back(bit < std::size(kSetupFlagNames)
                        ? std::string(kSetupFlagNames[bit])
                        : absl::StrFormat("bit%d", bit));
  }
  return join(names, "|");
}

int probe_opcodes(::io_uring& ring, std::bitset<256>& supported, int* last_op) {
  constexpr unsigned kOps = 256;
  const std::size_t size =
      sizeof(io_uring_probe) + kOps * sizeof(io_uring_probe_op);
  std::unique_ptr<char[]> storage(new char[size]());
  auto* p = reinterpret_cast<io_uring_probe*>(storage.get());
  const int ret = io_uring_register_probe(&ring, p, kOps);
  if (ret < 0) return ret;
  supported.reset();
  for (unsigned op = 0; op <= p->last_op && op < kOps && op < p->ops_len;
       ++op) {
    if (p->ops[op].flags & IO_URING_OP_SUPPORTED) supported.set(op);
  }
  if (last_op != nullptr) *last_op = p->last_op;
  return 0;
}

}  // namespace detail

namespace {

// Creates a ring of `entries` with `flags`; returns 0 or the negative errno.
int try_ring(unsigned entries, unsigned flags) {
  io_uring ring;
  io_uring_params p{};
  p.flags = flags;
  if (flags & IORING_SETUP_SQPOLL) p.sq_thread_idle = 10;
  const int ret = io_uring_queue_init_params(entries, &ring, &p);
  if (ret == 0) io_uring_queue_exit(&ring);
  return ret;
}

// Registers (and unregisters) a one-entry provided-buffer ring.
bool buffer_rings_work(io_uring& ring) {
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t len = page > 0 ? static_cast<std::size_t>(page) : 4096;
  void* mem = ::mmap(nullptr, len, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mem == MAP_FAILED) return false;
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<uint64_t>(mem);
  reg.ring_entries = 1;
  reg.bgid = 0;
  const bool ok = io_uring_register_buf_ring(&ring, &reg, 0) == 0;
  if (ok) io_uring_unregister_buf_ring(&ring, 0);
  ::munmap(mem, len);
  return ok;
}

bool sparse_tables_work(io_uring& ring) {
  if (io_uring_register_files_sparse(&ring, 1) != 0) return false;
  io_uring_unregister_files(&ring);
  return true;
}

// Wraps `text` at `width` columns, each line indented by `indent`.
std::string wrap(const std::string& text, std::size_t indent,
                 std::size_t width = 79) {
  std::string out, line;
  std::istringstream words(text);
  std::string w;
  const std::string pad(indent, ' ');
  while (words >> w) {
    if (!line.empty() && pad.size() + line.size() + 1 + w.size() > width) {
      out += pad + line + "\n";
      line.clear();
    }
    if (!line.empty()) line += ' ';
    line += w;
  }
  if (!line.empty()) out += pad + line + "\n";
  return out;
}

}  // namespace

ProbeReport probe() {
  ProbeReport r;
  detail::SystemFacts f = detail::gather_system_facts();
  r.io_uring_disabled = f.io_uring_disabled;
  r.io_uring_group = f.io_uring_group;
  r.in_io_uring_group = f.in_io_uring_group;
  r.cap_sys_admin = f.cap_sys_admin;
  r.seccomp_mode = f.seccomp_mode;
  r.memlock_soft = f.memlock_soft;
  r.memlock_hard = f.memlock_hard;
  utsname u{};
  if (::uname(&u) == 0) {
    r.kernel_release = u.release;
    r.kernel_version = u.version;
    r.machine = u.machine;
  }
  r.liburing_version = liburing_version();
  r.cpus_allowed = count_allowed_cpus();
  const long online = ::sysconf(_SC_NPROCESSORS_ONLN);
  r.cpus_online = online > 0 ? static_cast<unsigned>(online) : 0;

  // A default Runtime has one shard per allowed CPU.
  const unsigned shards = std::max(1u, r.cpus_allowed);
  constexpr unsigned kEntries = 8;
  f.ring_entries = kEntries;

  struct FlagTry {
    const char* name;
    unsigned flag;
    unsigned with;  // flags it needs
  };
  static constexpr FlagTry kFlags[] = {
      {"SINGLE_ISSUER", IORING_SETUP_SINGLE_ISSUER, 0},
      {"DEFER_TASKRUN", IORING_SETUP_DEFER_TASKRUN, IORING_SETUP_SINGLE_ISSUER},
      {"COOP_TASKRUN", IORING_SETUP_COOP_TASKRUN, 0},
      {"SUBMIT_ALL", IORING_SETUP_SUBMIT_ALL, 0},
      {"SQPOLL", IORING_SETUP_SQPOLL, 0},
  };

  io_uring ring;
  io_uring_params params{};
  const int ret = io_uring_queue_init_params(kEntries, &ring, &params);
  if (ret < 0) {
    r.setup_errno = -ret;
    detail::SetupDiagnosis d = detail::diagnose_setup_failure(-ret, f);
    r.error = d.error;
    r.message = std::move(d.message);
    for (const FlagTry& t : kFlags) {
      r.setup_flags.push_back({t.name, t.flag, false, -ret});
    }
    return r;
  }

  r.features = params.features;
  for (unsigned bit = 0; bit < 32; ++bit) {
    if ((params.features & (1u << bit)) == 0) continue;
    r.feature_names.push_back(bit < std::size(kFeatureNames)
                                  ? std::string(kFeatureNames[bit])
                                  : absl::StrFormat("bit%d", bit));
  }
  std::bitset<256> ops;
  int last_op = -1;
  const int perr = detail::probe_opcodes(ring, ops, &last_op);
  if (perr == 0) {
    r.last_op = last_op;
    const int top = std::max(last_op, kNamedOpcodes - 1);
    for (int op = 0; op <= top && op < 256; ++op) {
      const auto o = static_cast<uint8_t>(op);
      r.opcodes.push_back({o, detail::opcode_name(o), ops.test(o)});
    }
  }
  const bool buf_rings = buffer_rings_work(ring);
  const bool sparse = sparse_tables_work(ring);
  io_uring_queue_exit(&ring);

  for (uint8_t op : detail::required_opcodes(shards)) {
    if (perr != 0 || !ops.test(op)) {
      r.missing_required_opcodes.push_back(detail::opcode_name(op));
    }
  }

  for (const FlagTry& t : kFlags) {
    const int fr = try_ring(2, t.flag | t.with);
    r.setup_flags.push_back({t.name, t.flag, fr == 0, fr < 0 ? -fr : 0});
  }
  for (unsigned flags : detail::setup_flag_candidates(false)) {
    if (try_ring(kEntries, flags) == 0) {
      r.runtime_setup_flags = flags;
      break;
    }
  }

  auto has = [&](uint8_t op) { return perr == 0 && ops.test(op); };
  r.shardio_features = {
      {"cross-shard doorbell", has(IORING_OP_MSG_RING),
       "IORING_OP_MSG_RING (5.18); needed by runtimes of 2+ shards"},
      {"doorbells without a CQE", (params.features & IORING_FEAT_CQE_SKIP) != 0,
       "IORING_FEAT_CQE_SKIP (5.17)"},
      {"TcpStream/UnixStream::connect", has(IORING_OP_SOCKET),
       "IORING_OP_SOCKET (5.19)"},
      {"multishot accept (TcpListener::accept)", has(IORING_OP_SOCKET),
       "IORING_OP_SOCKET as a proxy: the accept flag itself cannot be "
       "probed; both came in 5.19"},
      {"Cancel::fd, Cancel::all", has(IORING_OP_SOCKET),
       "IORING_OP_SOCKET as a proxy for IORING_ASYNC_CANCEL_FD/ANY (5.19)"},
      {"provided-buffer rings (BufferRing)", buf_rings,
       "registered a one-entry IORING_REGISTER_PBUF_RING (5.19)"},
      {"sparse registered tables (register_file, BufferPool)", sparse,
       "registered a sparse file table (5.19)"},
      {"multishot recv/recvmsg (recv_multishot)", has(IORING_OP_SEND_ZC),
       "IORING_OP_SEND_ZC as a proxy: the recv flag itself cannot be "
       "probed; both came in 6.0"},
      {"zero-copy send (send_zc)", has(IORING_OP_SEND_ZC),
       "IORING_OP_SEND_ZC (6.0)"},
  };

  if (perr != 0 || !r.missing_required_opcodes.empty()) {
    f.missing_opcodes = r.missing_required_opcodes;
    f.opcode_probe_errno = perr < 0 ? -perr : 0;
    detail::SetupDiagnosis d = detail::diagnose_setup_failure(0, f);
    r.error = d.error;
    r.message = std::move(d.message);
    return r;
  }
  r.usable = true;
  return r;
}

std::string to_string(const ProbeReport& r) {
  std::string out;
  if (r.usable) {
    out += "io_uring: usable\n";
  } else {
    out += absl::StrFormat("io_uring: NOT USABLE (%s, %s:%d)\n",
                           setup_error_name(r.error), setup_category().name(),
                           static_cast<int>(r.error));
    out += wrap(r.message, 2);
  }
  out += absl::StrFormat("kernel: %s %s (%s)\n", r.kernel_release,
                         r.kernel_version, r.machine);
  out += absl::StrFormat("liburing: %s\n", r.liburing_version);
  if (r.io_uring_disabled < 0) {
    out += "io_uring_disabled: absent (kernel before 6.6: io_uring is on)\n";
  } else {
    out +=
        absl::StrFormat("io_uring_disabled: %d (kernel.io_uring_group: %d%s)\n",
                        r.io_uring_disabled, r.io_uring_group,
                        r.in_io_uring_group ? ", this process is in it" : "");
  }
  out += absl::StrFormat("seccomp: %s (%d)\n", seccomp_label(r.seccomp_mode),
                         r.seccomp_mode);
  out += absl::StrFormat("RLIMIT_MEMLOCK: %s (hard: %s)\n",
                         format_bytes(r.memlock_soft),
                         format_bytes(r.memlock_hard));
  out += absl::StrFormat("CPUs allowed: %d of %d online\n", r.cpus_allowed,
                         r.cpus_online);
  if (r.setup_errno != 0) {
    out += absl::StrFormat("io_uring_setup: failed with %s (%s)\n",
                           errno_label(r.setup_errno),
                           std::strerror(r.setup_errno));
    return out;
  }
  std::string flags;
  for (const auto& f : r.setup_flags) {
    if (!flags.empty()) flags += ", ";
    flags +=
        f.name + (f.supported ? " yes" : " no (" + errno_label(f.err) + ")");
  }
  out += "setup flags (each alone):\n" + wrap(flags, 2);
  out += "runtime rings use: " +
         detail::setup_flags_to_string(r.runtime_setup_flags) + "\n";
  out += "features:\n" + wrap(join(r.feature_names, " "), 2);
  std::vector<std::string> have, lack;
  for (const auto& o : r.opcodes) (o.supported ? have : lack).push_back(o.name);
  if (r.opcodes.empty()) {
    out += "opcodes: the kernel could not list them (IORING_REGISTER_PROBE)\n";
  } else {
    out +=
        absl::StrFormat("opcodes: %d of %d supported (the kernel's last: %d)\n",
                        have.size(), r.opcodes.size(), r.last_op);
    out += wrap(join(have, " "), 2);
    if (!lack.empty()) out += "  missing:\n" + wrap(join(lack, " "), 4);
  }
  out += "required by the runtime: " +
         (r.missing_required_opcodes.empty()
              ? std::string("all present")
              : "missing " + join(r.missing_required_opcodes, ", ")) +
         "\n";
  out += "shardio features:\n";
  for (const auto& f : r.shardio_features) {
    out += absl::StrFormat("  [%s] %s\n", f.available ? "yes" : " no", f.name);
    out += wrap(f.how, 8);
  }
  return out;
}

}  // namespace shardio
