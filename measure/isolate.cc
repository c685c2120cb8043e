#include "measure/isolate.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "core/error.h"

namespace tessera::measure {
namespace {

void write_all(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    const ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

}  // namespace

Json run_isolated(const std::function<Json()>& work, double timeout_s) {
  int fds[2];
  if (::pipe(fds) != 0) throw ApiError("POSIX", "pipe", std::strerror(errno), __FILE__, __LINE__);
  const pid_t pid = ::fork();
  if (pid < 0) throw ApiError("POSIX", "fork", std::strerror(errno), __FILE__, __LINE__);
  if (pid == 0) {
    ::close(fds[0]);
    Json answer;
    try {
      answer = work();
    } catch (const UserError& e) {
      answer = Json{{"user_error", e.what()}};
    } catch (const InternalError& e) {
      answer = Json{{"error", e.what()}};
    } catch (const std::exception& e) {  // a CUDA or system call that failed: not a bug of ours
      answer = Json{{"failed", e.what()}};
    }
    write_all(fds[1], answer.dump());
    ::close(fds[1]);
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  bool timed_out = false;
  for (;;) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1000)));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) continue;
    char buf[65536];
    const ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fds[0]);
  if (timed_out) ::kill(pid, SIGKILL);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out)
    return Json{
        {"crashed", "no answer within " + std::to_string(static_cast<int>(timeout_s)) + " s (killed)"}};
  if (WIFSIGNALED(status))
    return Json{{"crashed", std::string("the run died of signal ") + std::to_string(WTERMSIG(status)) + " (" +
                                strsignal(WTERMSIG(status)) + ")"}};
  try {
    if (!text.empty()) return Json::parse(text);
  } catch (const Json::exception&) {
  }
  return Json{{"crashed", "the run ended without an answer (exit status " +
                              std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) + ")"}};
}

}  // namespace tessera::measure
