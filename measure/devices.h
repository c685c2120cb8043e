// The GPUs this process can see, their properties, specs and target fingerprints.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/hardware.h"

namespace tessera::measure {

/// One visible GPU.
struct Device {
  int index = 0;                      ///< CUDA device ordinal
  DeviceProperties properties;        ///< as the driver reports them
  std::optional<HardwareSpec> spec;   ///< matched and refined spec; nullopt for an unknown arch
  Target target;                      ///< fingerprint of records measured on it
};

/// Result of looking for GPUs: the devices, or why there are none.
struct DeviceScan {
  std::vector<Device> devices;  ///< empty when no GPU is usable
  std::string reason;           ///< why `devices` is empty (driver missing, built without CUDA)
};

/// Enumerates GPUs through the CUDA runtime. Never throws for a missing driver or GPU:
/// that is a DeviceScan with no devices and a reason.
DeviceScan scan_devices();

/// The kernel driver release in the text of /proc/driver/nvidia/version ("580.159.04"), or
/// "" if the text has none.
std::string parse_nvidia_driver_release(std::string_view proc_text);

/// CUDA runtime version linked into this binary ("13.0"), or "none" without CUDA.
std::string cuda_runtime_version();

/// The target a job runs for: the spec named by `name_or_path` (model-only, no device), or,
/// when it is empty, the first visible GPU's; with neither a UserError saying so.
struct ResolvedTarget {
  HardwareSpec spec;
  Target target;
  bool from_device = false;  ///< true when taken from a present GPU
};
ResolvedTarget resolve_target(const std::string& name_or_path);

/// The spec a command uses when it is given no target and finds no GPU with a known spec.
inline constexpr const char* kDefaultSpec = "h100_sxm";

/// The target a command reports, ranks or costs for, in the order every command uses:
/// `requested` (a spec name or .json; a bad one is a UserError) if given; else `fallback` (a
/// stored target, e.g. the database's only one) if given; else the first GPU of `scan` with a
/// known spec; else kDefaultSpec, with `note` saying why.
struct TargetChoice {
  HardwareSpec spec;
  Target target;
  bool from_device = false;  ///< true when taken from a present GPU
  std::string note;          ///< why the default spec was taken ("" otherwise)
};
TargetChoice choose_target(const std::optional<std::string>& requested, const DeviceScan& scan,
                           const std::optional<Target>& fallback = std::nullopt);

}  // namespace tessera::measure
