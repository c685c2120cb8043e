// The `tessera` command registry: subcommands ("workload show", "db best", ...) declare
// their options and a run function; the registry parses argv, prints --help, dispatches.
// Later modules add their commands by calling a register_*_commands(CommandRegistry&).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera {
struct Target;
namespace db {
class TuningDatabase;
}  // namespace db
}  // namespace tessera

namespace tessera::cli {

/// One --option of a command.
struct OptionSpec {
  std::string name;        ///< without dashes, e.g. "target"
  std::string value_name;  ///< e.g. "NAME"; empty for a flag that takes no value
  std::string help;        ///< one line
};

/// Options and positionals after parsing.
class ParsedArgs {
 public:
  std::vector<std::string> positional;
  /// Whether flag or option `name` was given.
  bool has(std::string_view name) const { return values_.count(std::string(name)) > 0; }
  /// The option's value, or nullopt.
  std::optional<std::string> value(std::string_view name) const;
  /// The option's value, or `fallback`.
  std::string value_or(std::string_view name, std::string fallback) const;
  /// The option as an integer in [lo, hi], or `fallback` when absent; anything else is a
  /// UserError naming the option and the range.
  int integer(std::string_view name, int fallback, int lo, int hi) const;
  /// The option as a number in [lo, hi], or `fallback` when absent; anything else is a
  /// UserError naming the option and the range.
  double number(std::string_view name, double fallback, double lo, double hi) const;
  /// Every value of an option given several times, in order.
  std::vector<std::string> values(std::string_view name) const;
  void add(std::string name, std::string value) { values_.emplace(std::move(name), std::move(value)); }

 private:
  std::multimap<std::string, std::string> values_;
};

/// A subcommand.
struct CommandSpec {
  std::string path;          ///< words after `tessera`, e.g. "workload show"
  std::string summary;       ///< one line for the command list
  std::string usage;         ///< positionals and options, e.g. "SPEC [--target NAME]"
  std::string description;   ///< paragraphs for --help (may be empty)
  std::vector<OptionSpec> options;
  int min_positional = 0;
  int max_positional = 0;
  std::function<int(const ParsedArgs&)> run;  ///< returns the exit code
};

/// All subcommands of the executable.
class CommandRegistry {
 public:
  void add(CommandSpec spec);
  /// Parses argv, runs the command, returns the exit code. Throws UserError for bad usage.
  int dispatch(int argc, char** argv) const;
  /// The top-level help text.
  std::string help() const;
  /// What `tessera --version` prints after "tessera X.Y.Z" (the libraries built in).
  std::function<std::string()> version_details;

 private:
  std::string command_help(const CommandSpec& c) const;
  std::string group_help(std::string_view group) const;
  std::vector<CommandSpec> commands_;
};

/// Exit code for bad input or usage (the message is printed by main).
inline constexpr int kExitUsage = 2;
/// Exit status of a command that needs a GPU when there is none.
inline constexpr int kExitNoGpu = 3;

/// The target a query is about: --target (a fingerprint, spec name or GPU name), else the only
/// target in `db`, else the GPU present. `allow_unstored`: a known spec or the GPU present
/// without records is fine too. Ambiguous or unknown names are UserErrors.
Target resolve_db_target(db::TuningDatabase& db, const ParsedArgs& args, bool allow_unstored);

/// The --target option of commands that read the database (resolved by resolve_db_target).
OptionSpec db_target_option();

/// `workload show|list`, `targets`, `devices`.
void register_core_commands(CommandRegistry& registry);
/// `db list|best|show|history|stats|merge|check|export|import`.
void register_db_commands(CommandRegistry& registry);
/// `tessera bench`, `tessera worker`.
void register_measure_commands(CommandRegistry& registry);
/// `tessera tune`.
void register_tune_commands(CommandRegistry& registry);
/// `tessera model eval`.
void register_model_commands(CommandRegistry& registry);
/// `tessera graph optimize|show|rules`.
void register_graph_commands(CommandRegistry& registry);

}  // namespace tessera::cli
