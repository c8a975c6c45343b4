// shardio/probe.h — why io_uring cannot be used here, and what it offers
// where it can.
//
//   try {
//     shardio::Runtime rt;
//   } catch (const std::system_error& e) {
//     if (e.code() == shardio::SetupError::kSeccomp) { ... }
//     std::fputs(e.what(), stderr);   // says what failed and what to do
//   }
//
//   shardio::ProbeReport r = shardio::probe();   // no Runtime needed
//   std::fputs(shardio::to_string(r).c_str(), stdout);
//
// Runtime's constructor throws std::system_error whose code() is a
// SetupError (category "shardio.setup") when it cannot start: io_uring
// disabled by sysctl, blocked by seccomp or a security module, short of
// locked memory, a kernel that lacks opcodes the runtime submits, or options
// that cannot work. probe() checks the same things without starting any
// thread and also reports the kernel's io_uring setup flags, features and
// opcodes, and which shardio features they enable. examples/shardio_doctor
// prints it. See docs/kernel-requirements.md ("When io_uring is
// unavailable").
//
// Thread-safety: probe() may be called from any thread, also while runtimes
// run; it creates and closes a few small rings of its own.
#pragma once

#include <bitset>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

struct io_uring;

namespace shardio {

// Why a Runtime (or probe()) cannot use io_uring. 0 is not an error.
enum class SetupError {
  // /proc/sys/kernel/io_uring_disabled is 2: no process may create a ring.
  kIoUringDisabled = 1,
  // io_uring_disabled is 1 and this process has neither CAP_SYS_ADMIN nor
  // the group kernel.io_uring_group names.
  kNotInIoUringGroup,
  // io_uring_setup failed with ENOSYS or EPERM and a seccomp filter is
  // installed (a container's default profile, systemd's SystemCallFilter=).
  kSeccomp,
  // EPERM that neither the sysctl nor seccomp explains: a security module
  // (SELinux, AppArmor, BPF LSM), or SQPOLL without privilege.
  kPermissionDenied,
  // ENOSYS without a seccomp filter: the kernel has no io_uring.
  kNoIoUring,
  // ENOMEM: ring memory counts against RLIMIT_MEMLOCK before Linux 5.12.
  kLockedMemory,
  // The ring works but the kernel lacks opcodes the runtime submits.
  kKernelTooOld,
  // RuntimeOptions::pin_cpus with more shards than the affinity mask allows.
  kTooManyShards,
  // RuntimeOptions that cannot work (ring_entries 0 or above 32768), or
  // ring parameters the kernel rejects (EINVAL).
  kInvalidOptions,
  // Anything else (EMFILE, EFAULT, ...): the message names the errno.
  kOther,
};

// The category of SetupError codes: name() is "shardio.setup". Its codes
// also compare equal to the nearest std::errc where one fits
// (kTooManyShards and kInvalidOptions to invalid_argument, kIoUringDisabled,
// kNotInIoUringGroup and kPermissionDenied to operation_not_permitted,
// kNoIoUring to function_not_supported, kLockedMemory to
// not_enough_memory, kKernelTooOld to not_supported).
const std::error_category& setup_category() noexcept;
std::error_code make_error_code(SetupError e) noexcept;
// A short identifier: "io_uring_disabled", "seccomp", ... ("ok" for 0).
std::string_view setup_error_name(SetupError e) noexcept;

// What probe() found. Fields that could not be read hold -1 or stay empty.
struct ProbeReport {
  // Whether a Runtime with default options can be created here; when not,
  // `error` says why and `message` what to do.
  bool usable = false;
  SetupError error{};
  std::string message;
  // The errno of the failed io_uring_setup, 0 if it worked.
  int setup_errno = 0;

  std::string kernel_release;  // uname -r
  std::string kernel_version;  // uname -v
  std::string machine;         // uname -m
  std::string liburing_version;
  // /proc/sys/kernel/io_uring_disabled and kernel.io_uring_group (-1 when
  // the kernel has no such sysctl, before Linux 6.6).
  int io_uring_disabled = -1;
  long io_uring_group = -1;
  bool in_io_uring_group = false;  // the process's groups contain it
  bool cap_sys_admin = false;      // CapEff of the calling thread
  // The Seccomp: line of /proc/thread-self/status: 0 none, 1 strict,
  // 2 filter.
  int seccomp_mode = -1;
  static constexpr uint64_t kUnlimited = ~uint64_t{0};
  uint64_t memlock_soft = 0;  // RLIMIT_MEMLOCK in bytes, or kUnlimited
  uint64_t memlock_hard = 0;
  unsigned cpus_allowed = 0;  // CPUs in the affinity mask
  unsigned cpus_online = 0;

  // Each IORING_SETUP_* flag tried alone on a tiny ring (DEFER_TASKRUN
  // with SINGLE_ISSUER, which it needs).
  struct SetupFlag {
    std::string name;  // "SINGLE_ISSUER"
    unsigned flag = 0;
    bool supported = false;
    int err = 0;  // the errno when not
  };
  std::vector<SetupFlag> setup_flags;
  // The flags a Runtime with default options would create its rings with.
  unsigned runtime_setup_flags = 0;

  // io_uring_params::features and the names of its bits ("NODROP", ...).
  unsigned features = 0;
  std::vector<std::string> feature_names;

  // Every opcode the kernel reports (io_uring_get_probe_ring), by name.
  struct Opcode {
    uint8_t opcode = 0;
    std::string name;  // "MSG_RING"; "OP_70" for one newer than shardio
    bool supported = false;
  };
  std::vector<Opcode> opcodes;
  int last_op = -1;  // the kernel's highest opcode number
  // The opcodes the runtime itself submits that this kernel lacks.
  std::vector<std::string> missing_required_opcodes;

  // The shardio features these enable.
  struct Feature {
    std::string name;  // "multishot recv"
    bool available = false;
    std::string how;  // what was checked
  };
  std::vector<Feature> shardio_features;

  bool supports(uint8_t opcode) const noexcept;
};

// Looks at this system: the facts above, a ring of 8 entries with each
// setup flag, the opcode probe. Never throws for a missing io_uring (the
// report says why); std::bad_alloc only.
ProbeReport probe();

// A multi-line, human-readable rendering (what shardio_doctor prints). The
// first line says whether io_uring is usable; a "kernel:" line follows.
std::string to_string(const ProbeReport& report);

namespace detail {

// What decides why a ring could not be created: the system's settings and
// what was asked for. gather_system_facts() reads them; tests make them up.
struct SystemFacts {
  int io_uring_disabled = -1;       // -1: no such sysctl (before Linux 6.6)
  long io_uring_group = -1;         // kernel.io_uring_group; -1: none
  std::string io_uring_group_name;  // its name, when it has one
  bool in_io_uring_group = false;
  bool cap_sys_admin = false;
  int seccomp_mode = -1;      // 0 none, 1 strict, 2 filter; -1 unknown
  uint64_t memlock_soft = 0;  // bytes; ProbeReport::kUnlimited
  uint64_t memlock_hard = 0;
  unsigned uid = 0;
  unsigned gid = 0;
  std::string kernel_release;
  // What was asked for.
  unsigned ring_entries = 0;
  bool sqpoll = false;
  // For a ring that was created: the runtime's opcodes it lacks, and the
  // errno of io_uring_register(PROBE) when the kernel could not list them.
  std::vector<std::string> missing_opcodes;
  int opcode_probe_errno = 0;
};

SystemFacts gather_system_facts();

struct SetupDiagnosis {
  SetupError error{};
  std::string message;  // what failed and what to do
};

// Why io_uring_setup failed with errno `err` (positive), or, with err == 0,
// why a ring that was created cannot serve the runtime (facts name the
// missing opcodes). Pure: depends only on its arguments.
SetupDiagnosis diagnose_setup_failure(int err, const SystemFacts& facts);

// The opcodes a runtime of `shards` shards submits: NOP, READ (the wake
// eventfd), ASYNC_CANCEL, TIMEOUT, and MSG_RING (the doorbell) with more
// than one shard.
std::vector<uint8_t> required_opcodes(unsigned shards);
// Fills `supported` from the kernel's opcode probe of `ring` and returns 0,
// or returns the negative errno of io_uring_register(PROBE). `last_op`, when
// given, gets the kernel's highest opcode.
int probe_opcodes(::io_uring& ring, std::bitset<256>& supported,
                  int* last_op = nullptr);
// "MSG_RING" for IORING_OP_MSG_RING; "OP_<n>" for an opcode unknown here.
std::string opcode_name(uint8_t opcode);
// The IORING_SETUP_* combinations a shard tries, best first.
std::vector<unsigned> setup_flag_candidates(bool sqpoll);
// "SINGLE_ISSUER|COOP_TASKRUN", or "none".
std::string setup_flags_to_string(unsigned flags);

}  // namespace detail
}  // namespace shardio

template <>
struct std::is_error_code_enum<shardio::SetupError> : std::true_type {};
