// shardio/result.h — Result<T, E>: the value of an operation or the error
// that stopped it.
//
// Result<T, E = std::error_code> is shaped like std::expected<T, E>
// (has_value(), value(), error(), operator*, operator->, value_or) so that it
// can become an alias of it under C++23. Errors from the kernel arrive as
// negative errno values in a CQE; `error_from_res()` and `result_from_res()`
// turn them into std::error_code in std::system_category(). Layers that know
// more (the file system API knows the path) use a richer E; value() throws
// std::system_error built by `throw_result_error(e)`, found by ADL.
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

// Wraps an error so that it can construct a Result<T, E> of any T, like
// std::unexpected.
template <class E = std::error_code>
class Unexpected {
 public:
  explicit Unexpected(E e) noexcept(std::is_nothrow_move_constructible_v<E>)
      : e_(std::move(e)) {}
  const E& error() const& noexcept { return e_; }
  E&& error() && noexcept { return std::move(e_); }

 private:
  E e_;
};
template <class E>
Unexpected(E) -> Unexpected<E>;

// The error_code for a positive errno value (ECANCELED, ETIME, ...).
inline std::error_code errno_code(int err) noexcept {
  return std::error_code(err, std::system_category());
}

// The error_code for a CQE result that is a negative errno value.
inline std::error_code error_from_res(int32_t res) noexcept {
  return errno_code(-res);
}

[[noreturn]] inline void throw_result_error(const std::error_code& ec) {
  throw std::system_error(ec);
}

template <class T, class E = std::error_code>
class [[nodiscard]] Result {
  static_assert(!std::is_reference_v<T>, "Result<T&> is not supported");
  static_assert(!std::is_same_v<std::remove_cv_t<T>, E>,
                "Result<E, E> is ambiguous");

 public:
  using value_type = T;
  using error_type = E;

  template <class U = T,
            std::enable_if_t<std::is_default_constructible_v<U>, int> = 0>
  Result() : has_(true) {
    new (&v_) T();
  }
  template <
      class U = T,
      std::enable_if_t<std::is_constructible_v<T, U&&> &&
                           !std::is_same_v<std::decay_t<U>, Result> &&
                           !std::is_same_v<std::decay_t<U>, Unexpected<E>> &&
                           !std::is_same_v<std::decay_t<U>, E>,
                       int> = 0>
  Result(U&& v) : has_(true) {  // NOLINT(google-explicit-constructor)
    new (&v_) T(std::forward<U>(v));
  }
  Result(Unexpected<E> u) : has_(false) {  // NOLINT
    new (&e_) E(std::move(u).error());
  }
  Result(E e) : has_(false) {  // NOLINT
    new (&e_) E(std::move(e));
  }

  Result(const Result& o) requires(
      std::is_copy_constructible_v<T>&& std::is_copy_constructible_v<E>)
      : has_(o.has_) {
    if (has_) {
      new (&v_) T(o.v_);
    } else {
      new (&e_) E(o.e_);
    }
  }
  Result(Result&& o) noexcept(std::is_nothrow_move_constructible_v<T>&&
                                  std::is_nothrow_move_constructible_v<E>)
      : has_(o.has_) {
    if (has_) {
      new (&v_) T(std::move(o.v_));
    } else {
      new (&e_) E(std::move(o.e_));
    }
  }
  Result& operator=(const Result& o) requires(
      std::is_copy_constructible_v<T>&& std::is_copy_constructible_v<E>) {
    if (this != &o) {
      reset();
      if (o.has_) {
        new (&v_) T(o.v_);
      } else {
        new (&e_) E(o.e_);
      }
      has_ = o.has_;
    }
    return *this;
  }
  Result& operator=(Result&& o) noexcept(
      std::is_nothrow_move_constructible_v<T>&&
          std::is_nothrow_move_constructible_v<E>) {
    if (this != &o) {
      reset();
      if (o.has_) {
        new (&v_) T(std::move(o.v_));
      } else {
        new (&e_) E(std::move(o.e_));
      }
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

  // The error; only meaningful when !has_value() (a default E otherwise).
  const E& error() const& noexcept {
    static const E kNone{};
    return has_ ? kNone : e_;
  }

 private:
  void reset() noexcept {
    if (has_) {
      v_.~T();
    } else {
      e_.~E();
    }
  }
  void check() const {
    if (!has_) throw_result_error(e_);
  }

  union {
    T v_;
    E e_;
  };
  bool has_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  using value_type = void;
  using error_type = E;

  Result() = default;
  Result(Unexpected<E> u) : e_(std::move(u).error()), has_(false) {}  // NOLINT
  Result(E e) : e_(std::move(e)), has_(false) {}                      // NOLINT

  bool has_value() const noexcept { return has_; }
  explicit operator bool() const noexcept { return has_; }
  void value() const {
    if (!has_) throw_result_error(e_);
  }
  void operator*() const noexcept {}
  const E& error() const& noexcept { return e_; }

 private:
  E e_{};
  bool has_ = true;
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
