// libFuzzer target: the script bundle decoder a client runs on the bytes a
// server (or the on-disk cache) hands it.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/script/bundle.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  nshost::Bundle bundle;
  std::string error;
  if (!nshost::decode_bundle(bytes, bundle, error)) {
    if (error.empty()) std::abort();
    return 0;
  }
  for (const auto& file : bundle.files)
    if (!nshost::valid_bundle_path(file.path)) std::abort();
  if (!bundle.find(bundle.entry)) std::abort();
  // A bundle that decodes is canonical: it re-encodes to the same bytes.
  if (nshost::encode_bundle(bundle) != bytes) std::abort();
  return 0;
}
