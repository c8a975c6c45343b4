// Tests for shardio/result.h: Result<T>, Result<void> and the helpers that
// turn a CQE's res into one.
#include "shardio/result.h"

#include <gtest/gtest.h>

#include <cerrno>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>

namespace shardio {
namespace {

// Counts live instances, to check that Result constructs and destroys its
// value exactly once.
struct Tracked {
  static inline int live = 0;
  explicit Tracked(int v) : v(v) { ++live; }
  Tracked(const Tracked& o) : v(o.v) { ++live; }
  Tracked(Tracked&& o) noexcept : v(o.v) {
    o.v = -1;
    ++live;
  }
  Tracked& operator=(const Tracked&) = default;
  Tracked& operator=(Tracked&&) = default;
  ~Tracked() { --live; }
  int v;
};

TEST(ResultTest, HoldsAValue) {
  Result<int> r = 42;
  EXPECT_TRUE(r.has_value());
  EXPECT_TRUE(static_cast<bool>(r));
  EXPECT_EQ(r.value(), 42);
  EXPECT_EQ(*r, 42);
  EXPECT_FALSE(r.error());  // an empty error_code when there is a value
}

TEST(ResultTest, DefaultConstructedHoldsADefaultValue) {
  Result<int> r;
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(*r, 0);
  Result<std::string> s;
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, "");
}

TEST(ResultTest, HoldsAnError) {
  Result<int> r = errno_code(EBADF);
  EXPECT_FALSE(r.has_value());
  EXPECT_FALSE(static_cast<bool>(r));
  EXPECT_EQ(r.error(), std::error_code(EBADF, std::system_category()));
  EXPECT_EQ(r.error(), std::errc::bad_file_descriptor);
}

TEST(ResultTest, UnexpectedBuildsAnErrorOfAnyType) {
  Result<std::string> r = Unexpected(errno_code(ENOENT));
  EXPECT_FALSE(r.has_value());
  EXPECT_EQ(r.error(), std::errc::no_such_file_or_directory);
  Result<void> v = Unexpected(errno_code(EPIPE));
  EXPECT_FALSE(v.has_value());
  EXPECT_EQ(v.error(), std::errc::broken_pipe);
}

TEST(ResultTest, ErrorCodeIsAnErrorEvenWhenTIsConstructibleFromIt) {
  // bool is explicitly constructible from std::error_code; the error must
  // still win over the value constructor.
  const std::error_code ec = errno_code(EIO);
  Result<bool> from_lvalue = ec;
  EXPECT_FALSE(from_lvalue.has_value());
  EXPECT_EQ(from_lvalue.error(), ec);
  Result<bool> from_rvalue = errno_code(EIO);
  EXPECT_FALSE(from_rvalue.has_value());
  EXPECT_EQ(from_rvalue.error(), ec);
  Result<bool> value = false;
  ASSERT_TRUE(value.has_value());
  EXPECT_FALSE(*value);
}

TEST(ResultTest, ValueThrowsSystemErrorCarryingTheError) {
  Result<int> r = errno_code(ECONNRESET);
  try {
    (void)r.value();
    FAIL() << "value() returned on an error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::connection_reset);
    EXPECT_EQ(e.code().category(), std::system_category());
  }
  const Result<int>& cr = r;
  EXPECT_THROW((void)cr.value(), std::system_error);
  EXPECT_THROW((void)std::move(r).value(), std::system_error);
}

TEST(ResultTest, ValueOrReturnsTheValueOrTheFallback) {
  Result<int> ok = 7;
  Result<int> bad = errno_code(EAGAIN);
  EXPECT_EQ(ok.value_or(-1), 7);
  EXPECT_EQ(bad.value_or(-1), -1);
  Result<std::string> s = errno_code(EAGAIN);
  EXPECT_EQ(s.value_or("fallback"), "fallback");
  Result<std::string> t = std::string("kept");
  EXPECT_EQ(t.value_or("fallback"), "kept");
}

TEST(ResultTest, ArrowAndStarReachTheValue) {
  Result<std::string> r = std::string("hello");
  EXPECT_EQ(r->size(), 5u);
  r->append("!");
  EXPECT_EQ(*r, "hello!");
  const Result<std::string>& cr = r;
  EXPECT_EQ(cr->size(), 6u);
  std::string moved = *std::move(r);
  EXPECT_EQ(moved, "hello!");
}

TEST(ResultTest, CopyKeepsValueAndError) {
  Result<std::string> a = std::string("abc");
  Result<std::string> b = a;
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(*b, "abc");
  EXPECT_EQ(*a, "abc");

  Result<std::string> e = errno_code(EINVAL);
  Result<std::string> f = e;
  EXPECT_FALSE(f.has_value());
  EXPECT_EQ(f.error(), std::errc::invalid_argument);
}

TEST(ResultTest, CopyAssignSwitchesBetweenValueAndError) {
  Result<std::string> a = std::string("value");
  const Result<std::string> e = errno_code(EINVAL);
  a = e;
  EXPECT_FALSE(a.has_value());
  EXPECT_EQ(a.error(), std::errc::invalid_argument);

  const Result<std::string> v = std::string("again");
  a = v;
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, "again");
  EXPECT_FALSE(a.error());

  auto& self = a;
  a = self;  // self-assignment keeps the value
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(*a, "again");
}

TEST(ResultTest, MoveWorksForMoveOnlyValues) {
  Result<std::unique_ptr<int>> a = std::make_unique<int>(5);
  Result<std::unique_ptr<int>> b = std::move(a);
  ASSERT_TRUE(b.has_value());
  ASSERT_NE(*b, nullptr);
  EXPECT_EQ(**b, 5);

  Result<std::unique_ptr<int>> c = errno_code(ENOMEM);
  c = std::move(b);
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(**c, 5);

  Result<std::unique_ptr<int>> d = errno_code(ENOMEM);
  c = std::move(d);
  EXPECT_FALSE(c.has_value());
  EXPECT_EQ(c.error(), std::errc::not_enough_memory);

  std::unique_ptr<int> taken =
      Result<std::unique_ptr<int>>(std::make_unique<int>(9)).value();
  ASSERT_NE(taken, nullptr);
  EXPECT_EQ(*taken, 9);
}

TEST(ResultTest, CopyabilityFollowsTheValueType) {
  // Like std::expected: copy operations exist only when T has them, so that
  // generic code (std::variant, type-erased wrappers, concepts) sees a
  // move-only Result as move-only instead of failing on instantiation.
  EXPECT_TRUE(std::is_copy_constructible_v<Result<int>>);
  EXPECT_TRUE(std::is_copy_assignable_v<Result<std::string>>);
  EXPECT_TRUE(std::is_nothrow_move_constructible_v<Result<std::string>>);
  EXPECT_TRUE(std::is_move_constructible_v<Result<std::unique_ptr<int>>>);
  EXPECT_FALSE(std::is_copy_constructible_v<Result<std::unique_ptr<int>>>);
  EXPECT_FALSE(std::is_copy_assignable_v<Result<std::unique_ptr<int>>>);
}

TEST(ResultTest, ConstructsAndDestroysTheValueExactlyOnce) {
  Tracked::live = 0;
  {
    Result<Tracked> a = Tracked(1);
    EXPECT_EQ(Tracked::live, 1);
    Result<Tracked> b = a;
    EXPECT_EQ(Tracked::live, 2);
    Result<Tracked> c = std::move(a);
    EXPECT_EQ(Tracked::live, 3);
    c = errno_code(EIO);  // destroys c's value
    EXPECT_EQ(Tracked::live, 2);
    c = b;
    EXPECT_EQ(Tracked::live, 3);
    EXPECT_EQ(c->v, 1);
    Result<Tracked> err = errno_code(EIO);
    EXPECT_EQ(Tracked::live, 3);
  }
  EXPECT_EQ(Tracked::live, 0);
}

TEST(ResultTest, VoidResultSuccessAndError) {
  Result<void> ok;
  EXPECT_TRUE(ok.has_value());
  EXPECT_TRUE(static_cast<bool>(ok));
  EXPECT_NO_THROW(ok.value());
  EXPECT_FALSE(ok.error());

  Result<void> bad = errno_code(ETIMEDOUT);
  EXPECT_FALSE(bad.has_value());
  EXPECT_FALSE(static_cast<bool>(bad));
  EXPECT_EQ(bad.error(), std::errc::timed_out);
  try {
    bad.value();
    FAIL() << "value() returned on an error";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::errc::timed_out);
  }

  Result<void> copy = bad;
  EXPECT_EQ(copy.error(), std::errc::timed_out);
  copy = ok;
  EXPECT_TRUE(copy.has_value());
}

TEST(ResultTest, ErrorFromResNegatesErrno) {
  const std::error_code ec = error_from_res(-ECANCELED);
  EXPECT_EQ(ec.value(), ECANCELED);
  EXPECT_EQ(ec.category(), std::system_category());
  EXPECT_EQ(ec, std::errc::operation_canceled);
  EXPECT_EQ(errno_code(ETIME), error_from_res(-ETIME));
}

TEST(ResultTest, ResultFromResMapsCountsAndErrors) {
  Result<uint32_t> zero = result_from_res(0);
  ASSERT_TRUE(zero.has_value());
  EXPECT_EQ(*zero, 0u);

  Result<uint32_t> count = result_from_res(4096);
  ASSERT_TRUE(count.has_value());
  EXPECT_EQ(*count, 4096u);

  Result<uint32_t> big = result_from_res(INT32_MAX);
  ASSERT_TRUE(big.has_value());
  EXPECT_EQ(*big, static_cast<uint32_t>(INT32_MAX));

  Result<uint32_t> err = result_from_res(-EAGAIN);
  EXPECT_FALSE(err.has_value());
  EXPECT_EQ(err.error(), std::errc::resource_unavailable_try_again);
}

TEST(ResultTest, VoidResultFromResAcceptsAnyNonNegativeRes) {
  EXPECT_TRUE(void_result_from_res(0).has_value());
  EXPECT_TRUE(void_result_from_res(17).has_value());
  Result<void> err = void_result_from_res(-ENOENT);
  EXPECT_FALSE(err.has_value());
  EXPECT_EQ(err.error(), std::errc::no_such_file_or_directory);
}

}  // namespace
}  // namespace shardio
