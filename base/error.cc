#include "base/error.h"

#include <cstring>

namespace sbx {

namespace {

struct ErrnoName {
  int value;
  const char* name;
};

constexpr ErrnoName kErrnoNames[] = {
    {EPERM, "EPERM"},     {ENOENT, "ENOENT"},         {ESRCH, "ESRCH"},       {EINTR, "EINTR"},
    {EIO, "EIO"},         {ENXIO, "ENXIO"},           {E2BIG, "E2BIG"},       {ENOEXEC, "ENOEXEC"},
    {EBADF, "EBADF"},     {ECHILD, "ECHILD"},         {EAGAIN, "EAGAIN"},     {ENOMEM, "ENOMEM"},
    {EACCES, "EACCES"},   {EFAULT, "EFAULT"},         {EBUSY, "EBUSY"},       {EEXIST, "EEXIST"},
    {EXDEV, "EXDEV"},     {ENODEV, "ENODEV"},         {ENOTDIR, "ENOTDIR"},   {EISDIR, "EISDIR"},
    {EINVAL, "EINVAL"},   {ENFILE, "ENFILE"},         {EMFILE, "EMFILE"},     {ENOTTY, "ENOTTY"},
    {EFBIG, "EFBIG"},     {ENOSPC, "ENOSPC"},         {ESPIPE, "ESPIPE"},     {EROFS, "EROFS"},
    {EMLINK, "EMLINK"},   {EPIPE, "EPIPE"},           {ERANGE, "ERANGE"},     {ENAMETOOLONG, "ENAMETOOLONG"},
    {ENOSYS, "ENOSYS"},   {ENOTEMPTY, "ENOTEMPTY"},   {ELOOP, "ELOOP"},       {ENODATA, "ENODATA"},
    {ETIMEDOUT, "ETIMEDOUT"}, {ECONNREFUSED, "ECONNREFUSED"}, {EOPNOTSUPP, "EOPNOTSUPP"},
    {EADDRINUSE, "EADDRINUSE"}, {ENOTSOCK, "ENOTSOCK"}, {ECONNRESET, "ECONNRESET"}, {EXDEV, "EXDEV"},
    {ENOTCONN, "ENOTCONN"}, {EALREADY, "EALREADY"},  {EINPROGRESS, "EINPROGRESS"}, {ESTALE, "ESTALE"},
    {EDQUOT, "EDQUOT"},   {ECANCELED, "ECANCELED"},  {EOWNERDEAD, "EOWNERDEAD"},
};

}  // namespace

std::string errno_name(int err) {
  for (const auto& e : kErrnoNames) {
    if (e.value == err) {
      return e.name;
    }
  }
  return fmt::format("E{}", err);
}

Error Error::from_errno(std::string what, int err) {
  return Error(fmt::format("{}: {} ({})", what, std::strerror(err), errno_name(err)), err);
}

Error&& Error::context(std::string_view what) && {
  message_ = fmt::format("{}: {}", what, message_);
  return std::move(*this);
}

Error& Error::context(std::string_view what) & {
  message_ = fmt::format("{}: {}", what, message_);
  return *this;
}

}  // namespace sbx
