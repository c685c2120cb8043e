#include "kernels/builder.h"

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <thread>

#include "core/hash.h"
#include "core/json.h"
#include "kernels/nvrtc.h"

namespace tessera::kernels {
namespace {

int64_t number_before(std::string_view text, std::string_view unit) {
  size_t pos = text.find(unit);
  if (pos == std::string_view::npos) return 0;
  size_t end = pos;
  while (end > 0 && text[end - 1] == ' ') --end;
  size_t start = end;
  while (start > 0 && std::isdigit(static_cast<unsigned char>(text[start - 1]))) --start;
  return start < end ? std::stoll(std::string(text.substr(start, end - start))) : 0;
}

// The compiler's first error lines: what a person needs to see in a record.
[[maybe_unused]] std::string first_errors(const std::string& log) {
  std::istringstream in(log);
  std::string line, out;
  int n = 0;
  while (std::getline(in, line) && n < 3)
    if (line.find("error") != std::string::npos) out += (n++ ? "\n" : "") + line;
  return out.empty() ? log.substr(0, 500) : out;
}

void write_atomically(const std::filesystem::path& path, const std::string& bytes) {
  // A name no other process or thread uses, renamed into place: readers see all or nothing.
  std::string tmp = path.string() + ".tmp." + std::to_string(getpid()) + "." +
                    std::to_string(std::hash<std::thread::id>()(std::this_thread::get_id()));
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::filesystem::remove(tmp);
      return;  // a cache that cannot be written only costs a recompile
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) std::filesystem::remove(tmp, ec);
}

// Cache file: one JSON line of metadata, then the cubin bytes.
std::string encode_entry(const CompiledKernel& k) {
  Json meta{{"status", status_name(k.status)},
            {"entry", k.entry},
            {"arch", k.arch},
            {"log", k.log},
            {"error", k.error},
            {"registers", k.usage.registers},
            {"smem_bytes", k.usage.smem_bytes},
            {"stack_bytes", k.usage.stack_bytes},
            {"spill_store_bytes", k.usage.spill_store_bytes},
            {"spill_load_bytes", k.usage.spill_load_bytes}};
  return meta.dump() + "\n" + k.cubin;
}

bool decode_entry(const std::string& bytes, CompiledKernel& k) {
  size_t nl = bytes.find('\n');
  if (nl == std::string::npos) return false;
  try {
    Json meta = Json::parse(bytes.substr(0, nl));
    k.status = parse_status(meta.at("status").get<std::string>(), "cache");
    k.entry = meta.at("entry").get<std::string>();
    k.arch = meta.at("arch").get<std::string>();
    k.log = meta.at("log").get<std::string>();
    k.error = meta.at("error").get<std::string>();
    k.usage.registers = meta.at("registers").get<int>();
    k.usage.smem_bytes = meta.at("smem_bytes").get<int64_t>();
    k.usage.stack_bytes = meta.at("stack_bytes").get<int64_t>();
    k.usage.spill_store_bytes = meta.at("spill_store_bytes").get<int64_t>();
    k.usage.spill_load_bytes = meta.at("spill_load_bytes").get<int64_t>();
  } catch (const std::exception&) {
    return false;
  }
  k.cubin = bytes.substr(nl + 1);
  return k.status != Status::kOk || !k.cubin.empty();
}

}  // namespace

ResourceUsage parse_ptxas_log(std::string_view log, std::string_view entry) {
  // ptxas -v prints, per entry function:
  //   ptxas info    : Compiling entry function 'k' for 'sm_90a'
  //   ptxas info    : Function properties for k
  //   ptxas         .     256 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
  //   ptxas info    : Used 32 registers, used 1 barriers, 256 bytes cumulative stack size, 1024 bytes smem
  ResourceUsage u;
  size_t start = log.find("Compiling entry function '" + std::string(entry) + "'");
  if (start == std::string_view::npos) start = log.find("Compiling entry function '");
  if (start == std::string_view::npos) return u;
  size_t next = log.find("Compiling entry function '", start + 1);
  std::string_view block = log.substr(start, next == std::string_view::npos ? next : next - start);
  std::istringstream lines{std::string(block)};
  for (std::string line; std::getline(lines, line);) {
    if (line.find("bytes stack frame") != std::string::npos) {
      u.stack_bytes = number_before(line, "bytes stack frame");
      u.spill_store_bytes = number_before(line, "bytes spill stores");
      u.spill_load_bytes = number_before(line, "bytes spill loads");
    }
    if (line.find("Used ") != std::string::npos && line.find("registers") != std::string::npos) {
      u.registers = static_cast<int>(number_before(line, "registers"));
      u.smem_bytes = number_before(line, "bytes smem");
    }
  }
  return u;
}

namespace {
template <typename T>
T read_le(std::string_view bytes, size_t offset) {
  T v{};
  if (offset + sizeof(T) <= bytes.size()) std::memcpy(&v, bytes.data() + offset, sizeof(T));
  return v;
}
}  // namespace

ResourceUsage parse_cubin_usage(std::string_view elf, std::string_view entry) {
  ResourceUsage u;
  if (elf.size() < 64 || elf.substr(0, 4) != "\x7f" "ELF" || elf[4] != 2) return u;  // ELF64 only
  auto shoff = read_le<uint64_t>(elf, 0x28);
  auto shentsize = read_le<uint16_t>(elf, 0x3A), shnum = read_le<uint16_t>(elf, 0x3C), shstrndx = read_le<uint16_t>(elf, 0x3E);
  struct Section {
    std::string name;
    uint32_t type;
    uint64_t offset, size;
    uint32_t link;
  };
  std::vector<Section> sections;
  for (uint16_t i = 0; i < shnum; ++i) {
    size_t h = shoff + size_t{i} * shentsize;
    sections.push_back({"", read_le<uint32_t>(elf, h + 4), read_le<uint64_t>(elf, h + 24), read_le<uint64_t>(elf, h + 32),
                        read_le<uint32_t>(elf, h + 40)});
    sections.back().link = read_le<uint32_t>(elf, h + 40);
    sections.back().name = std::to_string(read_le<uint32_t>(elf, h));  // resolved below
  }
  if (shstrndx >= sections.size()) return u;
  auto cstring = [&](uint64_t offset) {
    if (offset >= elf.size()) return std::string_view();
    std::string_view s = elf.substr(offset);
    return s.substr(0, s.find('\0'));
  };
  for (Section& s : sections) s.name = std::string(cstring(sections[shstrndx].offset + std::stoull(s.name)));
  // The entry's symbol index: .nv.info records name functions by symbol.
  int64_t symbol = -1;
  for (const Section& s : sections) {
    if (s.type != 2 /* SHT_SYMTAB */ || s.link >= sections.size()) continue;
    for (uint64_t off = 0; off + 24 <= s.size; off += 24)
      if (cstring(sections[s.link].offset + read_le<uint32_t>(elf, s.offset + off)) == entry) symbol = static_cast<int64_t>(off / 24);
  }
  for (const Section& s : sections) {
    if (s.name == ".nv.shared." + std::string(entry)) u.smem_bytes = static_cast<int64_t>(s.size);
    if (s.name != ".nv.info") continue;
    // Records: format byte, attribute byte, then a value; format 4 carries a 2-byte size and
    // that many bytes ({symbol, value} for the attributes read here), format 3 a 2-byte value.
    for (uint64_t off = s.offset; off + 4 <= s.offset + s.size;) {
      uint8_t format = static_cast<uint8_t>(elf[off]), attribute = static_cast<uint8_t>(elf[off + 1]);
      if (format == 0x04) {
        uint16_t size = read_le<uint16_t>(elf, off + 2);
        if (size == 8 && read_le<uint32_t>(elf, off + 4) == static_cast<uint32_t>(symbol)) {
          uint32_t value = read_le<uint32_t>(elf, off + 8);
          if (attribute == 0x2f) u.registers = static_cast<int>(value);   // EIATTR_REGCOUNT
          if (attribute == 0x11) u.stack_bytes = value;                   // EIATTR_FRAME_SIZE
        }
        off += 4 + size;
      } else if (format == 0x03 || format == 0x02) {
        off += 4;
      } else {
        off += 2;
      }
    }
  }
  return u;
}

Builder::Builder(BuildOptions options) : options_(std::move(options)) {}

std::string Builder::default_cache_dir() {
  if (const char* dir = std::getenv("TESSERA_CACHE_DIR"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg) return std::string(xdg) + "/tessera/kernels";
  if (const char* home = std::getenv("HOME"); home && *home) return std::string(home) + "/.cache/tessera/kernels";
  return "/tmp/tessera-kernels";
}

std::string Builder::cache_key(const KernelSource& source) const {
  std::string text = options_.arch + '\0' + nvrtc_version() + '\0' + source.entry + '\0';
  for (const std::string& f : options_.flags) text += f + '\0';
  for (const auto& [name, body] : options_.headers) text += name + '\0' + body + '\0';
  text += source.source;
  return hex64(stable_hash(text));
}

CompiledKernel Builder::compile(const KernelSource& source) const {
  if (options_.cache_dir.empty()) return compile_uncached(source);
  std::filesystem::path path = std::filesystem::path(options_.cache_dir) / (cache_key(source) + ".cubin");
  {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      CompiledKernel hit;
      // A damaged entry is a miss: compile again and replace it.
      if (decode_entry(bytes, hit) && hit.entry == source.entry && hit.arch == options_.arch) {
        hit.from_cache = true;
        return hit;
      }
    }
  }
  CompiledKernel k = compile_uncached(source);
  std::error_code ec;
  std::filesystem::create_directories(options_.cache_dir, ec);
  if (!ec) write_atomically(path, encode_entry(k));
  return k;
}

std::vector<CompiledKernel> Builder::build(std::span<const KernelSource> sources) const {
  std::vector<CompiledKernel> out(sources.size());
  int threads = options_.threads > 0 ? options_.threads : static_cast<int>(std::thread::hardware_concurrency());
  threads = std::max(1, std::min<int>(threads, static_cast<int>(sources.size())));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next.fetch_add(1)) < sources.size();) out[i] = compile(sources[i]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  return out;
}

#if TESSERA_HAVE_CUDA
CompiledKernel Builder::compile_uncached(const KernelSource& source) const {
  CompiledKernel k;
  k.entry = source.entry;
  k.arch = options_.arch;
  std::vector<const char*> header_texts, header_names;
  for (const auto& [name, body] : options_.headers) {
    header_names.push_back(name.c_str());
    header_texts.push_back(body.c_str());
  }
  nvrtcProgram prog = nullptr;
  nvrtcResult rc = nvrtcCreateProgram(&prog, source.source.c_str(), (source.entry + ".cu").c_str(),
                                      static_cast<int>(header_texts.size()), header_texts.data(), header_names.data());
  if (rc != NVRTC_SUCCESS) {
    k.status = Status::kCompileError;
    k.error = std::string("nvrtcCreateProgram: ") + nvrtcGetErrorString(rc);
    return k;
  }
  std::vector<std::string> opts = {"--gpu-architecture=" + options_.arch, "--std=c++17", "--ptxas-options=-v"};
  opts.insert(opts.end(), options_.flags.begin(), options_.flags.end());
  std::vector<const char*> argv;
  for (const std::string& o : opts) argv.push_back(o.c_str());
  rc = nvrtcCompileProgram(prog, static_cast<int>(argv.size()), argv.data());
  size_t log_size = 0;
  if (nvrtcGetProgramLogSize(prog, &log_size) == NVRTC_SUCCESS && log_size > 1) {
    k.log.resize(log_size);
    nvrtcGetProgramLog(prog, k.log.data());
    k.log.resize(log_size - 1);  // drop the terminating NUL
  }
  if (rc == NVRTC_SUCCESS) {
    size_t cubin_size = 0;
    rc = nvrtcGetCUBINSize(prog, &cubin_size);
    if (rc == NVRTC_SUCCESS && cubin_size > 0) {
      k.cubin.resize(cubin_size);
      rc = nvrtcGetCUBIN(prog, k.cubin.data());
    } else if (rc == NVRTC_SUCCESS) {
      rc = NVRTC_ERROR_INVALID_OPTION;  // a virtual architecture gives PTX, not a cubin
    }
  }
  nvrtcDestroyProgram(&prog);
  if (rc != NVRTC_SUCCESS) {
    k.status = Status::kCompileError;
    k.cubin.clear();
    k.error = k.log.empty() ? std::string(nvrtcGetErrorString(rc)) : first_errors(k.log);
    return k;
  }
  k.status = Status::kOk;
  // The cubin is the authority for registers, shared memory and stack (some NVRTC builds do
  // not forward ptxas's report, and on sm_90 the cubin's shared-memory section also holds
  // the 1 KiB the report leaves out); only the spills come from the report when present.
  ResourceUsage reported = parse_ptxas_log(k.log, k.entry);
  k.usage = parse_cubin_usage(k.cubin, k.entry);
  if (k.usage.registers == 0) k.usage = reported;
  k.usage.spill_store_bytes = reported.spill_store_bytes;
  k.usage.spill_load_bytes = reported.spill_load_bytes;
  return k;
}
#else
CompiledKernel Builder::compile_uncached(const KernelSource& source) const {
  CompiledKernel k;
  k.entry = source.entry;
  k.arch = options_.arch;
  k.status = Status::kCompileError;
  k.error = "this tessera was built without CUDA support (no NVRTC)";
  return k;
}
#endif

}  // namespace tessera::kernels
