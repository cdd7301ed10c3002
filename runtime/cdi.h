#pragma once
// CDI, the Container Device Interface (github.com/cncf-tags/container-device-interface, SPEC.md): how a GPU or another
// device reaches a sandbox. A vendor's spec file in /etc/cdi or /var/run/cdi names devices ("nvidia.com/gpu=0") and
// the edits each one needs: environment variables, device nodes and bind mounts. A request names devices by their
// fully qualified name; resolve_cdi_devices() turns the names into the plan's pieces (DeviceNodePlan, BindMount, env).
//
// What sbx reads, and what it refuses:
// - Spec versions 0.3.0 to 0.8.0, 1.0.0 and 1.1.0 (an optional leading 'v' is allowed). A field that needs a later
//   version than the spec declares is an error, as in the reference implementation (hostPath needs 0.5.0...).
// - Only JSON specs. A *.yaml file is read only when its text is JSON (YAML's JSON subset); any other YAML is not
//   read, and is named in the error when a requested device is not found.
// - Unknown fields are errors at every level: a typo must not silently drop an edit.
// - A spec that is not well formed (bad JSON, a missing or mistyped field, a bad name, a relative path, an
//   unsupported cdiVersion) cannot be used: a request for its kind (or, when its kind cannot be read, for any device)
//   fails with its error. Specs of other kinds are unaffected.
// - Edits sbx cannot apply are refused when a requested device needs them, with the file and field: hooks,
//   intelRdt, netDevices, a FIFO node, a node's fileMode/uid/gid (sbx bind-mounts the host node, whose mode and owner
//   stay the host's), a mount that is not a bind mount, a mount option other than ro, rw, bind, rbind, nosuid, nodev,
//   private, rprivate (sbx binds are always recursive, nosuid and nodev).
// Errors name the device, the file and the field:
//   "CDI device 'acme.com/gpu=0': /etc/cdi/acme.json: devices[0].containerEdits.hooks: CDI hooks are not supported"
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "runtime/plan.h"

namespace sbx::rt {

// A fully qualified device name, "vendor/class=name": vendor "nvidia.com", class "gpu", name "0".
// vendor (at most 253 bytes) and class (at most 63): a letter first, a letter or digit last, letters, digits, '_',
// '-' and '.' between. name: a letter or digit first and last, letters, digits, '_', '-', '.' and ':' between.
struct CdiDeviceName {
  std::string vendor;
  std::string device_class;
  std::string name;

  std::string kind() const { return vendor + "/" + device_class; }
  std::string qualified() const { return kind() + "=" + name; }
};

Result<CdiDeviceName> parse_cdi_device_name(std::string_view qualified);

// The edits a resolved set of devices asks for, merged as the reference implementation merges them: for each
// requested device in order, its spec's spec-level containerEdits (the first time a device of that spec file is
// requested), then the device's own.
struct CdiEdits {
  // "NAME=value", one entry per name in the order first seen; a later edit's value for a name replaces the earlier.
  std::vector<std::string> env;
  // host_path: hostPath, else path. type, major and minor: the host node's (lstat(2); a symlink is not a node), which
  // the spec's own type/major/minor must match when it gives them. access: permissions, default "rwm". A later node
  // for the same path replaces the earlier one.
  std::vector<DeviceNodePlan> device_nodes;
  // hostPath -> containerPath, read_only when the options say "ro". A later mount on the same containerPath replaces
  // the earlier one; sorted parents first (by the number of components of the destination), stable otherwise.
  std::vector<BindMount> mounts;
  // additionalGids (0s and repeats dropped): supplementary groups for the sandbox's processes.
  std::vector<uint32_t> additional_gids;
};

// --- One spec file, as read (exposed for tests; resolve_cdi_devices is what callers use) ---

struct CdiDeviceNode {
  std::string path;       // inside the sandbox
  std::string host_path;  // hostPath, else path
  char type = 0;          // 'c' ("c" or "u"), 'b', or 0: not given
  // Given only with a non-zero major (a zero major means "not given", as in the reference implementation); then the
  // minor defaults to 0.
  std::optional<uint32_t> major;
  std::optional<uint32_t> minor;
  std::string access = "rwm";  // permissions, in "rwm" order
};

struct CdiContainerEdits {
  std::string field;  // "containerEdits" or "devices[2].containerEdits": errors name it
  std::vector<std::string> env;
  std::vector<CdiDeviceNode> device_nodes;
  std::vector<BindMount> mounts;
  std::vector<uint32_t> additional_gids;
  // Edits sbx cannot apply, each "<field>: <why>": refused when these edits are used.
  std::vector<std::string> unsupported;
};

struct CdiDevice {
  std::string name;
  CdiContainerEdits edits;
};

struct CdiSpec {
  std::string path;  // of the file, for errors
  std::string version;
  std::string vendor;
  std::string device_class;
  CdiContainerEdits edits;  // spec-level
  std::vector<CdiDevice> devices;

  std::string kind() const { return vendor + "/" + device_class; }
};

// Parses one spec file's text. Errors are "<path>: <field>: <what>".
Result<CdiSpec> parse_cdi_spec(std::string_view text, const std::string& path);

// --- Resolution ---

// The spec directories, lowest precedence first: /etc/cdi (static specs), then /var/run/cdi (generated ones).
std::vector<std::string> default_cdi_spec_dirs();

// Resolves fully qualified device names against the spec files (*.json, and *.yaml written as JSON) directly in
// `dirs` (subdirectories are not searched; a missing directory has no specs). A device defined in several
// directories is taken from the last of them (a later directory overrides an earlier one); defined by two files of
// that directory, it is a conflict and an error naming both files. A name requested twice is resolved once. No
// names: no edits, and no directory is read.
Result<CdiEdits> resolve_cdi_devices(const std::vector<std::string>& names, const std::vector<std::string>& dirs);

}  // namespace sbx::rt
