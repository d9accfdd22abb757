// libFuzzer target: the shard control messages a client decodes (redirect,
// bundle_part) and the bundle_request a server decodes.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "runtime/transport/wire.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view bytes(reinterpret_cast<const char*>(data), size);
  std::string error;
  nshost::wire::Redirect redirect;
  if (nshost::wire::decode_redirect(bytes, redirect, error)) {
    if (redirect.url.size() > nshost::wire::kMaxUrlBytes || redirect.handoff.size() > nshost::wire::kMaxHandoffBytes)
      std::abort();
    nshost::wire::Redirect again;
    if (!nshost::wire::decode_redirect(nshost::wire::encode_redirect(redirect), again, error)) std::abort();
    if (again.url != redirect.url || again.handoff != redirect.handoff) std::abort();
  } else if (error.empty()) {
    std::abort();
  }
  nshost::wire::BundlePart part;
  if (nshost::wire::decode_bundle_part(bytes, part, error) && part.bytes.size() + 5 != bytes.size()) std::abort();
  (void)nshost::wire::decode_bundle_request(bytes, error);
  return 0;
}
