// Runs the tessera executable for CLI tests and captures what it prints.
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace tessera::testing {

struct Result {
  int exit_code = -1;
  std::string out, err;
};

inline std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

inline std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Runs a shell `command` (stdin from /dev/null) and returns its exit code and output.
inline Result run_shell(const std::string& command) {
  // ctest runs the tests of a file in parallel processes: keep their files apart.
  static int calls = 0;
  std::string stem = ::testing::TempDir() + "tessera_cli_" + std::to_string(getpid()) + "_" + std::to_string(++calls);
  std::string out_path = stem + ".out", err_path = stem + ".err";
  int status = std::system((command + " >" + quote(out_path) + " 2>" + quote(err_path) + " </dev/null").c_str());
  Result r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = slurp(out_path);
  r.err = slurp(err_path);
  std::remove(out_path.c_str());
  std::remove(err_path.c_str());
  return r;
}

inline Result run(const std::vector<std::string>& args) {
  std::string cmd = quote(TESSERA_CLI);
  for (const std::string& a : args) cmd += " " + quote(a);
  return run_shell(cmd);
}

// A bad-input run: exit 2, nothing on stdout, exactly one line on stderr containing `text`.
inline void expect_one_line_error(const std::vector<std::string>& args, const std::string& text) {
  std::string joined;
  for (const auto& a : args) joined += a + " ";
  SCOPED_TRACE(joined);
  Result r = run(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("tessera: error: ", 0), 0u) << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find(text), std::string::npos) << r.err;
}

}  // namespace tessera::testing
