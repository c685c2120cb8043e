#include "cli/command.h"

#include <algorithm>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "core/error.h"
#include "core/version.h"

namespace tessera::cli {
namespace {
std::string pad(std::string s, size_t width) {
  if (s.size() < width) s.append(width - s.size(), ' ');
  return s;
}

bool starts_with_words(const std::vector<std::string>& words, std::string_view path) {
  size_t i = 0, start = 0;
  while (start <= path.size()) {
    size_t end = path.find(' ', start);
    std::string_view word = path.substr(start, end == std::string_view::npos ? end : end - start);
    if (i >= words.size() || words[i] != word) return false;
    ++i;
    if (end == std::string_view::npos) return true;
    start = end + 1;
  }
  return true;
}

size_t word_count(std::string_view path) { return std::count(path.begin(), path.end(), ' ') + 1; }
}  // namespace

int ParsedArgs::integer(std::string_view name, int fallback, int lo, int hi) const {
  auto v = value(name);
  if (!v) return fallback;
  int out = lo - 1;
  try {
    size_t used = 0;
    out = std::stoi(*v, &used);
    if (used != v->size()) out = lo - 1;
  } catch (const std::exception&) {
  }
  if (out < lo || out > hi)
    throw UserError("--" + std::string(name) + " must be an integer from " + std::to_string(lo) + " to " +
                    std::to_string(hi) + " (got '" + *v + "')");
  return out;
}

double ParsedArgs::number(std::string_view name, double fallback, double lo, double hi) const {
  auto v = value(name);
  if (!v) return fallback;
  char* end = nullptr;
  double out = std::strtod(v->c_str(), &end);
  if (end == v->c_str() || *end || !(out >= lo && out <= hi)) {
    std::ostringstream msg;
    msg << "--" << name << " must be a number from " << lo << " to " << hi << " (got '" << *v << "')";
    throw UserError(msg.str());
  }
  return out;
}

std::optional<std::string> ParsedArgs::value(std::string_view name) const {
  auto it = values_.find(std::string(name));
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string ParsedArgs::value_or(std::string_view name, std::string fallback) const {
  auto v = value(name);
  return v ? *v : std::move(fallback);
}

std::vector<std::string> ParsedArgs::values(std::string_view name) const {
  std::vector<std::string> out;
  auto [lo, hi] = values_.equal_range(std::string(name));
  for (auto it = lo; it != hi; ++it) out.push_back(it->second);
  return out;
}

void CommandRegistry::add(CommandSpec spec) {
  for (const CommandSpec& c : commands_)
    TESSERA_CHECK(c.path != spec.path, "command '" + spec.path + "' registered twice");
  commands_.push_back(std::move(spec));
}

std::string CommandRegistry::help() const {
  std::string out = std::string("tessera ") + kVersion +
                    ": offline autotuner for GPU tensor programs\n\n"
                    "Usage: tessera <command> [options]\n\nCommands:\n";
  size_t width = 0;
  for (const CommandSpec& c : commands_) width = std::max(width, c.path.size());
  for (const CommandSpec& c : commands_) out += "  " + pad(c.path, width + 2) + c.summary + "\n";
  out +=
      "\nOptions:\n"
      "  -h, --help  show this help (or a command's, after the command)\n"
      "  --version   print the version and the libraries it was built with\n\n"
      "Run 'tessera <command> --help' for a command's options.\n";
  return out;
}

std::string CommandRegistry::group_help(std::string_view group) const {
  std::string out = "Usage: tessera " + std::string(group) + " <subcommand> [options]\n\nSubcommands:\n";
  for (const CommandSpec& c : commands_)
    if (c.path.rfind(std::string(group) + " ", 0) == 0)
      out += "  " + pad(c.path, 20) + c.summary + "\n";
  return out;
}

std::string CommandRegistry::command_help(const CommandSpec& c) const {
  std::string out = "Usage: tessera " + c.path + (c.usage.empty() ? "" : " " + c.usage) + "\n\n" +
                    c.summary + "\n";
  if (!c.description.empty()) out += "\n" + c.description + "\n";
  out += "\nOptions:\n";
  std::vector<std::pair<std::string, std::string>> rows;
  for (const OptionSpec& o : c.options)
    rows.emplace_back("--" + o.name + (o.value_name.empty() ? "" : " " + o.value_name), o.help);
  rows.emplace_back("-h, --help", "show this help");
  size_t width = 0;
  for (const auto& [left, right] : rows) width = std::max(width, left.size());
  for (const auto& [left, right] : rows) out += "  " + pad(left, width + 2) + right + "\n";
  return out;
}

int CommandRegistry::dispatch(int argc, char** argv) const {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::cerr << help();
    return kExitUsage;
  }
  if (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
    std::cout << help();
    return 0;
  }
  if (args[0] == "--version") {
    std::cout << "tessera " << kVersion << (version_details ? " (" + version_details() + ")" : "") << "\n";
    return 0;
  }
  // The command whose path is the longest prefix of the leading words.
  const CommandSpec* cmd = nullptr;
  for (const CommandSpec& c : commands_)
    if (starts_with_words(args, c.path) && (!cmd || word_count(c.path) > word_count(cmd->path))) cmd = &c;
  if (!cmd) {
    bool is_group = std::any_of(commands_.begin(), commands_.end(),
                                [&](const CommandSpec& c) { return c.path.rfind(args[0] + " ", 0) == 0; });
    if (is_group) {
      bool asked = args.size() > 1 && (args[1] == "-h" || args[1] == "--help");
      if (args.size() == 1 || asked) {
        (asked ? std::cout : std::cerr) << group_help(args[0]);
        return asked ? 0 : kExitUsage;
      }
      throw UserError("unknown command 'tessera " + args[0] + " " + args[1] + "' (see 'tessera " +
                      args[0] + " --help')");
    }
    throw UserError("unknown command '" + args[0] + "' (see 'tessera --help')");
  }

  ParsedArgs parsed;
  std::string where = "tessera " + cmd->path;
  bool options_done = false;
  for (size_t i = word_count(cmd->path); i < args.size(); ++i) {
    const std::string& a = args[i];
    if (options_done || a.size() < 2 || a[0] != '-') {
      parsed.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    if (a == "-h" || a == "--help") {
      std::cout << command_help(*cmd);
      return 0;
    }
    // -o is short for --output, for the commands that write one file.
    std::string name = a == "-o" ? "--output" : a;
    if (name.rfind("--", 0) != 0) throw UserError(where + ": unknown option '" + a + "' (see '" + where + " --help')");
    name = name.substr(2);
    std::string value;
    bool inline_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inline_value = true;
    }
    auto opt = std::find_if(cmd->options.begin(), cmd->options.end(),
                            [&](const OptionSpec& o) { return o.name == name; });
    if (opt == cmd->options.end())
      throw UserError(where + ": unknown option '--" + name + "' (see '" + where + " --help')");
    if (opt->value_name.empty()) {
      if (inline_value) throw UserError(where + ": option --" + name + " takes no value");
    } else if (!inline_value) {
      if (i + 1 >= args.size())
        throw UserError(where + ": option --" + name + " needs a value (" + opt->value_name + ")");
      value = args[++i];
    }
    parsed.add(name, value);
  }
  int n = static_cast<int>(parsed.positional.size());
  if (n < cmd->min_positional || n > cmd->max_positional) {
    std::string expected = cmd->min_positional == cmd->max_positional
                               ? std::to_string(cmd->min_positional)
                               : std::to_string(cmd->min_positional) + " to " + std::to_string(cmd->max_positional);
    throw UserError(where + ": expected " + expected + " argument(s), got " + std::to_string(n) +
                    " (usage: " + where + " " + cmd->usage + ")");
  }
  return cmd->run(parsed);
}

}  // namespace tessera::cli
