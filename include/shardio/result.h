// shardio/result.h — Result<T>: the value of an operation or the error that
// stopped it.
//
// Result<T> is shaped like std::expected<T, std::error_code> (has_value(),
// value(), error(), operator*, operator->, value_or) so that it can become an
// alias of it under C++23. Errors from the kernel arrive as negative errno
// values in a CQE; `Result<T>::from_res()` and `error_from_res()` turn them
// into std::error_code in std::system_category().
//
// Thread-safety: a plain value type; no internal synchronization.
#pragma once

#include <cerrno>
#include <cstdint>
#include <new>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace shardio {

// Wraps an error so that it can construct a Result<T> of any T, like
// std::unexpected.
class Unexpected {
 public:
  explicit Unexpected(std::error_code ec) noexcept : ec_(ec) {}
  const std::error_code& error() const noexcept { return ec_; }

 private:
  std::error_code ec_;
};

// The error_code for a positive errno value (ECANCELED, ETIME, ...).
inline std::error_code errno_code(int err) noexcept {
  return std::error_code(err, std::system_category());
}

// The error_code for a CQE result that is a negative errno value.
inline std::error_code error_from_res(int32_t res) noexcept {
  return errno_code(-res);
}

template <class T>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, std::error_code>,
                "Result<std::error_code> is ambiguous");

 public:
  using value_type = T;
  using error_type = std::error_code;

  template <class U = T,
            std::enable_if_t<std::is_default_constructible_v<U>, int> = 0>
  Result() : has_(true) {
    new (&v_) T();
  }
  template <class U = T,
            std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                 !std::is_same_v<std::decay_t<U>, Result> &&
                                 !std::is_same_v<std::decay_t<U>, Unexpected>,
                             int> = 0>
  Result(U&& v) : has_(true) {  // NOLINT(google-explicit-constructor)
    new (&v_) T(std::forward<U>(v));
  }
  Result(Unexpected u) noexcept : ec_(u.error()), has_(false) {}  // NOLINT
  Result(std::error_code ec) noexcept : ec_(ec), has_(false) {}   // NOLINT

  Result(const Result& o) requires std::is_copy_constructible_v<T>
      : ec_(o.ec_), has_(o.has_) {
    if (has_) new (&v_) T(o.v_);
  }
  Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>)
      : ec_(o.ec_), has_(o.has_) {
    if (has_) new (&v_) T(std::move(o.v_));
  }
  Result& operator=(const Result& o) requires std::is_copy_constructible_v<T> {
    if (this != &o) {
      reset();
      ec_ = o.ec_;
      if (o.has_) new (&v_) T(o.v_);
      has_ = o.has_;
    }
    return *this;
  }
  Result& operator=(Result&& o) noexcept(
      std::is_nothrow_move_constructible_v<T>) {
    if (this != &o) {
      reset();
      ec_ = o.ec_;
      if (o.has_) new (&v_) T(std::move(o.v_));
      has_ = o.has_;
    }
    return *this;
  }
  ~Result() { reset(); }

  bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }

  // The value; throws std::system_error carrying error() when there is none.
  T& value() & {
    check();
    return v_;
  }
  const T& value() const& {
    check();
    return v_;
  }
  T&& value() && {
    check();
    return std::move(v_);
  }
  T& operator*() & noexcept { return v_; }
  const T& operator*() const& noexcept { return v_; }
  T&& operator*() && noexcept { return std::move(v_); }
  T* operator->() noexcept { return &v_; }
  const T* operator->() const noexcept { return &v_; }

  template <class U>
  T value_or(U&& fallback) const& {
    return has_ ? v_ : static_cast<T>(std::forward<U>(fallback));
  }

  // The error; an empty error_code when there is a value.
  const std::error_code& error() const noexcept { return ec_; }

 private:
  void reset() noexcept {
    if (has_) v_.~T();
    has_ = false;
  }
  void check() const {
    if (!has_) throw std::system_error(ec_);
  }

  std::error_code ec_;
  union {
    T v_;
  };
  bool has_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  using value_type = void;
  using error_type = std::error_code;

  Result() noexcept = default;
  Result(Unexpected u) noexcept : ec_(u.error()) {}  // NOLINT
  Result(std::error_code ec) noexcept : ec_(ec) {}   // NOLINT

  bool has_value() const noexcept { return !ec_; }
  explicit operator bool() const noexcept { return !ec_; }
  void value() const {
    if (ec_) throw std::system_error(ec_);
  }
  void operator*() const noexcept {}
  const std::error_code& error() const noexcept { return ec_; }

 private:
  std::error_code ec_;
};

// The usual shape of a CQE's result: a non-negative count or a -errno.
inline Result<uint32_t> result_from_res(int32_t res) noexcept {
  if (res < 0) return error_from_res(res);
  return static_cast<uint32_t>(res);
}

// For ops whose success carries no value (res == 0 or any non-negative res).
inline Result<void> void_result_from_res(int32_t res) noexcept {
  if (res < 0) return error_from_res(res);
  return {};
}

}  // namespace shardio
