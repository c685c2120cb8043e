#include "core/file_io.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

namespace tessera {
namespace {

std::string reason() { return std::strerror(errno); }

}  // namespace

void write_file_atomic(const std::string& path, std::string_view bytes, std::string_view what) {
  namespace fs = std::filesystem;
  const std::string label = path + ": cannot write " + std::string(what);
  if (path.empty()) throw UserError("cannot write " + std::string(what) + ": empty file name");
  std::error_code ec;
  // Write where a symbolic link points, so the link keeps naming the new file.
  fs::path target = path;
  if (fs::symlink_status(path, ec).type() == fs::file_type::symlink) {
    target = fs::weakly_canonical(path, ec);
    if (ec) throw UserError(label + " (" + ec.message() + ")");
  }
  const fs::file_status status = fs::status(target, ec);
  if (fs::exists(status) && !fs::is_regular_file(status))
    throw UserError(label + ": it exists and is not a regular file" +
                    (fs::is_directory(status) ? " (a directory; give a file name)" : ""));
  fs::path dir = target.parent_path();
  if (dir.empty()) dir = ".";
  std::string tmpl = (dir / ("." + target.filename().string() + ".tessera-XXXXXX")).string();
  int fd = ::mkstemp(tmpl.data());  // O_CREAT | O_EXCL: a name nobody else holds, never a link
  if (fd < 0) throw UserError(label + " (" + reason() + ")");
  auto fail = [&](const std::string& why) {
    ::close(fd);
    ::unlink(tmpl.c_str());
    throw UserError(label + " (" + why + "); it is unchanged");
  };
  for (size_t done = 0; done < bytes.size();) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(reason());
    }
    done += static_cast<size_t>(n);
  }
  // The mode a newly created file gets (mkstemp makes it 0600).
  const mode_t mask = ::umask(0);
  ::umask(mask);
  if (::fchmod(fd, 0666 & ~mask) != 0 || ::fsync(fd) != 0) fail(reason());
  if (::close(fd) != 0) {
    ::unlink(tmpl.c_str());
    throw UserError(label + " (" + reason() + "); it is unchanged");
  }
  if (::rename(tmpl.c_str(), target.c_str()) != 0) {
    const std::string why = reason();
    ::unlink(tmpl.c_str());
    throw UserError(label + " (" + why + "); it is unchanged");
  }
}

std::string read_file(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UserError(path + ": is a directory, not a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError(path + ": cannot open file (" + reason() + ")");
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) throw UserError(path + ": cannot read file");
  return text.str();
}

}  // namespace tessera
